"""BuildKit's shell patterns for `${VAR#p}`, `${VAR%p}` and `${VAR/p/r}` (lex.go's
convertShellPatternToRegex, trimPrefix/trimSuffix, and Go's ReplaceAllString).

`*` and `?` are wildcards; `\\` escapes `*`, `?` and `\\`, and is dropped before `}` and
`/`; any other escape is an error. Bracket expressions are NOT supported by BuildKit (`[`
is a literal), so not here either.
"""

from __future__ import annotations

import re

__all__ = ["PatternError", "replace", "trim_prefix", "trim_suffix"]


class PatternError(ValueError):
    """A pattern BuildKit refuses (`invalid escape`); words.py reports it for the word."""


def replace(pattern: str, value: str, replacement: str, replace_all: bool) -> str:
    """`${VAR/pattern/replacement}` (first match) or `${VAR//...}` (all matches)."""
    regex = _pattern_regex(pattern, greedy=True, anchored=False)
    if replace_all:
        return _go_replace_all(regex, value, replacement)
    found = regex.search(value)
    if found is None:
        return value
    return value[: found.start()] + replacement + value[found.end() :]


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 1 if pattern.startswith("\ufeff") else 0  # Go's text/scanner drops a leading BOM
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                shown = following or "EOF"
                raise PatternError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'"
                )
            out.append(re.escape(following))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    found = _pattern_regex(pattern, greedy, anchored=True).match(value)
    return value[found.end() :] if found else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each `\\x` escape pair in order (`a\\*c` -> `c\\*a`)."""
    pairs: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            pairs.append(pattern[i : i + 2])
            i += 2
        else:
            pairs.append(pattern[i])
            i += 1
    return "".join(reversed(pairs))


def trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex finds leftmost matches only; reversing both turns "shortest/longest suffix"
    # into "shortest/longest prefix", which is how BuildKit does it.
    return trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_replace_all(regex: re.Pattern[str], value: str, template: str) -> str:
    """Go's Regexp.ReplaceAllString: empty matches next to a previous match are skipped
    (Python's re.sub keeps them), and the template's `$0`, `${name}`, `$$` are expanded."""
    out: list[str] = []
    last_end = 0
    pos = 0
    while pos <= len(value):
        found = regex.search(value, pos)
        if found is None:
            break
        start, end = found.span()
        out.append(value[last_end:start])
        if end > last_end or start == 0:
            out.append(_go_expand(template, found))
        last_end = end
        pos = pos + 1 if pos + 1 > end else end
    out.append(value[last_end:])
    return "".join(out)


def _go_expand(template: str, found: re.Match[str]) -> str:
    """Go's Regexp.ExpandString for a pattern without capture groups: `$0`/`${0}` is the
    match, `$$` a dollar, any other well-formed reference empty, a malformed one literal."""
    out: list[str] = []
    i = 0
    while i < len(template):
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        rest = template[j + 1 :]
        if rest.startswith("$"):
            out.append("$")
            i = j + 2
            continue
        name, used = _go_template_name(rest)
        if name is None:
            out.append("$")
            i = j + 1
            continue
        i = j + 1 + used
        if name == "0":
            out.append(found.group(0))
    return "".join(out)


def _go_template_name(text: str) -> tuple[str | None, int]:
    brace = text.startswith("{")
    k = 1 if brace else 0
    start = k
    while k < len(text) and (text[k].isalpha() or text[k].isdecimal() or text[k] == "_"):
        k += 1
    if k == start:
        return None, 0
    name = text[start:k]
    if brace:
        if k >= len(text) or text[k] != "}":
            return None, 0
        k += 1
    return name, k

"""Docker's .dockerignore pattern language, one pattern at a time: Go's filepath.Match
syntax check, moby/patternmatcher's translation to a Go regexp (with its match kinds), and
that regexp's translation to an equivalent Python regex.

patternmatcher hands the pattern text to Go's RE2 nearly raw, so RE2 syntax leaks through
(`\\d` is a digit class, `a|b` an alternation, `x{2}` a repeat): the translation keeps those
meanings. What Python cannot express (`\\p{...}` classes, negated `[:^name:]` inside a
bracket) is refused as a bad pattern rather than guessed.
"""

from __future__ import annotations

import re
import warnings

__all__ = [
    "EXACT",
    "PREFIX",
    "REGEXP",
    "SUFFIX",
    "BadPattern",
    "compile_pattern",
    "python_regex",
    "valid_match_syntax",
]

EXACT, PREFIX, SUFFIX, REGEXP = "exact", "prefix", "suffix", "regexp"


class BadPattern(ValueError):
    """A pattern Docker rejects; the caller adds the ignore file and line."""


# --- filepath.Match syntax ---------------------------------------------------------------
# patternmatcher rejects what Go's filepath.Match(pattern, ".") rejects; modern Go checks
# the whole pattern, chunk by chunk, with these rules.


def valid_match_syntax(pattern: str) -> bool:
    while pattern:
        chunk, pattern = _scan_chunk(pattern)
        if not _valid_chunk(chunk):
            return False
    return True


def _scan_chunk(pattern: str) -> tuple[str, str]:
    """Split off leading stars and the text up to the next star outside a class."""
    pattern = pattern.lstrip("*")
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return pattern[:i], pattern[i:]


def _valid_chunk(chunk: str) -> bool:
    while chunk:
        ch = chunk[0]
        if ch == "[":
            chunk = chunk[1:]
            if chunk.startswith("^"):
                chunk = chunk[1:]
            ranges = 0
            while True:
                if chunk.startswith("]") and ranges > 0:
                    chunk = chunk[1:]
                    break
                ok, chunk = _class_char(chunk)
                if not ok:
                    return False
                if chunk.startswith("-"):
                    ok, chunk = _class_char(chunk[1:])
                    if not ok:
                        return False
                ranges += 1
        elif ch == "\\":
            if len(chunk) < 2:
                return False
            chunk = chunk[2:]
        else:
            chunk = chunk[1:]
    return True


def _class_char(chunk: str) -> tuple[bool, str]:
    """Go's getEsc: one (possibly escaped) class character, which must not end the chunk."""
    if not chunk or chunk[0] in "-]":
        return False, chunk
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            return False, chunk
    if "\udc80" <= chunk[0] <= "\udcff":  # an undecodable byte: Go's RuneError
        return False, chunk
    rest = chunk[1:]
    return bool(rest), rest


# --- patternmatcher's compile: pattern -> match kind + Go regexp text --------------------


def compile_pattern(pattern: str) -> tuple[str, str]:
    regex = "^"
    kind = EXACT
    pos = 1 if pattern.startswith("\ufeff") else 0  # Go's text/scanner drops a leading BOM
    step = 0
    while pos < len(pattern):
        ch = pattern[pos]
        pos += 1
        if ch == "*":
            if pattern.startswith("*", pos):
                pos += 1
                if pattern.startswith("/", pos):  # **/ is the same as **
                    pos += 1
                if pos >= len(pattern):
                    if kind == EXACT:
                        kind = PREFIX
                    else:
                        regex += ".*"
                        kind = REGEXP
                else:
                    regex += "(.*/)?"  # any number of directories, even none
                    kind = REGEXP
                if step == 0:
                    kind = SUFFIX
            else:
                regex += "[^/]*"
                kind = REGEXP
        elif ch == "?":
            regex += "[^/]"
            kind = REGEXP
        elif ch in ".+()$":
            # patternmatcher means to escape `.+()|{}$`, but its bitmap overflows a byte
            # for characters >= 64, so `|`, `{` and `}` reach the regexp raw: `a|b` is an
            # alternation and `x{2}` a repeat in Docker. We keep that.
            regex += "\\" + ch
        elif ch == "\\":
            if pos < len(pattern):
                regex += "\\" + pattern[pos]
                pos += 1
                kind = REGEXP
            else:
                regex += "\\"
        elif ch in "[]":
            regex += ch
            kind = REGEXP
        else:
            regex += ch
        step += 1
    return kind, regex


# --- Go regexp text -> Python regex ------------------------------------------------------
# The constructs that can appear: literals, \-escapes copied from the pattern, [...] classes
# copied raw (possibly with POSIX [:name:] inside), and patternmatcher's own [^/]*, [^/],
# (.*/)?, .*. Go (RE2) and Python agree on all of it except the escapes and POSIX classes
# handled here; anything else RE2-only is refused rather than guessed.

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_REPEAT = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")  # RE2's {n} {n,} {n,m}; not {,m}
_ZERO_WIDTH = frozenset({"^", "\\b", "\\B", "\\A", "\\Z"})
_GO_SPACE_CLASS = "\\t\\n\\f\\r "  # Go's \s (Python's ASCII \s adds \v)


_ANY_DIRS = "(.*/)?"


def python_regex(go: str) -> re.Pattern[str]:
    # `**/**/` gives (.*/)?(.*/)?, which means the same as one (.*/)? but makes a
    # backtracking matcher (Python's; RE2 is linear) slow on deep paths: keep one.
    while _ANY_DIRS * 2 in go and "\\Q" not in go:  # (\Q...\E would quote it)
        go = go.replace(_ANY_DIRS * 2, _ANY_DIRS)
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(go):
        ch = go[i]
        if ch == "\\":
            if i + 1 >= len(go):
                raise BadPattern("trailing backslash")
            text, i = _escape(go, i, in_class)
            out.append(text)
            if in_class and text in _CLASS_ESCAPES and go.startswith("-", i):
                out.append("\\-")  # after \d etc. RE2 (Perl mode) takes - as a literal
                i += 1
            continue
        if in_class:
            if go.startswith("[:", i):
                end = go.find(":]", i + 2)
                name = go[i + 2 : end] if end > 0 else ""
                if end > 0:
                    if name not in _POSIX:  # RE2 refuses unknown names; [:^x:] unsupported
                        raise BadPattern(f"unknown or unsupported class [:{name}:]")
                    out.append(_POSIX[name])
                    i = end + 2
                    if go.startswith("-", i):
                        out.append("\\-")
                        i += 1
                    continue
            if ch == "]":
                in_class = False
                out.append("]")
            elif ch in "[&~|":
                out.append("\\" + ch)  # literal in RE2; Python may read [, &&, ~~, || as sets
            else:
                out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append("[")
            i += 1
            if go.startswith("^", i):
                out.append("^")
                i += 1
            if go.startswith("]", i):  # a leading ] is a literal member in both
                out.append("\\]")
                i += 1
            continue
        if ch == "{":
            repeat = _REPEAT.match(go, i)
            if repeat is None:
                out.append("\\{")  # RE2 reads a brace that is not a repeat as a literal
                i += 1
                continue
            if any(int(n) > 1000 for n in repeat.groups() if n):
                raise BadPattern("invalid repeat count")
            if out and out[-1] in _ZERO_WIDTH:
                out[-1] = f"(?:{out[-1]})"  # RE2 repeats an assertion; Python needs a group
            out.append(repeat.group(0))
            i = repeat.end()
            continue
        if ch == "}":
            out.append("\\}")
        elif ch == "$":
            out.append("\\Z")  # Go's $ is end of text; Python's also matches before a \n
        else:
            out.append(ch)
        i += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile("".join(out), re.ASCII)


_CLASS_ESCAPES = frozenset({"\\d", "\\D", "\\w", "\\W", "\\S", _GO_SPACE_CLASS})
_OCTAL = frozenset("01234567")
_HEX = frozenset("0123456789abcdefABCDEF")


def _escape(go: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the RE2 escape at go[i] (a backslash); return it and the next index."""
    ch = go[i + 1]
    after = i + 2
    if ch.isascii() and not ch.isalnum():
        return "\\" + ch, after  # RE2 and Python: escaped punctuation is itself
    if ch in "afnrtv":
        return "\\" + ch, after
    if ch in "dDwW":
        return "\\" + ch, after  # ASCII classes in RE2; re.ASCII makes Python's the same
    if ch == "s":
        return (_GO_SPACE_CLASS if in_class else f"[{_GO_SPACE_CLASS}]"), after
    if ch == "S":
        # Outside a class exactly Go's; inside one Python's \S, which differs from Go's
        # only in refusing \v (not a character file names are made of).
        return ("\\S" if in_class else f"[^{_GO_SPACE_CLASS}]"), after
    if not in_class and ch in "bBA":
        return "\\" + ch, after
    if not in_class and ch == "z":
        return "\\Z", after
    if ch in _OCTAL:
        # \0 and \1-\7 followed by an octal digit take up to three digits; a lone \1 is
        # a backreference, which RE2 refuses.
        digits = ch
        while len(digits) < 3 and after < len(go) and go[after] in _OCTAL:
            digits += go[after]
            after += 1
        if ch != "0" and len(digits) == 1:
            raise BadPattern(f"invalid escape \\{ch}")
        return re.escape(chr(int(digits, 8))), after
    if ch == "x":
        if go.startswith("{", after):
            end = go.find("}", after)
            digits = go[after + 1 : end] if end > 0 else ""
            if not digits or not set(digits) <= _HEX or int(digits, 16) > 0x10FFFF:
                raise BadPattern("invalid escape \\x{...}")
            return re.escape(chr(int(digits, 16))), end + 1
        digits = go[after : after + 2]
        if len(digits) != 2 or not set(digits) <= _HEX:
            raise BadPattern("invalid escape \\x")
        return re.escape(chr(int(digits, 16))), after + 2
    if ch == "Q" and not in_class:
        end = go.find("\\E", after)
        literal = go[after:] if end < 0 else go[after:end]
        return re.escape(literal), (len(go) if end < 0 else end + 2)
    # \p{...}/\P{...} Unicode classes and [:^name:] have no Python equivalent: refused.
    raise BadPattern(f"unsupported escape \\{ch}")

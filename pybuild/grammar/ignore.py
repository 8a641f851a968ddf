""".dockerignore rules with Docker's exact semantics (moby/patternmatcher + ignorefile).

Reading follows ignorefile.ReadAll: a UTF-8 BOM is dropped, lines *starting* with `#` are
comments (an indented `#` is a pattern), lines are trimmed, `!` marks an exception, each
pattern is filepath.Clean-ed and a leading `/` dropped. Matching follows
the walk BuildKit does (fsutil, PatternMatcher.MatchesUsingParentResults): patterns apply
in order, the last one that matches wins, and a pattern matching a parent directory matches
everything below it.

Why not pathspec: it implements gitignore, which is a different language (a bare `foo`
matches at any depth, a trailing `/` means "directories only", `**` rules differ). Docker
uses Go's filepath.Match syntax (`*` and `?` never cross `/`, `[...]` classes negated with
`^`, `\\` escapes) plus `**`, translated by patternmatcher into a Go regexp. We do the same:
every pattern is validated like filepath.Match, turned into patternmatcher's regexp text
once, and that text is translated into an equivalent Python regex, so even the quirks
(`\\d` is a digit class, `[*]` is not a star) agree with Docker.
"""

from __future__ import annotations

import functools
import posixpath
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pybuild.errors import DockerfileError
from pybuild.grammar.gocompat import clean_path, scan_lines, trim_space

__all__ = ["IgnorePattern", "IgnoreRules", "ParentMatches", "load_ignore"]

_EXACT, _PREFIX, _SUFFIX, _REGEXP = "exact", "prefix", "suffix", "regexp"


class _BadPattern(Exception):
    """Internal: a pattern Docker rejects; the caller adds file and line."""


@dataclass(frozen=True)
class IgnorePattern:
    """One cleaned pattern: `text` without its `!`, and how patternmatcher matches it."""

    text: str
    exclusion: bool  # a `!` exception: a match re-includes the path
    line: int  # 1-based line in the ignore file
    kind: str = field(default=_EXACT, compare=False)
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Decide the test once: matches() runs for every path of a context walk.
        if self.kind == _EXACT:
            test = self.text.__eq__
        elif self.kind == _PREFIX:
            test = _starts_with(self.text[:-2])  # the pattern minus its trailing **
        elif self.kind == _SUFFIX and not self.text.startswith("**"):
            test = _ends_with_bytes(self.text)
        elif self.kind == _SUFFIX:
            test = _ends_with(self.text[2:])  # the pattern minus its leading **
        else:
            assert self.regex is not None
            search = self.regex.search
            test = lambda path: search(path) is not None  # noqa: E731
        object.__setattr__(self, "_test", test)

    def matches(self, path: str) -> bool:
        """Whether this pattern alone matches the clean, slash-separated `path`."""
        return self._test(path)  # type: ignore[attr-defined]


def _starts_with(prefix: str):
    return lambda path: path.startswith(prefix)


def _ends_with_bytes(text: str):
    # Only for a pattern that starts with a BOM (which Go's scanner skipped while
    # compiling it): patternmatcher then cuts two *bytes* off the UTF-8 text.
    suffix = text.encode("utf-8", "surrogateescape")[2:]

    def test(path: str) -> bool:
        raw = path.encode("utf-8", "surrogateescape")
        return raw.endswith(suffix) or (suffix.startswith(b"/") and raw == suffix[1:])

    return test


def _ends_with(suffix: str):
    bare = suffix[1:] if suffix.startswith("/") else None  # **/foo also matches foo

    def test(path: str) -> bool:
        return path.endswith(suffix) or path == bare

    return test


@dataclass(frozen=True)
class ParentMatches:
    """Which patterns matched a directory: what `IgnoreRules.match` hands down a walk."""

    matched: tuple[bool, ...] = ()


@dataclass(frozen=True)
class IgnoreRules:
    """The parsed rules of one ignore file; `ignored` answers for one path."""

    patterns: tuple[IgnorePattern, ...] = ()
    source: str = ".dockerignore"

    @classmethod
    def from_text(cls, text: str | bytes, source: str = ".dockerignore") -> IgnoreRules:
        """Parse an ignore file. Bad patterns raise DockerfileError naming source:line."""
        if isinstance(text, bytes):
            if text.startswith(b"\xef\xbb\xbf"):
                text = text[3:]
            text = text.decode("utf-8", "surrogateescape")
        elif text.startswith("\ufeff"):
            text = text[1:]
        patterns = []
        for number, line in enumerate(scan_lines(text), start=1):
            raw = _read_line(line)
            if raw is None:
                continue
            try:
                patterns.append(_new_pattern(raw, number))
            except _BadPattern as bad:
                raise DockerfileError(str(bad), path=source, line=number) from None
        return cls(tuple(patterns), source)

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def ignored(self, relpath: str) -> bool:
        """Whether `relpath` (slash-separated, relative to the context) is excluded.

        The answer is the one BuildKit's context walk gives: each ancestor directory is
        matched first and its per-pattern results are handed down (`match`). That differs
        from patternmatcher's MatchesOrParentMatches in one corner: with `a/a` then `!a`,
        the walk excludes `a/a` (the exception was skipped at `a`, never re-tried against
        the parent), so we do too."""
        if not self.patterns:
            return False
        path = _clean_relative(relpath)
        if path == ".":
            return False  # the context root itself is never excluded
        state: tuple[bool, ...] = ()
        answer = False
        for prefix in [*_parents(path), path]:
            answer, state = self._match(prefix, state)
        return answer

    def match(
        self, relpath: str, parent: ParentMatches | None = None
    ) -> tuple[bool, ParentMatches]:
        """PatternMatcher.MatchesUsingParentResults, for a walker going top-down: pass
        the state returned for a directory when asking about its entries, so patterns that
        matched the directory are not tried again. Same answers as `ignored`."""
        known = parent.matched if parent is not None else ()
        if known and len(known) != len(self.patterns):
            raise ValueError("parent state belongs to other rules")
        answer, state = self._match(_clean_relative(relpath), known)
        return answer, ParentMatches(state)

    def _match(self, path: str, known: tuple[bool, ...]) -> tuple[bool, tuple[bool, ...]]:
        if path == ".":
            return False, (False,) * len(self.patterns)
        parents: list[str] | None = None
        matched = False
        state = []
        for index, pattern in enumerate(self.patterns):
            hit = bool(known) and known[index]
            if not hit:
                # An inclusion cannot change an excluded path, nor an exception an
                # included one: skip them (and record no match), as patternmatcher does.
                if pattern.exclusion != matched:
                    state.append(False)
                    continue
                hit = pattern.matches(path)
                if not hit and not known:
                    if parents is None:
                        parents = _parents(path)
                    hit = any(pattern.matches(p) for p in parents)
            state.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(state)

    def can_skip_dir(self, relpath: str) -> bool:
        """Whether a walker may skip directory `relpath` without looking inside: it is
        ignored and no `!` exception could re-include anything below it (BuildKit's
        fsutil makes the same cut). Conservative: False whenever unsure."""
        if not self.ignored(relpath):
            return False
        components = _clean_relative(relpath).split("/")
        return not any(_may_reach_inside(p, components) for p in self.patterns if p.exclusion)


def load_ignore(context_dir: str | Path, dockerfile: str | Path | None = None) -> IgnoreRules:
    """The rules for a build: `<Dockerfile name>.dockerignore` beside the Dockerfile wins
    over `<context>/.dockerignore`; no file means nothing is ignored. `dockerfile` is the
    -f path as resolved by the caller (default: `<context>/Dockerfile`; `-` is stdin)."""
    context = Path(context_dir)
    candidates = []
    if dockerfile is None:
        dockerfile = context / "Dockerfile"
    if str(dockerfile) != "-":
        path = Path(dockerfile)
        candidates.append(path.with_name(path.name + ".dockerignore"))
    candidates.append(context / ".dockerignore")
    for candidate in candidates:
        try:
            data = candidate.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise DockerfileError(
                f"cannot read ignore file: {err.strerror}", path=str(candidate)
            ) from err
        return IgnoreRules.from_text(data, source=str(candidate))
    return IgnoreRules(source=str(context / ".dockerignore"))


# --- reading (ignorefile.ReadAll) --------------------------------------------------------


def _read_line(line: str) -> str | None:
    """One line -> its pattern string as ReadAll returns it, or None for no pattern."""
    if line.startswith("#"):  # only an unindented # starts a comment
        return None
    pattern = trim_space(line)
    if not pattern:
        return None
    invert = pattern.startswith("!")
    if invert:
        pattern = trim_space(pattern[1:])
    if pattern:
        pattern = clean_path(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
    return "!" + pattern if invert else pattern


def _new_pattern(raw: str, line: int) -> IgnorePattern:
    """patternmatcher.New for one pattern, compiled at once rather than on first use."""
    pattern = clean_path(trim_space(raw))
    exclusion = pattern.startswith("!")
    if exclusion:
        if len(pattern) == 1:
            raise _BadPattern('illegal exclusion pattern: "!"')
        pattern = pattern[1:]
    if not _valid_match_syntax(pattern):
        raise _BadPattern(f"syntax error in pattern {pattern!r}")
    kind, go_regex = _compile(pattern)
    regex = None
    if kind == _REGEXP:
        try:
            regex = _python_regex(go_regex + "$")
        except (_BadPattern, re.error):
            raise _BadPattern(f"syntax error in pattern {pattern!r}") from None
    return IgnorePattern(pattern, exclusion, line, kind, regex)


def _parents(path: str) -> list[str]:
    """Every ancestor of a clean relative path, outermost first: a/b/c -> [a, a/b]."""
    parent = posixpath.dirname(path)
    if not parent:
        return []
    parts = parent.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _clean_relative(relpath: str) -> str:
    path = clean_path(relpath)
    while path.startswith("/"):
        path = clean_path(path[1:] or ".")
    return path


# --- filepath.Match syntax ---------------------------------------------------------------
# patternmatcher rejects what Go's filepath.Match(pattern, ".") rejects; modern Go checks
# the whole pattern, chunk by chunk, with these rules.


def _valid_match_syntax(pattern: str) -> bool:
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


def _compile(pattern: str) -> tuple[str, str]:
    regex = "^"
    kind = _EXACT
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
                    if kind == _EXACT:
                        kind = _PREFIX
                    else:
                        regex += ".*"
                        kind = _REGEXP
                else:
                    regex += "(.*/)?"  # any number of directories, even none
                    kind = _REGEXP
                if step == 0:
                    kind = _SUFFIX
            else:
                regex += "[^/]*"
                kind = _REGEXP
        elif ch == "?":
            regex += "[^/]"
            kind = _REGEXP
        elif ch in ".+()$":
            # patternmatcher means to escape `.+()|{}$`, but its bitmap overflows a byte
            # for characters >= 64, so `|`, `{` and `}` reach the regexp raw: `a|b` is an
            # alternation and `x{2}` a repeat in Docker. We keep that.
            regex += "\\" + ch
        elif ch == "\\":
            if pos < len(pattern):
                regex += "\\" + pattern[pos]
                pos += 1
                kind = _REGEXP
            else:
                regex += "\\"
        elif ch in "[]":
            regex += ch
            kind = _REGEXP
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


def _python_regex(go: str) -> re.Pattern[str]:
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
                raise _BadPattern("trailing backslash")
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
                        raise _BadPattern(f"unknown or unsupported class [:{name}:]")
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
                raise _BadPattern("invalid repeat count")
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
            raise _BadPattern(f"invalid escape \\{ch}")
        return re.escape(chr(int(digits, 8))), after
    if ch == "x":
        if go.startswith("{", after):
            end = go.find("}", after)
            digits = go[after + 1 : end] if end > 0 else ""
            if not digits or not set(digits) <= _HEX or int(digits, 16) > 0x10FFFF:
                raise _BadPattern("invalid escape \\x{...}")
            return re.escape(chr(int(digits, 16))), end + 1
        digits = go[after : after + 2]
        if len(digits) != 2 or not set(digits) <= _HEX:
            raise _BadPattern("invalid escape \\x")
        return re.escape(chr(int(digits, 16))), after + 2
    if ch == "Q" and not in_class:
        end = go.find("\\E", after)
        literal = go[after:] if end < 0 else go[after:end]
        return re.escape(literal), (len(go) if end < 0 else end + 2)
    # \p{...}/\P{...} Unicode classes and [:^name:] have no Python equivalent: refused.
    raise _BadPattern(f"unsupported escape \\{ch}")


# --- the walker's shortcut ---------------------------------------------------------------


def _may_reach_inside(exception: IgnorePattern, components: list[str]) -> bool:
    """Could `exception` match the directory `components` or anything below it?"""
    segments = exception.text.split("/")
    for depth, component in enumerate(components):
        if depth >= len(segments):
            return True  # it matches an ancestor, so (by parent matching) everything inside
        segment = segments[depth]
        if "**" in segment or "[" in segment or "\\" in segment:
            return True  # classes may match "/", ** any depth: do not try to be clever
        if not _segment_matches(segment, component):
            return False
    return True


def _segment_matches(segment: str, component: str) -> bool:
    test = _segment_test(segment)
    return True if test is None else test(component)


@functools.lru_cache(maxsize=4096)
def _segment_test(segment: str):
    """A matcher for one path segment of a pattern, or None if it cannot be judged alone
    (then callers assume it may match). Cached: a walk asks about the same few segments."""
    kind, go_regex = _compile(segment)
    if kind == _EXACT:
        return segment.__eq__
    try:
        search = _python_regex(go_regex + "$").search
    except (_BadPattern, re.error):
        return None
    return lambda component: search(component) is not None

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
from dataclasses import dataclass, field
from pathlib import Path

from pybuild.errors import DockerfileError
from pybuild.grammar.gocompat import clean_path, scan_lines, trim_space
from pybuild.grammar.gopattern import (
    EXACT,
    PREFIX,
    REGEXP,
    SUFFIX,
    BadPattern,
    compile_pattern,
    python_regex,
    valid_match_syntax,
)

__all__ = ["IgnorePattern", "IgnoreRules", "ParentMatches", "load_ignore"]

_MAX_LINE = 64 * 1024  # bufio.MaxScanTokenSize


@dataclass(frozen=True)
class IgnorePattern:
    """One cleaned pattern: `text` without its `!`, and how patternmatcher matches it."""

    text: str
    exclusion: bool  # a `!` exception: a match re-includes the path
    line: int  # 1-based line in the ignore file
    kind: str = field(default=EXACT, compare=False)
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Decide the test once: matches() runs for every path of a context walk.
        if self.kind == EXACT:
            test = self.text.__eq__
        elif self.kind == PREFIX:
            test = _starts_with(self.text[:-2])  # the pattern minus its trailing **
        elif self.kind == SUFFIX and not self.text.startswith("**"):
            test = _ends_with_bytes(self.text)
        elif self.kind == SUFFIX:
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
            if len(line) >= _MAX_LINE and len(line.encode("utf-8", "surrogateescape")) >= _MAX_LINE:
                # Docker reads the file with a bufio.Scanner, which fails on such a line.
                raise DockerfileError("line too long", path=source, line=number)
            raw = _read_line(line)
            if raw is None:
                continue
            try:
                patterns.append(_new_pattern(raw, number))
            except BadPattern as bad:
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
            raise BadPattern('illegal exclusion pattern: "!"')
        pattern = pattern[1:]
    if not valid_match_syntax(pattern):
        raise BadPattern(f"syntax error in pattern {pattern!r}")
    kind, go_regex = compile_pattern(pattern)
    regex = None
    if kind == REGEXP:
        try:
            regex = python_regex(go_regex + "$")
        except (BadPattern, re.error):
            raise BadPattern(f"syntax error in pattern {pattern!r}") from None
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
    kind, go_regex = compile_pattern(segment)
    if kind == EXACT:
        return segment.__eq__
    try:
        search = python_regex(go_regex + "$").search
    except (BadPattern, re.error):
        return None
    return lambda component: search(component) is not None

"""Physical lines -> logical lines: parser directives, the escape character, comments,
line continuations, heredoc bodies and line spans, following BuildKit's line scanner.

The grammar (dockerfile.lark) then sees one logical line per instruction. The scanner works
on the whole text with a few regular expressions (one match per instruction or per run of
comment lines), not line by line, because its cost is per Python step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from pybuild.errors import DockerfileError

MAX_LINE_BYTES = 65535  # bufio.Scanner's default token size in BuildKit
# Go's unicode.IsSpace without "\n" (FORMAT.md's U set), for character classes.
_U = "\t\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
U_CHARS = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# `# name = value`: RE2 \s (no \v) around `=`; the name is checked case-insensitively.
_DIRECTIVE = re.compile(
    rf"#[{_U}\n]*([A-Za-z][A-Za-z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z", re.S
)
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
# Blank lines and comment lines between instructions, as many as there are.
_SKIP_LINES = re.compile(
    rf"(?:[{_U}]*+(?:#[^\n]*)?\n)+(?:[{_U}]*+(?:#[^\n]*)?\Z)?|[{_U}]*+(?:#[^\n]*)?\Z"
)
_LONG_LINE = re.compile(rf"[^\n]{{{MAX_LINE_BYTES // 4 + 1},}}")


@lru_cache(maxsize=2)
def _patterns(escape: str) -> tuple[re.Pattern, re.Pattern]:
    """(the lines up to and including one instruction's, continuation markers with the
    comment and blank lines after them) for escape character E. A line continues when it ends in E plus blanks
    (CRs before its LF aside), after a character that is not E, or E is all it holds: so
    `foo\\\\` does not continue, nor (as upstream) `foo\\\\\\`."""
    e = re.escape(escape)
    marker = rf"{e}[ \t]*+\r*(?:\n|\Z)"
    skipped = rf"(?!\Z)[{_U}]*+(?:#[^\n]*)?(?:\n|\Z)"  # a comment or blank line: skipped
    # Fast path: the line ends in E after a non-E; else (blanks or CRs at the end) search back.
    continuing = (
        rf"(?:[^\n]*+(?<={e})(?<!{e}{e})|(?=[^\n]*+(?<=[ \t\r]))(?:[^\n]*[^{e}\n])?{e}[ \t]*+\r*+"
        rf"(?=\n|\Z))(?:\n|\Z)"
    )
    last = r"(?:[^\n]*[^\r\n])?"  # the last line without its terminator (all trailing CRs)
    # Blank lines and comments before the instruction, then its lines: group 1 is its text.
    entry = re.compile(
        rf"(?:{_SKIP_LINES.pattern})?[{_U}]*+((?:{continuing}(?:{skipped})*)*{last})\r*(?:\n|\Z)"
    )
    # Starts with the literal E so that the regex engine can scan for it quickly.
    joins = re.compile(rf"{e}(?<!{e}{e}){marker[len(e) :]}(?:{skipped})*")
    return entry, joins


@dataclass(frozen=True)
class Directive:
    name: str  # lowercased: syntax, escape or check
    value: str
    line: int


class LogicalLine(NamedTuple):  # a tuple: one is made per instruction, cheaply
    text: str  # continuations joined, markers stripped, comments dropped
    start_line: int  # 1-based physical line numbers, BuildKit's rules
    end_line: int


def decode(source: str | bytes) -> str:
    """Bytes -> str keeping undecodable bytes (printed later as \\xNN)."""
    if isinstance(source, bytes):
        return source.decode("utf-8", "surrogateescape")
    return source


class LineReader:
    """A cursor over one Dockerfile's text (a lifecycle: directives are read first, then
    logical lines one by one, with heredoc bodies taken on request)."""

    def __init__(self, source: str | bytes, path: str = "Dockerfile"):
        self.path = path
        text = decode(source)
        if text.startswith("\ufeff"):
            text = text[1:]
        self._text = text
        self._check_lengths()
        self._pos = 0  # offset of the next physical line
        self._line = 0  # physical lines consumed so far
        self.escape = "\\"
        self.directives = self._read_directives()
        self._entry, self._joins = _patterns(self.escape)
        self._marker_ends = (self.escape, " ", "\t", "\r")  # how a line ending in one can end

    def _check_lengths(self) -> None:
        text = self._text
        for match in _LONG_LINE.finditer(text):
            line = match.group()
            if len(line.encode("utf-8", "surrogateescape")) > MAX_LINE_BYTES:
                number = text.count("\n", 0, match.start()) + 1
                raise DockerfileError(
                    f"line too long (more than {MAX_LINE_BYTES} bytes)", path=self.path, line=number
                )

    def _read_directives(self) -> tuple[Directive, ...]:
        found: list[Directive] = []
        seen: set[str] = set()
        pos, number = 0, 0
        while pos < len(self._text):
            end = self._text.find("\n", pos)
            end = len(self._text) if end < 0 else end
            line = self._text[pos:end].rstrip("\r\n").lstrip(U_CHARS)
            pos, number = end + 1, number + 1
            match = _DIRECTIVE.match(line) if line.startswith("#") else None
            if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
                break
            name, value = match.group(1).lower(), match.group(2)
            if name in seen:
                raise DockerfileError(
                    f"only one {name} parser directive can be used", path=self.path, line=number
                )
            seen.add(name)
            if name == "escape":
                if value not in ("\\", "`"):
                    raise DockerfileError(
                        f"invalid escape token '{value}' does not match ` or \\",
                        path=self.path,
                        line=number,
                    )
                self.escape = value
            found.append(Directive(name, value, number))
        return tuple(found)

    @property
    def line_count(self) -> int:
        text = self._text
        return text.count("\n") + (1 if text and not text.endswith("\n") else 0)

    def next_logical(self) -> LogicalLine | None:
        """The next instruction's logical line, or None at the end of the file."""
        lines = self.take_logical(1)
        return lines[0] if lines else None

    def take_logical(self, limit: int = -1) -> list[LogicalLine]:
        """The next logical lines (at most `limit`), up to and including the first one that
        holds `<<` (its heredoc bodies must be read before the next line can be found)."""
        text, pos, line = self._text, self._pos, self._line
        size, entry, joins, ends = len(text), self._entry, self._joins, self._marker_ends
        count = text.count
        out: list[LogicalLine] = []
        while pos < size and limit:
            match = entry.match(text, pos)
            body = match.start(1)
            if body >= size:  # only blank lines and comments were left
                line, pos = self.line_count, size
                break
            start = line + count("\n", pos, body) + 1
            pos = match.end()
            line = start + count("\n", body, pos) - (1 if text[pos - 1 : pos] == "\n" else 0)
            logical = match.group(1)
            if "\n" in logical or logical[-1:] in ends:  # else there is no marker to remove
                logical = joins.sub("", logical)
            out.append(LogicalLine(logical, start, line))
            limit -= 1
            if "<<" in logical:
                break
        self._pos, self._line = pos, line
        return out

    def read_heredoc(self, name: str, strip_tabs: bool, start_line: int) -> str:
        """Consume a heredoc body and its terminator line; return the body verbatim (each
        line with one LF). BuildKit compares the terminator after removing CR/LF (and, for
        <<-, leading tabs)."""
        text, pos = self._text, self._pos
        body: list[str] = []
        while pos < len(text):
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            raw = text[pos:end]
            pos = end + 1
            self._line += 1
            candidate = raw.rstrip("\r\n")
            if strip_tabs:
                candidate = candidate.lstrip("\t")
            if candidate == name:
                self._pos = pos
                return "".join(body)
            body.append((raw[:-1] if raw.endswith("\r") else raw) + "\n")
        raise DockerfileError(f"unterminated heredoc {name!r}", path=self.path, line=start_line)

    @property
    def last_line(self) -> int:
        """Number of the last physical line consumed so far."""
        return self._line

"""Physical lines -> logical lines: parser directives, the escape character, comments,
line continuations, heredoc bodies and line spans, following BuildKit's line scanner.

The grammar (dockerfile.lark) then sees one logical line per instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pybuild.errors import DockerfileError

MAX_LINE_BYTES = 65535  # bufio.Scanner's default token size in BuildKit
_U = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # Go IsSpace
_U_CHARS = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# `# name = value`: RE2 \s (no \v) around `=`; the name is checked case-insensitively.
_DIRECTIVE = re.compile(
    rf"#[{_U}]*([A-Za-z][A-Za-z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z", re.S
)
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_SKIP = re.compile(f"[{_U}]*(?:#|\\Z)")  # a comment or blank line inside a continuation


@dataclass(frozen=True)
class Directive:
    name: str  # lowercased: syntax, escape or check
    value: str
    line: int


@dataclass(frozen=True)
class LogicalLine:
    text: str  # continuations joined, markers stripped, comments dropped
    start_line: int  # 1-based physical line numbers, BuildKit's rules
    end_line: int


def decode(source: str | bytes) -> str:
    """Bytes -> str keeping undecodable bytes (printed later as \\xNN)."""
    if isinstance(source, bytes):
        return source.decode("utf-8", "surrogateescape")
    return source


def strip_terminator(line: str) -> str:
    """BuildKit's trimNewline: every trailing CR and LF goes."""
    return line.rstrip("\r\n")


def strip_marker(line: str, escape: str) -> tuple[str, bool]:
    """BuildKit's trimContinuationCharacter: the line without its continuation marker, and
    whether it continues. The marker is E plus trailing blanks, after a character that is not
    E (or alone on the line): `foo\\` does not continue, nor (as upstream) `foo\\\\\\`."""
    last = line[-1:]
    if last == escape:
        body = line[:-1]
    elif last == " " or last == "\t":
        body = line.rstrip(" \t")
        if body[-1:] != escape:
            return line, False
        body = body[:-1]
    else:
        return line, False
    if body[-1:] == escape:
        return line, False
    return body, True


class LineReader:
    """A cursor over the physical lines of one Dockerfile (a lifecycle: directives are read
    first, then logical lines one by one, with heredoc bodies taken on request)."""

    def __init__(self, source: str | bytes, path: str = "Dockerfile"):
        self.path = path
        text = decode(source)
        self._lines = text.split("\n")
        if self._lines and self._lines[-1] == "":
            self._lines.pop()  # an empty tail after the final newline is not a line
        if self._lines and self._lines[0].startswith("\ufeff"):
            self._lines[0] = self._lines[0][1:]
        self._check_lengths(text)
        self._pos = 0  # index of the next physical line to read (line number - 1)
        self.escape = "\\"
        self.directives = self._read_directives()

    def _check_lengths(self, text: str) -> None:
        # Cheap in the common case: only files with a long enough line are looked at.
        longest = max(map(len, self._lines), default=0)
        if longest <= MAX_LINE_BYTES // 4 or (longest <= MAX_LINE_BYTES and text.isascii()):
            return
        for number, line in enumerate(self._lines, 1):
            if (
                len(line) > MAX_LINE_BYTES // 4
                and len(line.encode("utf-8", "surrogateescape")) > MAX_LINE_BYTES
            ):
                raise DockerfileError(
                    f"line too long (more than {MAX_LINE_BYTES} bytes)", path=self.path, line=number
                )

    def _read_directives(self) -> tuple[Directive, ...]:
        found: list[Directive] = []
        seen: set[str] = set()
        for number, raw in enumerate(self._lines, 1):
            line = strip_terminator(raw).lstrip(_U_CHARS)
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
        return len(self._lines)

    def next_logical(self) -> LogicalLine | None:
        """The next instruction's logical line, or None at the end of the file."""
        lines, count, escape = self._lines, len(self._lines), self.escape
        pos = self._pos
        while pos < count:
            raw = lines[pos]
            pos += 1
            if raw[-1:] == "\r":
                raw = raw.rstrip("\r\n")
            if raw[:1] in _U_CHARS:
                raw = raw.lstrip(_U_CHARS)
            if not raw or raw[0] == "#":
                continue  # blank lines and comments between instructions (never continue)
            start = pos
            text, continues = strip_marker(raw, escape)
            if not continues:
                self._pos = pos
                return LogicalLine(text, start, start)
            pieces = [text]
            skip = _SKIP.match
            while continues and pos < count:
                raw = lines[pos]
                pos += 1
                if raw[-1:] == "\r":
                    raw = raw.rstrip("\r\n")
                if skip(raw):
                    continue  # comments and empty lines inside a continuation are skipped
                if raw[-1:] == escape and raw[-2:-1] != escape:  # the common case, fast
                    pieces.append(raw[:-1])
                    continue
                piece, continues = strip_marker(raw, escape)
                pieces.append(piece)
            self._pos = pos
            return LogicalLine("".join(pieces), start, pos)
        self._pos = pos
        return None

    def read_heredoc(self, name: str, strip_tabs: bool, start_line: int) -> str:
        """Consume a heredoc body and its terminator line; return the body verbatim (each
        line with one LF). BuildKit compares the terminator after removing CR/LF (and, for
        <<-, leading tabs)."""
        lines = self._lines
        body: list[str] = []
        while self._pos < len(lines):
            raw = lines[self._pos]
            self._pos += 1
            candidate = strip_terminator(raw)
            if strip_tabs:
                candidate = candidate.lstrip("\t")
            if candidate == name:
                return "".join(body)
            body.append((raw[:-1] if raw.endswith("\r") else raw) + "\n")
        raise DockerfileError(f"unterminated heredoc {name!r}", path=self.path, line=start_line)

    @property
    def last_line(self) -> int:
        """Number of the last physical line consumed so far."""
        return self._pos

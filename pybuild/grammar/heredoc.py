"""Heredoc markers in a logical line (`<<EOF`, `<<-EOF`, `<<'EOF'`, `3<<EOF`), BuildKit's
rules: shell-like word splitting of the line, then each word tested as a marker."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pybuild.grammar.forms import U_CHARS

_U = re.escape(U_CHARS)
# Shell-like words: quotes and `\` escapes kept verbatim; `<<` swallows the blanks after it.
_WORD = re.compile(rf"""(?:'[^']*'|"(?:[^"\\]|\\.)*"|\\.|\\\Z|<<[ \t\r]*|[^{_U}'"\\])+""", re.S)
_SPACE = re.compile(rf"[{_U}]+")
_MARKER = re.compile(r"(\d*)<<(-?)[\t\n\f\r ]*([^<]*)\Z", re.S)
# Quote removal of a marker name (BuildKit's ProcessWords with `\` as escape, no variables).
_NAME_PART = re.compile(rf"""'([^']*)'|"((?:[^"\\]|\\.)*)"|\\(.)|([^'"\\{_U}]+)|([{_U}]+)""", re.S)


class HeredocNameError(ValueError):
    """A marker whose name cannot be lexed (an unterminated quote)."""


@dataclass(frozen=True)
class Marker:
    name: str
    expand: bool  # False when any part of the name was quoted
    strip_tabs: bool  # <<-
    fd: int | None  # 3<<EOF


def _split_words(line: str) -> list[str] | None:
    words: list[str] = []
    pos, end = 0, len(line)
    while pos < end:
        space = _SPACE.match(line, pos)
        if space:
            pos = space.end()
            continue
        match = _WORD.match(line, pos)
        if match is None:  # an unterminated quote: no heredocs at all
            return None
        words.append(match.group())
        pos = match.end()
    return words


def _unquote_name(rest: str) -> tuple[list[str], bool]:
    """Words of `rest` after quote removal, and whether anything was quoted."""
    words: list[str] = []
    current: list[str] = []
    quoted = False
    pos, end = 0, len(rest)
    while pos < end:
        match = _NAME_PART.match(rest, pos)
        if match is None:
            raise HeredocNameError(f"unterminated quote in heredoc name {rest!r}")
        single, double, escaped, plain, space = match.groups()
        if space is not None:
            if current:
                words.append("".join(current))
                current = []
        elif single is not None:
            current.append(single)
            quoted = True
        elif double is not None:
            current.append(re.sub(r'\\([\\"$`\n])', r"\1", double))
            quoted = True
        elif escaped is not None:
            current.append(escaped)
        else:
            current.append(plain)
        pos = match.end()
    if current or (quoted and not words):
        words.append("".join(current))
    return words, quoted


def heredoc_markers(line: str) -> list[Marker]:
    """The heredoc markers of a RUN/ADD/COPY line, in order (none for most lines)."""
    if "<<" not in line:
        return []
    words = _split_words(line)
    if not words:
        return []
    markers: list[Marker] = []
    for word in words:
        match = _MARKER.match(word)
        if match is None or not match.group(3):
            continue
        names, quoted = _unquote_name(match.group(3))
        if len(names) != 1:
            continue
        fd = int(match.group(1)) if match.group(1) else None
        markers.append(Marker(names[0], not quoted, match.group(2) == "-", fd))
    return markers

"""Small Go standard-library behaviours that Docker's text handling depends on.

BuildKit and moby/patternmatcher are Go; where Python's closest function differs in an
edge (white space, path cleaning, line splitting) we use these instead.
"""

from __future__ import annotations

import posixpath
import unicodedata

# Go's unicode.IsSpace (the Unicode White_Space property). Python's str.isspace also counts
# \x1c-\x1f, which Go does not.
GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACE_CHARS = "".join(sorted(GO_SPACE))


def trim_space(text: str) -> str:
    """strings.TrimSpace."""
    return text.strip(_GO_SPACE_CHARS)


def clean_path(path: str) -> str:
    """filepath.Clean on Linux: like posixpath.normpath, except that a leading `//` is
    collapsed too (POSIX lets normpath keep exactly two)."""
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    return cleaned


def scan_lines(text: str) -> list[str]:
    """bufio.ScanLines: split on \\n only, drop one trailing \\r per line, no empty last
    line for a final newline. (str.splitlines would also split on \\v, \\x1c, \\u2028...)"""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def quote(text: str) -> str:
    """Roughly Go's %q: double quotes, backslash escapes for quotes and controls."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x80
                else f"\\u{code:04x}"
                if code <= 0xFFFF
                else f"\\U{code:08x}"
            )
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)

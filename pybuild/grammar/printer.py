"""BuildKit's printed form of a parsed Dockerfile (the `result` files of its parser tests):
one `(keyword ["--flag"...] "item"...)` line per instruction, strings quoted as Go does."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pybuild.grammar.forms import trim_u

if TYPE_CHECKING:
    from pybuild.grammar.parser import Dockerfile, Instruction

_SHORT = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}
_SPECIAL = re.compile(r'[\\"]|[^\x20-\x7e]')


def _escape(match: re.Match) -> str:
    ch = match.group()
    cp = ord(ch)
    if ch in _SHORT:
        return _SHORT[ch]
    if 0xDC80 <= cp <= 0xDCFF:  # an undecodable byte (surrogateescape)
        return "\\x%02x" % (cp - 0xDC00)
    if ch.isprintable():
        return ch
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02x}"
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def quote(text: str) -> str:
    """Go's strconv.Quote for a string decoded with surrogateescape."""
    return '"' + _SPECIAL.sub(_escape, text) + '"'


def render(instr: Instruction) -> str:
    text = instr.keyword
    if instr.flags:
        text += " [" + " ".join(quote(f) for f in instr.flags) + "]"
    for item in instr.args:
        text += " " + quote(item)
    if instr.inner is not None:
        text += " (" + render(instr.inner) + ")"
    return trim_u(text)


def dump(tree: Dockerfile) -> str:
    """BuildKit's `result` format: one line per instruction, in source order."""
    return "".join(f"({render(instr)})\n" for instr in tree.instructions)

"""The argument forms the grammar cannot decide alone, BuildKit's rules: JSON (exec) form
with its fallback, A-white-space lists, HEALTHCHECK's type, flag words (quote removal and
BuildKit's byte-wise reading), heredoc markers. Pure functions on strings."""

from __future__ import annotations

import json
import re

U_CHARS = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
A_SPLIT = re.compile(r"[\t\v\f\r ]+")
_SURROGATES = re.compile("[\ud800-\udfff]")
_B_BYTES = b"\t\n\v\f\r \x85\xa0"
_B_SEARCH = re.compile(rb"[\t\n\v\f\r \x85\xa0]")


class NotStringArray(ValueError):
    """A JSON array with an element that is not a string: an error, not a fallback."""


def trim_u(text: str) -> str:
    return text.strip(U_CHARS)


def to_unicode(text: str) -> str:
    """Undecodable bytes (and lone surrogates) -> U+FFFD, as Go's range over a string."""
    return _SURROGATES.sub("\ufffd", text) if not text.isascii() else text


def _no_constant(name: str):
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(text)  # Go: out of float64 range is a syntax error
    return value


def json_items(args: str) -> tuple[str, ...] | None:
    """The strings of a JSON array, or None when `args` is not a JSON array (fall back).
    Raises NotStringArray for a valid array with a non-string element."""
    text = args.lstrip(U_CHARS)
    if not text.startswith("["):
        return None
    try:
        value = json.loads(
            text, parse_constant=_no_constant, parse_float=_finite, parse_int=_finite
        )
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    for item in value:
        if not isinstance(item, str):
            raise NotStringArray(f"cannot use non-string JSON value {json.dumps(item)[:40]}")
    return tuple(to_unicode(item) for item in value)


def list_items(args: str) -> tuple[str, ...]:
    """A-white-space separated list (FROM, EXPOSE, and COPY/ADD/VOLUME's fallback)."""
    args = trim_u(args)
    return tuple(A_SPLIT.split(args)) if args else ()


def healthcheck_parts(args: str) -> tuple[str, str] | None:
    """(type, rest) by BuildKit's byte-wise white space; None when there is no type."""
    data = args.encode("utf-8", "surrogateescape")
    match = _B_SEARCH.search(data)
    if match is None:
        kind, rest = data, b""
    else:
        kind, rest = data[: match.start()], data[match.start() :].lstrip(_B_BYTES)
    if not kind:
        return None
    return (kind.decode("utf-8", "surrogateescape"), rest.decode("utf-8", "surrogateescape"))


def unquote_flag(word: str) -> str:
    """Quote and escape removal in a flag word lexed by the grammar (escape is `\\` here)."""
    if "'" not in word and '"' not in word and "\\" not in word:
        return word
    out: list[str] = []
    quote = ""
    i, end = 0, len(word)
    while i < end:
        ch = word[i]
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        elif ch == "\\":
            i += 1
            if i < end:
                out.append(word[i])
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def extract_flags_bytes(remainder: str, escape: str) -> tuple[list[str], str]:
    """BuildKit's extractBuilderFlags, byte by byte: flags read as Latin-1, and the arguments.
    Used only for flag words with non-ASCII characters, which the grammar reads by code
    point."""
    data = remainder.encode("utf-8", "surrogateescape")
    esc = ord(escape)
    flags: list[str] = []
    pos, end = 0, len(data)
    while True:
        while pos < end and data[pos] in _B_BYTES:
            pos += 1
        if pos >= end:
            return flags, ""
        if data[pos : pos + 2] != b"--":
            return flags, data[pos:].decode("utf-8", "surrogateescape")
        word = bytearray()
        quote = 0
        blank_ok = False
        while pos < end:
            byte = data[pos]
            if not quote and byte in _B_BYTES:
                break
            if not quote and byte in (0x22, 0x27):
                quote, blank_ok = byte, True
            elif quote and byte == quote:
                quote = 0
            elif byte == esc:
                if pos + 1 == end:
                    quote = 0
                else:
                    pos += 1
                    word.append(data[pos])
            else:
                word.append(byte)
            pos += 1
        text = word.decode("latin-1")
        if pos >= end:
            if text != "--" and (blank_ok or text):
                flags.append(text)
            return flags, ""
        if text == "--":
            return flags, data[pos:].decode("utf-8", "surrogateescape")
        if blank_ok or text:
            flags.append(text)

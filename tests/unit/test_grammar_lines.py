"""lines.py scans the whole text with regular expressions; here a plain line-by-line port
of FORMAT.md 3.2-3.5 checks it on random text (both escape characters)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pybuild.grammar.lines import U_CHARS, LineReader


def _strip_marker(line: str, escape: str) -> tuple[str, bool]:
    """FORMAT.md 3.4, as the regex `([^E])E[ \\t]*\\Z|\\AE[ \\t]*\\Z`, written out."""
    body = line.rstrip(" \t")
    if not body.endswith(escape):
        return line, False
    body = body[:-1]
    if body.endswith(escape):
        return line, False
    return body, True


def reference(text: str, escape: str) -> list[tuple[str, int, int]]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    out, pos = [], 0
    while pos < len(lines):
        first = lines[pos].rstrip("\r\n").lstrip(U_CHARS)
        pos += 1
        start = pos
        if first.startswith("#"):
            first = ""
        piece, continues = _strip_marker(first, escape)
        if not continues and not piece:
            continue
        pieces = [piece]
        while continues and pos < len(lines):
            raw = lines[pos].rstrip("\r\n")
            pos += 1
            stripped = raw.lstrip(U_CHARS)
            if not stripped or stripped.startswith("#"):
                continue
            piece, continues = _strip_marker(raw, escape)
            pieces.append(piece)
        out.append(("".join(pieces), start, pos))
    return out


def scanned(text: str) -> tuple[str, list[tuple[str, int, int]]]:
    reader = LineReader(text)
    out = []
    while (line := reader.next_logical()) is not None:
        out.append((line.text, line.start_line, line.end_line))
    return reader.escape, out


PIECES = st.sampled_from(
    [
        "RUN",
        "a",
        " ",
        "\t",
        "\\",
        "`",
        "#",
        "\n",
        "\r",
        "\r\n",
        "\u00a0",
        "\u2003",
        "\v",
        " \\\n",
        "\\\\\n",
        "`\n",
        "# c\n",
        "\n\n",
        "x",
        "\ufeff",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(PIECES, max_size=40), st.sampled_from(["", "# escape=`\n", "#escape=\\\n"]))
def test_regex_scanner_matches_line_by_line_port(pieces, directive):
    text = directive + "".join(pieces)
    escape, got = scanned(text)
    assert got == reference(text, escape)


def test_examples():
    text = "# escape=`\n\n  RUN a `\n  # c `\n\n   b\nCMD c \\\n"
    assert scanned(text) == ("`", [("RUN a    b", 3, 6), ("CMD c \\", 7, 7)])
    assert scanned("RUN a \\\r\n\r\n b \\\n# x")[1] == [("RUN a  b ", 1, 4)]
    assert scanned("\\\n\\\n")[1] == [("", 1, 2)]

"""Differential check against the `dockerfile-parse` package (a test dependency): on every
real-world Dockerfile (official images) both give the same instructions (keyword, value,
line span). Where dockerfile-parse deviates from BuildKit we follow BuildKit; the known
deviations are listed below as data, each with its reason, and checked both ways."""

from __future__ import annotations

import io
import itertools
import re

import pytest

from pybuild.grammar import parse
from pybuild.grammar.forms import trim_u

dockerfile_parse = pytest.importorskip("dockerfile_parse")

_KEYWORD_SPLIT = re.compile(r"[\t\v\f\r ]+")


def theirs(data: bytes) -> list[tuple[str, str, int, int]]:
    parser = dockerfile_parse.DockerfileParser(fileobj=io.BytesIO(data), env_replace=False)
    return [
        (s["instruction"], s["value"], s["startline"] + 1, s["endline"] + 1)
        for s in parser.structure
        if s["instruction"] != "COMMENT"
    ]


def ours(data: bytes) -> list[tuple[str, str, int, int]]:
    """Keyword (upper case, as dockerfile-parse gives it), value (the logical line after the
    keyword: continuations joined, comments inside them dropped) and 1-based line span."""
    result = []
    for instr in parse(data).instructions:
        parts = _KEYWORD_SPLIT.split(trim_u(instr.original), maxsplit=1)
        result.append(
            (
                instr.keyword.upper(),
                parts[1] if len(parts) > 1 else "",
                instr.start_line,
                instr.end_line,
            )
        )
    return result


# Real-world files where the two disagree: path relative to real-world/ -> reason.
# (None today: all 129 agree instruction for instruction.)
REAL_WORLD_DEVIATIONS: dict[str, str] = {}


def test_real_world_instructions_match_dockerfile_parse(shared_dir, real_world_dockerfiles):
    base = shared_dir / "conformance" / "real-world"
    assert len(real_world_dockerfiles) == 129
    mismatched = {}
    for path in real_world_dockerfiles:
        data = path.read_bytes()
        a, b = ours(data), theirs(data)
        if a != b:
            first = next((x, y) for x, y in itertools.zip_longest(a, b) if x != y)
            mismatched[str(path.relative_to(base))] = first
    unexplained = {k: v for k, v in mismatched.items() if k not in REAL_WORLD_DEVIATIONS}
    assert not unexplained
    assert set(REAL_WORLD_DEVIATIONS) <= set(mismatched), "a listed deviation is gone"


# Inputs on which dockerfile-parse (2.x) differs from BuildKit: what it returns, what
# BuildKit (and we) return, and why.
DEVIATIONS = [
    pytest.param(
        b"FROM a\nRUN <<EOF\necho hi\nEOF\n",
        [("FROM", "a", 1, 1), ("RUN", "<<EOF", 2, 2), ("ECHO", "hi", 3, 3), ("EOF", "", 4, 4)],
        [("FROM", "a", 1, 1), ("RUN", "<<EOF", 2, 4)],
        id="heredoc: dockerfile-parse has no heredocs and reads the body as instructions",
    ),
    pytest.param(
        b"FROM a\nRUN echo a\\\\\nRUN b\n",
        [("FROM", "a", 1, 1), ("RUN", "echo a\\RUN b", 2, 3)],
        [("FROM", "a", 1, 1), ("RUN", "echo a\\\\", 2, 2), ("RUN", "b", 3, 3)],
        id="doubled escape: not a continuation in BuildKit (trailing-backslash case)",
    ),
    pytest.param(
        b"FROM a\nRUN a \\\n\n b\n",
        [("FROM", "a", 1, 1), ("RUN", "a ", 2, 3), ("B", "", 4, 4)],
        [("FROM", "a", 1, 1), ("RUN", "a  b", 2, 4)],
        id="blank line inside a continuation: BuildKit skips it and goes on",
    ),
    pytest.param(
        b"\xef\xbb\xbfFROM a\n",
        [("\ufeffFROM", "a", 1, 1)],
        [("FROM", "a", 1, 1)],
        id="byte-order mark: BuildKit drops it from the first line",
    ),
    pytest.param(
        b"FROM a\n\\\n",
        [("FROM", "a", 1, 1)],
        [("FROM", "a", 1, 1), ("", "", 2, 2)],
        id="a lone continuation marker: BuildKit makes an empty instruction",
    ),
]


@pytest.mark.parametrize("data, dockerfile_parse_says, buildkit_says", DEVIATIONS)
def test_known_deviation(data, dockerfile_parse_says, buildkit_says):
    assert ours(data) == buildkit_says
    assert theirs(data) == dockerfile_parse_says

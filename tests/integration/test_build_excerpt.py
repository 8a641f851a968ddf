"""A failed build shows the failing step's Dockerfile lines (BuildKit's `>>>` excerpt) above
the error, for a RUN that fails, a COPY of a missing file and a Dockerfile syntax error."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root


def test_failed_steps_print_the_dockerfile_excerpt(builder, tmp_path):
    ctx = builder.context("FROM busybox\nENV A=1\nRUN echo start && \\\n    exit 3\nCMD [\"sh\"]\n")
    res = builder.cli("-q", ctx)
    assert res.returncode == 1
    assert ("Dockerfile:3\n--------------------\n"
            "   2 |     ENV A=1\n"
            "   3 | >>> RUN echo start && \\\n"
            "   4 | >>>     exit 3\n"
            '   5 |     CMD ["sh"]\n'
            "--------------------\n"
            "error: Dockerfile:3 RUN echo start &&     exit 3: process ") in res.stderr
    other = tmp_path / "Other.dockerfile"
    other.write_text("FROM busybox AS base\nRUN true\nCOPY missing.txt /\n")
    res = builder.cli("-f", str(other), "--progress", "plain", ctx)
    assert res.returncode == 1
    assert "Other.dockerfile:3\n--------------------\n" in res.stderr
    assert "   3 | >>> COPY missing.txt /\n" in res.stderr
    typo = builder.context("FROM busybox\nRUNN true\n")
    res = builder.cli("-q", typo)
    assert res.returncode == 1
    assert "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> RUNN true\n" \
        in res.stderr
    ok = builder.cli("-q", "-t", "fine:1", builder.context("FROM busybox\n"))
    assert ok.returncode == 0 and "-----" not in ok.stderr

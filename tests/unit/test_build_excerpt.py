"""The Dockerfile excerpt a failed build prints, line for line as BuildKit's Source.Print."""

from __future__ import annotations

from pybuild.cli.build_excerpt import error_lines, excerpt
from pybuild.errors import BuildError, DockerfileError

TEXT = b"FROM busybox\nENV A=1\nRUN echo a && \\\n    false\nCMD [\"sh\"]\nLABEL x=y\n"


def test_one_line_gets_two_lines_each_side():
    assert excerpt(TEXT, "Dockerfile", 2, 2) == (
        "Dockerfile:2\n--------------------\n"
        "   1 |     FROM busybox\n"
        "   2 | >>> ENV A=1\n"
        "   3 |     RUN echo a && \\\n"
        "   4 |         false\n"
        "--------------------\n")


def test_a_multi_line_step_gets_one_line_each_side():
    assert excerpt(TEXT, "Dockerfile", 3, 4).splitlines()[2:6] == [
        "   2 |     ENV A=1", "   3 | >>> RUN echo a && \\", "   4 | >>>     false",
        '   5 |     CMD ["sh"]']


def test_edges_of_the_file():
    first = excerpt(TEXT, "Dockerfile", 1, 1).splitlines()
    assert first[0] == "Dockerfile:1" and first[2] == "   1 | >>> FROM busybox"
    assert [line[:4] for line in first[2:-1]] == ["   1", "   2", "   3"]
    last = excerpt(b"FROM busybox\nRUN false\n", "Dockerfile", 2, 2).splitlines()
    assert last[2:-1] == ["   1 |     FROM busybox", "   2 | >>> RUN false", "   3 |     "]
    assert excerpt(TEXT, "Dockerfile", 0, 0) == excerpt(TEXT, "Dockerfile", 99, 99) == ""


def test_which_errors_point_at_lines():
    err = BuildError("boom", step="Dockerfile:3 RUN x")
    assert error_lines(err, "Dockerfile") is None
    err.lines = (3, 4)
    assert error_lines(err, "Dockerfile") == (3, 4)
    assert error_lines(DockerfileError("bad", path="Dockerfile", line=7), "Dockerfile") == (7, 7)
    assert error_lines(DockerfileError("bad", path=".dockerignore", line=1), "Dockerfile") is None
    assert error_lines(DockerfileError("bad", path="Dockerfile"), "Dockerfile") is None

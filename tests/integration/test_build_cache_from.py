"""RUN --mount=type=cache,from=<stage>,source=<dir>: a new cache starts as a copy of that dir
(owners kept), is shared by the steps that name the same id and source, and a different
source content makes a cache of its own, as BuildKit keys cache dirs by id and base."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root

DOCKERFILE = ("FROM busybox AS seed\n"
              "RUN mkdir -p /deps && echo {version} > /deps/lock && chown 7:8 /deps/lock\n"
              "FROM busybox\n"
              "RUN --mount=type=cache,target=/c,from=seed,source=/deps "
              "(cat /c/lock; stat -c '%u %g' /c/lock; ls /c) > /first; echo added > /c/extra\n"
              "RUN --mount=type=cache,target=/c,from=seed,source=/deps ls /c > /second\n")


def test_cache_mount_seeded_from_a_stage(builder):
    res = builder.cli("-q", "-t", "seeded:1", builder.context(DOCKERFILE.format(version="v1")))
    assert res.returncode == 0, res.stderr
    assert builder.cat("seeded:1", "/first").split() == ["v1", "7", "8", "lock"]
    assert builder.cat("seeded:1", "/second").split() == ["extra", "lock"]
    assert builder.pyrun("run", "--rm", "seeded:1", "ls", "/c").returncode != 0  # not in a layer
    res = builder.cli("-q", "-t", "seeded:2", builder.context(DOCKERFILE.format(version="v2")))
    assert res.returncode == 0, res.stderr
    assert builder.cat("seeded:2", "/first").split() == ["v2", "7", "8", "lock"]
    bad = builder.context("FROM busybox AS seed\n"
                          "FROM busybox\nRUN --mount=type=cache,target=/c,from=seed,source=/nope "
                          "true\n")
    res = builder.cli("-q", bad)
    assert res.returncode == 1 and "Dockerfile:3" in res.stderr and "/nope" in res.stderr

"""RUN --mount=type=tmpfs is a real tmpfs of the step's own, as in BuildKit: `size=` limits
it, it starts empty every time, and nothing written to it reaches the layer."""

from __future__ import annotations

import pytest

from tests.plugins.runtime import mount_points

pytestmark = pytest.mark.root


def test_tmpfs_mount_with_a_size(builder, tmp_path):
    ctx = builder.context(
        "FROM busybox\n"
        "RUN --mount=type=tmpfs,target=/t,size=1m "
        "(grep ' /t ' /proc/mounts | cut -d' ' -f3; df -k /t | tail -1 | awk '{print $2}'; "
        "stat -c %a /t; dd if=/dev/zero of=/t/big bs=1k count=2048 2>/dev/null && echo fits "
        "|| echo full) > /seen\n"
        "RUN --mount=type=tmpfs,target=/t ls -A /t > /empty; echo x > /t/x\n")
    before = mount_points(tmp_path)
    res = builder.cli("--progress", "plain", "-t", "tmpfs:1", ctx)
    assert res.returncode == 0, res.stderr
    assert builder.cat("tmpfs:1", "/seen").split() == ["tmpfs", "1024", "1777", "full"]
    assert builder.cat("tmpfs:1", "/empty") == ""
    assert builder.pyrun("run", "--rm", "tmpfs:1", "ls", "-A", "/t").stdout == ""
    assert mount_points(tmp_path) == before
    bad = builder.context("FROM busybox\nRUN --mount=type=tmpfs,target=/t,size=lots true\n")
    res = builder.cli("-q", bad)
    assert res.returncode == 1 and "Dockerfile:2: invalid value for size: lots" in res.stderr

"""Cgroups on the real kernel (v1 controllers here, v2 on a pure-v2 host): OOM kill detected,
a pids limit stops a fork loop, cpu quota, stats, freeze, and nothing left behind."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap

import pytest

from pybuild.runtime.cgroups import Cgroup, Limits, detect

pytestmark = pytest.mark.root


@pytest.fixture
def cgroup_factory():
    made: list[Cgroup] = []

    def make(limits: Limits | None = None) -> Cgroup:
        cg = Cgroup.create(f"test-{secrets.token_hex(6)}", limits)
        made.append(cg)
        return cg

    yield make
    for cg in made:
        if cg.exists():
            cg.kill_all()
            cg.remove()
        assert not cg.exists(), cg.paths


def _spawn(cg: Cgroup, code: str) -> subprocess.Popen:
    """A python child that joins `cg` before it runs `code`."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        preexec_fn=lambda: cg.add(os.getpid()),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


def test_detects_this_host():
    assert detect() in ("v1", "hybrid", "v2")


def test_oom_kill_is_detected(cgroup_factory):
    cg = cgroup_factory(Limits(memory=32 << 20))
    proc = _spawn(cg, "data = b'x' * (100 << 20)\nprint('survived')")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL  # the runtime reports 128 + 9 = 137
    assert out == ""
    assert cg.oom_killed() and cg.stats().oom_kills >= 1
    cg.remove()
    assert not cg.exists()


def test_no_oom_under_the_limit(cgroup_factory):
    cg = cgroup_factory(Limits(memory=64 << 20))
    proc = _spawn(cg, "data = b'x' * (8 << 20)\nprint('ok')")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "ok"
    assert not cg.oom_killed()


def test_pids_limit_stops_a_fork_loop(cgroup_factory):
    cg = cgroup_factory(Limits(pids=8))
    proc = _spawn(cg, """
        import os, time
        n = 0
        for _ in range(40):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(120)
                os._exit(0)
            n += 1
        print(n, flush=True)
        time.sleep(120)
    """)
    try:
        forked = int(proc.stdout.readline())
        assert forked == 7  # 8 pids: the parent and 7 children
        assert cg.stats().pids_current == 8
    finally:
        cg.kill_all()
        proc.wait(timeout=30)
    cg.remove()
    assert not cg.exists()


def test_cpu_quota_for_half_a_cpu(cgroup_factory):
    cg = cgroup_factory(Limits(cpus=0.5))
    assert cg.cpu_limit() == (50_000, 100_000)
    cg.set_limits(Limits(cpus=1.25))
    assert cg.cpu_limit() == (125_000, 100_000)


def test_stats_are_sane_and_freeze_works(cgroup_factory):
    cg = cgroup_factory(Limits(memory=128 << 20, pids=50))
    proc = _spawn(cg, """
        import time
        data = b'y' * (16 << 20)
        x = 0
        for i in range(2_000_000):
            x += i
        print('ready', flush=True)
        time.sleep(120)
    """)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert cg.pids() == [proc.pid]
        s = cg.stats()
        assert 16 << 20 <= s.memory_usage <= 128 << 20
        assert s.memory_limit == 128 << 20
        assert s.cpu_usage_ns > 0
        assert s.pids_current == 1
        assert s.oom_kills == 0
        cg.freeze()
        assert cg.frozen()
        with open(f"/proc/{proc.pid}/status") as f:
            status = f.read()
        assert "State:\tD" in status or "State:\tS" in status
        cg.thaw()
        assert not cg.frozen()
        again = Cgroup.of_pid(proc.pid)
        assert again.paths == cg.paths
    finally:
        cg.kill_all()
        proc.wait(timeout=30)
    assert cg.pids() == []
    cg.remove()
    assert not cg.exists()

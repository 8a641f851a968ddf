"""Cgroup arithmetic and the v2 code path, written against a fake cgroup2 tree (this machine's
cgroup2 mount holds no memory/cpu/pids controllers, so the v2 files are checked as files)."""

from __future__ import annotations

import os
import shutil

import pytest

from pybuild.errors import ContainerError
from pybuild.runtime.cgroups import Cgroup, Limits, cpu_quota, parse_bytes


@pytest.mark.parametrize(
    "cpus, quota",
    [(0.5, 50_000), (1, 100_000), (1.5, 150_000), (2, 200_000), (0.01, 1_000), (0.333, 33_300)],
)
def test_cpu_quota_math(cpus, quota):
    assert cpu_quota(cpus) == (quota, 100_000)


@pytest.mark.parametrize("cpus", [0, -1, 0.001])
def test_cpu_quota_rejects(cpus):
    with pytest.raises(ContainerError):
        cpu_quota(cpus)


@pytest.mark.parametrize(
    "text, value",
    [("32m", 32 << 20), ("32M", 32 << 20), ("1g", 1 << 30), ("512k", 512 << 10),
     ("1024", 1024), ("1024b", 1024), ("1.5g", 3 << 29), ("64mb", 64 << 20), ("-1", -1)],
)
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "abc", "12x", "-5m", "m"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ContainerError):
        parse_bytes(text)


@pytest.mark.parametrize(
    "limits, total",
    [(Limits(memory=100), 200), (Limits(memory=100, memory_swap=-1), -1),
     (Limits(memory=100, memory_swap=100), 100), (Limits(memory=100, memory_swap=300), 300),
     (Limits(), None)],
)
def test_swap_total_docker_rules(limits, total):
    assert limits.swap_total() == total


def test_swap_smaller_than_memory_is_rejected():
    with pytest.raises(ContainerError, match="memoryswap"):
        Limits(memory=200, memory_swap=100).swap_total()
    with pytest.raises(ContainerError):
        Limits(memory_swap=100).swap_total()


def _read(path):
    with open(path) as f:
        return f.read()


def test_v2_writes_to_fake_tree(tmp_path):
    root = tmp_path / "cg2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    cg = Cgroup.create("c1", Limits(memory=32 << 20, cpus=0.5, pids=20), v2_root=str(root))
    d = root / "pybuild" / "c1"
    assert cg.version == "v2" and cg.paths == {"": str(d)}
    assert _read(root / "cgroup.subtree_control") == "+memory +cpu +pids +io"
    assert _read(root / "pybuild" / "cgroup.subtree_control") == "+memory +cpu +pids +io"
    assert _read(d / "memory.max") == str(32 << 20)
    assert _read(d / "memory.swap.max") == str(32 << 20)  # Docker: swap = memory when unset
    assert _read(d / "cpu.max") == "50000 100000"
    assert _read(d / "pids.max") == "20"
    assert cg.cpu_limit() == (50_000, 100_000)

    cg.set_limits(Limits(memory=64 << 20, memory_swap=-1, pids=0))
    assert _read(d / "memory.swap.max") == "max"
    assert _read(d / "pids.max") == "max"

    cg.add(4242)
    assert _read(d / "cgroup.procs") == "4242"
    cg.freeze()
    assert _read(d / "cgroup.freeze") == "1" and cg.frozen()
    cg.thaw()
    assert not cg.frozen()

    (d / "memory.current").write_text("1048576\n")
    (d / "memory.stat").write_text("anon 1000\ninactive_file 4096\n")
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (d / "pids.current").write_text("3\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    s = cg.stats()
    assert (s.memory_usage, s.memory_cache, s.memory_limit) == (1 << 20, 4096, 64 << 20)
    assert (s.cpu_usage_ns, s.pids_current, s.oom_kills) == (1_500_000, 3, 1)
    assert cg.oom_killed()

    (d / "cgroup.kill").write_text("")
    cg.kill_all()
    assert _read(d / "cgroup.kill") == "1"
    with pytest.raises(ContainerError, match="already exists"):
        Cgroup.create("c1", v2_root=str(root))
    shutil.rmtree(d)
    assert not cg.exists()


def test_v2_unlimited_memory_reads_as_none(tmp_path):
    cg = Cgroup.create("c2", v2_root=str(tmp_path))
    d = tmp_path / "pybuild" / "c2"
    (d / "memory.max").write_text("max\n")
    (d / "memory.events").write_text("oom_kill 0\n")
    assert cg.stats().memory_limit is None and not cg.oom_killed()


@pytest.mark.parametrize("name", ["", "..", "a/b"])
def test_bad_names(tmp_path, name):
    with pytest.raises(ContainerError):
        Cgroup.create(name, v2_root=str(tmp_path))


def test_small_memory_limit_rejected(tmp_path):
    with pytest.raises(ContainerError, match="6MB"):
        Cgroup.create("c3", Limits(memory=1 << 20), v2_root=str(tmp_path))
    assert not os.path.exists(tmp_path / "pybuild" / "c3")  # failed create leaves nothing

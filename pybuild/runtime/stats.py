"""`stats`: one sample of a container's resource use from the counters its limits live in
(cgroup v1 or v2), its network devices (/proc/<pid>/net/dev) and the host's CPU time, and
Docker's arithmetic over two samples (CPU %, memory without the page cache, MEM %)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from pybuild.runtime.container import Container
from pybuild.runtime.lookup import cgroup_of, init_pid


@dataclass(frozen=True)
class Sample:
    running: bool
    system_ns: int = 0          # the host's total CPU time (all cpus, /proc/stat)
    online_cpus: int = 1
    cpu_ns: int = 0             # the container's CPU time
    memory_usage: int = 0
    memory_cache: int = 0
    memory_limit: int = 0       # the host's memory when there is no limit, as Docker shows
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0
    block_write: int = 0
    pids: int = 0


def system_cpu_ns() -> int:
    """Sum of the first /proc/stat line, in ns (what Docker calls SystemUsage)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def net_io(pid: int) -> tuple[int, int]:
    """(received, sent) bytes over every device but loopback in the process's netns."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() != "lo" and len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def sample(container: Container) -> Sample:
    try:
        state = container.state()
    except (OSError, ValueError):
        return Sample(running=False)
    pid = init_pid(container, state)
    cgroup = cgroup_of(state, pid) if pid else None
    if cgroup is None or not cgroup.exists():
        return Sample(running=False)
    stats = cgroup.stats()
    rx, tx = net_io(pid)
    return Sample(
        running=True, system_ns=system_cpu_ns(), online_cpus=os.cpu_count() or 1,
        cpu_ns=stats.cpu_usage_ns, memory_usage=stats.memory_usage,
        memory_cache=stats.memory_cache,
        memory_limit=stats.memory_limit if stats.memory_limit is not None else host_memory(),
        net_rx=rx, net_tx=tx, block_read=stats.block_read, block_write=stats.block_write,
        pids=stats.pids_current)


def cpu_percent(before: Sample, after: Sample) -> float:
    """Docker's calculateCPUPercentUnix: container delta over host delta, times cpus."""
    cpu_delta = after.cpu_ns - before.cpu_ns
    system_delta = after.system_ns - before.system_ns
    if cpu_delta <= 0 or system_delta <= 0:
        return 0.0
    return cpu_delta / system_delta * after.online_cpus * 100.0


def memory_used(s: Sample) -> int:
    """Usage without the inactive page cache, as Docker's CLI shows it."""
    return max(s.memory_usage - s.memory_cache, 0)


def memory_percent(s: Sample) -> float:
    return memory_used(s) / s.memory_limit * 100.0 if s.memory_limit else 0.0


def two_samples(containers: list[Container], interval: float = 1.0
                ) -> list[tuple[Sample, Sample]]:
    """A first sample of each, `interval` seconds, a second one (CPU % needs a delta)."""
    first = [sample(c) for c in containers]
    time.sleep(interval)
    return list(zip(first, [sample(c) for c in containers], strict=True))

"""Device access control for the built-in executor, as runc applies it: a v1 `devices`
cgroup that denies everything, then allows mknod and runc's standard device list. Without it
a container's root (CAP_MKNOD is in Docker's default set) could make a node for a host disk
and read it. On a pure cgroup v2 host this needs an eBPF program, which is not done here."""

from __future__ import annotations

import errno
import os
import time

# runc's AllowedDevices (libcontainer/specconv)
ALLOWED = (
    "c *:* m", "b *:* m",
    "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm",
    "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm",
)
PARENT = "pybuild"


def _devices_root() -> str | None:
    """Where the v1 devices hierarchy is mounted, and our own cgroup in it."""
    mount = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup" and "devices" in fields[sep + 3].split(","):
                mount = fields[4]
                break
    if mount is None:
        return None
    own = "/"
    with open("/proc/self/cgroup") as f:
        for line in f:
            _n, controllers, path = line.rstrip("\n").split(":", 2)
            if "devices" in controllers.split(","):
                own = path
    return os.path.join(mount, own.lstrip("/"))


def create(name: str) -> str | None:
    """Make `<own devices cgroup>/pybuild/<name>` with the default rules; its path, or None
    when this host has no v1 devices controller."""
    root = _devices_root()
    if root is None:
        return None
    path = os.path.join(root, PARENT, name)
    os.makedirs(path)
    try:
        with open(os.path.join(path, "devices.deny"), "w") as f:
            f.write("a")
        for rule in ALLOWED:
            with open(os.path.join(path, "devices.allow"), "w") as f:
                f.write(rule)
    except BaseException:
        remove(path)
        raise
    return path


def add(path: str, pid: int) -> None:
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(pid))


def remove(path: str | None, timeout: float = 5.0) -> None:
    """rmdir once the processes are gone (the kernel reports EBUSY for a moment after)."""
    if not path:
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)

"""Fixtures for detached containers: a private store with busybox, a `pyrun` runner, and a
leak check when the test ends (no supervisor or container process of this store, no mount
under the test's tmp dir, no container left running)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest


def _cmd(*args):
    return [sys.executable, "-m", "pybuild.cli.pyrun", *args]


def processes_of(root: str) -> dict[int, str]:
    """Processes whose command line names the store root (supervisors), and the processes
    recorded as running containers of it."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if root in cmdline and "pybuild.runtime.supervisor" in cmdline:
            found[int(entry)] = cmdline
    cdir = os.path.join(root, "containers")
    for entry in os.listdir(cdir) if os.path.isdir(cdir) else ():
        try:
            with open(os.path.join(cdir, entry, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue
        pid = state.get("pid")
        if pid and state.get("pid_start"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    alive = f.read().rsplit(")", 1)[1].split()[19] == state["pid_start"]
            except OSError:
                alive = False
            if alive:
                found[pid] = f"container {entry[:12]}"
    return found


class Pyrun:
    def __init__(self, root: str):
        self.root = root

    def __call__(self, *args, input=None, timeout=60) -> subprocess.CompletedProcess:
        return subprocess.run(_cmd(*args), env={**os.environ, "PYBUILD_ROOT": self.root},
                              capture_output=True, text=True, input=input, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def ok(self, *args, **kw) -> str:
        res = self(*args, **kw)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout

    def popen(self, *args, **kw) -> subprocess.Popen:
        return subprocess.Popen(_cmd(*args), env={**os.environ, "PYBUILD_ROOT": self.root},
                                **kw)

    def inspect(self, ref: str) -> dict:
        return json.loads(self.ok("inspect", ref))[0]

    def state(self, ref: str) -> dict:
        return self.inspect(ref)["State"]


def wait_for(fn, what: str, limit: float = 20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pyrun_lc(image_store, tmp_path):
    """A `pyrun` bound to a private busybox store; afterwards nothing of it may live on."""
    from tests.plugins.runtime import mount_points  # here: pytest rewrites that plugin first

    runner = Pyrun(image_store)
    yield runner
    leftover = processes_of(image_store)
    cdir = os.path.join(image_store, "containers")
    ids = [e for e in os.listdir(cdir) if len(e) == 64] if os.path.isdir(cdir) else []
    if ids:  # a failed test: clean up first, then report
        runner("rm", "-f", *ids)
    wait_for(lambda: not processes_of(image_store), "the store's processes to end", 10)
    assert mount_points(tmp_path) == set()
    assert not leftover, f"processes left running: {leftover}"

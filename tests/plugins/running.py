"""Running containers for exec/top/stats/pause tests: a foreground `pyrun run` in a
subprocess (it records the container's pid in state.json), killed and waited for when the
test ends, and then nothing of it may be left: processes, mounts, cgroups."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from tests.plugins.runtime import child_pids, mount_points


def pyrun_cmd(root: str, *args: str, input: str | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args],
                          env={**os.environ, "PYBUILD_ROOT": root}, capture_output=True,
                          text=True, input=input, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)


@dataclass
class Running:
    root: str
    name: str
    id: str
    pid: int                    # host pid of the container's first process
    proc: subprocess.Popen      # the foreground `pyrun run`

    @property
    def dir(self) -> str:
        return os.path.join(self.root, "containers", self.id)

    def state(self) -> dict:
        with open(os.path.join(self.dir, "state.json")) as f:
            return json.load(f)

    def pyrun(self, *args: str, **kw):
        return pyrun_cmd(self.root, *args, **kw)

    def wait_for(self, ready, timeout: float = 20) -> None:
        """Until `ready()` holds: the recorded pid may not have run its first line yet."""
        deadline = time.monotonic() + timeout
        while not ready():
            assert time.monotonic() < deadline, "the container did not get ready"
            time.sleep(0.02)

    def members(self) -> set[int]:
        """Host pids of the container's pid namespace."""
        from pybuild.runtime.lookup import pid_namespace_members

        return set(pid_namespace_members(self.pid))

    def cmdline(self) -> list[str]:
        with open(f"/proc/{self.pid}/cmdline", "rb") as f:
            return f.read().decode().split("\0")[:-1]

    def stop(self) -> int:
        """SIGKILL the container's first process (its pid namespace dies with it); a frozen
        cgroup is thawed first, as a frozen process takes no signal."""
        from pybuild.runtime.cgroups import Cgroup

        cgroup = self.state().get("cgroup")
        if cgroup:
            Cgroup.load(cgroup["version"], cgroup["paths"]).thaw_if_frozen()
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.proc.wait(timeout=30)


def _wait_for_pid(root: str, name: str, proc: subprocess.Popen) -> tuple[str, int]:
    link = os.path.join(root, "containers", ".names", name)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"pyrun run ended early: {proc.returncode}")
        try:
            cid = os.readlink(link)
            with open(os.path.join(root, "containers", cid, "state.json")) as f:
                state = json.load(f)
            if state.get("pid") and state.get("status") == "running":
                return cid, state["pid"]
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError("the container did not start")


@pytest.fixture
def run_container(image_store, tmp_path):
    """start(*run_flags, cmd=[...]) -> Running; every container is killed afterwards and
    must leave no process, mount or cgroup behind."""
    started: list[Running] = []
    before = child_pids()

    def start(*flags: str, cmd=("sleep", "1000")) -> Running:
        name = f"t{len(started)}-{os.getpid()}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "pybuild.cli.pyrun", "run", "--name", name, *flags,
             "busybox", *cmd],
            env={**os.environ, "PYBUILD_ROOT": image_store}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            cid, pid = _wait_for_pid(image_store, name, proc)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        running = Running(image_store, name, cid, pid, proc)
        started.append(running)
        return running

    yield start
    cgroup_dirs = []
    for r in started:
        try:
            state = r.state()
            cgroup_dirs += list((state.get("cgroup") or {}).get("paths", {}).values())
            if state.get("devices_cgroup"):
                cgroup_dirs.append(state["devices_cgroup"])
        except (OSError, ValueError):
            pass
        r.stop()
    assert child_pids() == before
    assert mount_points(tmp_path) == set()
    assert [d for d in cgroup_dirs if os.path.isdir(d)] == []

"""A running container seen from the outside: the host pid of its first process, the
cgroup it runs in and the members of its pid namespace (for exec, top, stats, pause)."""

from __future__ import annotations

import json
import os
import subprocess

from pybuild.errors import ContainerStateError, NoSuchContainer
from pybuild.runtime.container import BUILTIN, Container, process_start
from pybuild.runtime.lifecycle import find


def init_pid(container: Container, state: dict) -> int | None:
    """The host pid of the container's first process while it runs, else None. With an OCI
    runtime the recorded pid is the runtime's own process: ask it for the container's."""
    pid = state.get("pid")
    if state.get("status") != "running" or not pid or process_start(pid) != state.get("pid_start"):
        return None
    runtime = state.get("runtime", BUILTIN)
    if runtime == BUILTIN:
        return pid
    from pybuild.runtime import oci

    out = subprocess.run([oci.runtime_binary(runtime), "--root", container.runtime_root(),
                          "state", container.id], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    try:
        info = json.loads(out.stdout)
    except ValueError:
        return None
    return info.get("pid") if info.get("status") in ("running", "paused") else None


def running(containers_dir: str, ref: str, *, paused_ok: bool = False
            ) -> tuple[Container, dict, int]:
    """(container, state, init pid) of a running container, or Docker's errors (exit 1)."""
    container = find(containers_dir, ref)
    try:
        state = container.state()
    except (OSError, ValueError):
        raise NoSuchContainer(f"No such container: {ref}") from None
    pid = init_pid(container, state)
    if pid is None:
        raise ContainerStateError(f"Container {container.id} is not running")
    if state.get("paused") and not paused_ok:
        raise ContainerStateError(
            f"Container {container.id} is paused, unpause the container before exec")
    return container, state, pid


def cgroup_of(state: dict, pid: int):
    """The container's own cgroup: the one pyrun made (builtin), else the one the OCI
    runtime put `pid` in. None when the container has none of its own."""
    from pybuild.runtime.cgroups import Cgroup

    if state.get("cgroup"):
        return Cgroup.load(state["cgroup"]["version"], state["cgroup"]["paths"])
    if state.get("runtime", BUILTIN) != BUILTIN:
        return Cgroup.of_pid(pid)
    return None


def pid_namespace_members(pid: int) -> list[int]:
    """Host pids of every process in the pid namespace of `pid` (the container's processes,
    including those `exec` started), in pid order."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    members.append(int(entry))
            except OSError:
                continue
    return sorted(members)

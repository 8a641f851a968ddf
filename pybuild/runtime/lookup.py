"""Finding a container from the outside: by id, name or unique id prefix, and for a running
one, the host pid of its first process and the cgroup it runs in (for exec, top, stats,
pause)."""

from __future__ import annotations

import json
import os
import subprocess

from pybuild.errors import ContainerStateError, NoSuchContainer
from pybuild.runtime.container import BUILTIN, Container, process_start


def find(containers_dir: str, ref: str) -> Container:
    """Docker's order: a full id, then a name (with or without its leading "/"), then a
    unique id prefix."""
    if not ref:
        raise NoSuchContainer(f"No such container: {ref}")
    if len(ref) == 64 and os.path.isdir(os.path.join(containers_dir, ref)):
        return Container(containers_dir, ref)
    name = ref[1:] if ref.startswith("/") else ref
    try:
        target = os.readlink(os.path.join(containers_dir, ".names", name))
        if os.path.isdir(os.path.join(containers_dir, target)):
            return Container(containers_dir, target)
    except OSError:
        pass
    try:
        entries = os.listdir(containers_dir)
    except FileNotFoundError:
        raise NoSuchContainer(f"No such container: {ref}") from None
    matches = [e for e in entries if len(e) == 64 and e.startswith(ref.lower())]
    if len(matches) > 1:
        raise NoSuchContainer(f"multiple IDs found with provided prefix: {ref}")
    if not matches:
        raise NoSuchContainer(f"No such container: {ref}")
    return Container(containers_dir, matches[0])


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

"""`pause`/`unpause`: freeze and thaw every process of a running container through the
freezer (v1 freezer.state, v2 cgroup.freeze; `runc pause` for runc's containers), and
record it as `"paused": true` in state.json (the status stays "running", as Docker's
State.Running does; ps and inspect show "paused" from the key)."""

from __future__ import annotations

import subprocess

from pybuild.errors import ContainerError, ContainerStateError
from pybuild.runtime.container import BUILTIN, Container
from pybuild.runtime.lookup import cgroup_of


def _set_frozen(container: Container, state: dict, pid: int, frozen: bool) -> None:
    runtime = state.get("runtime", BUILTIN)
    if runtime != BUILTIN:
        from pybuild.runtime import oci

        verb = "pause" if frozen else "resume"
        out = subprocess.run([oci.runtime_binary(runtime), "--root", container.runtime_root(),
                              verb, container.id], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise ContainerError(f"{runtime} {verb}: {out.stderr.strip()}", container.id)
        return
    cgroup = cgroup_of(state, pid)
    if cgroup is None:
        raise ContainerError("the container has no cgroup of its own to freeze", container.id)
    if frozen:
        cgroup.freeze()
    else:
        cgroup.thaw()


def _record(container: Container, paused: bool) -> None:
    # read again: the container's keeper may have written since (its pid, its network)
    state = container.state()
    if state.get("status") == "running":
        state["paused"] = paused
        container._save(state)


def pause(container: Container, state: dict, pid: int) -> None:
    if state.get("paused"):
        raise ContainerStateError(f"Container {container.id} is already paused")
    _set_frozen(container, state, pid, True)
    _record(container, True)


def resume(container: Container, state: dict) -> None:
    """Thaw a paused container that is being stopped or killed (no error if it is not)."""
    cgroup = state.get("cgroup")
    if state.get("runtime", BUILTIN) == BUILTIN and cgroup:
        from pybuild.runtime.cgroups import Cgroup

        Cgroup.load(cgroup["version"], cgroup["paths"]).thaw_if_frozen()
    elif state.get("pid"):
        try:
            _set_frozen(container, state, state["pid"], False)
        except ContainerError:
            pass
    _record(container, False)


def unpause(container: Container, state: dict, pid: int) -> None:
    if not state.get("paused"):
        raise ContainerStateError(f"Container {container.id} is not paused")
    _set_frozen(container, state, pid, False)
    _record(container, False)

"""Clean-up of containers whose keeper died (a foreground pyrun or a supervisor killed with
-9, a power loss): kill what is left, undo network, cgroups and mounts, record the exit."""

from __future__ import annotations

import os
import signal
import time

from pybuild.errors import ContainerError
from pybuild.runtime.container import BUILTIN, Container, _alive


def reap_stale(containers_dir: str) -> list[str]:
    """Finish every container whose owning pyrun is gone: kill what is left of it, unmount,
    mark it exited (or remove it, for --rm). Returns the ids it cleaned."""
    cleaned = []
    try:
        entries = os.listdir(containers_dir)
    except FileNotFoundError:
        return cleaned
    for entry in entries:
        if len(entry) != 64:
            continue
        c = Container(containers_dir, entry)
        try:
            state = c.state()
        except FileNotFoundError:
            if time.time() - os.stat(c.dir).st_mtime > 60:  # a create that never finished
                c.remove()
            continue
        except (OSError, ValueError):
            continue
        owner = state.get("owner") or state.get("supervisor")
        if state.get("status") not in ("created", "running", "restarting", "paused") or not owner:
            continue
        if _alive(owner.get("pid"), owner.get("start")):
            continue
        sup = state.get("supervisor")
        if sup and _alive(sup.get("pid"), sup.get("start")):
            continue
        state["supervisor"] = None
        if state["status"] == "restarting":  # between two runs: nothing is mounted
            c._finish(state, state.get("exit_code"))
            cleaned.append(c.id)
            continue
        if state["status"] == "created":  # never started: only a --rm one is unwanted now
            if state.get("remove"):
                c.remove()
                cleaned.append(c.id)
            continue
        if _alive(state.get("pid"), state.get("pid_start")):
            try:
                os.kill(state["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        if state.get("runtime", BUILTIN) != BUILTIN:
            from pybuild.runtime import oci

            try:
                binary = oci.runtime_binary(state["runtime"])
                oci.cleanup_runtime_state(binary, c.runtime_root(), c.id)
            except ContainerError:
                pass
        if state.get("cgroup"):
            from pybuild.runtime.cgroups import Cgroup

            cg = Cgroup.load(state["cgroup"]["version"], state["cgroup"]["paths"])
            try:
                cg.thaw_if_frozen()
                cg.kill_all()
                cg.remove()
            except (ContainerError, OSError):
                pass
        if state.get("devices_cgroup"):
            from pybuild.runtime import devices

            try:
                devices.remove(state["devices_cgroup"], timeout=1.0)
            except OSError:
                pass
        c._finish(state, 137)
        cleaned.append(c.id)
    return cleaned

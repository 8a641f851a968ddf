"""Driving existing containers, as Docker's daemon does for its verbs: find one by id, name
or unique id prefix; list them; tell whether one runs; start it under a supervisor; signal,
stop, kill, wait for and remove it. Every verb works the same on a detached container and on
one a foreground `pyrun run` owns."""

from __future__ import annotations

import os
import signal
import time

from pybuild.errors import ContainerError, ContainerStateError, NoSuchContainer
from pybuild.runtime.container import BUILTIN, Container, _alive
from pybuild.runtime.names import names_of
from pybuild.runtime.reap import reap_stale
from pybuild.runtime.supervisor_link import STOP_MARK

# "paused": pause may record it as the status (or as state["paused"] beside "running")
ACTIVE = ("running", "restarting", "paused")


def containers_dir(root: str) -> str:
    return os.path.join(root, "containers")


def _ids(cdir: str) -> list[str]:
    try:
        return [e for e in os.listdir(cdir)
                if len(e) == 64 and os.path.isfile(os.path.join(cdir, e, "state.json"))]
    except FileNotFoundError:
        return []


def find(cdir: str, ref: str) -> Container:
    """Docker's look-up order: full id, then name, then a unique id prefix."""
    text = ref[1:] if ref.startswith("/") else ref
    if not text:
        raise NoSuchContainer(f"No such container: {ref}")
    ids = _ids(cdir)
    if text in ids:
        return Container(cdir, text)
    owner = names_of(cdir).get(text)
    if owner in ids:
        return Container(cdir, owner)
    matches = [i for i in ids if i.startswith(text.lower())] if _is_hex(text) else []
    if len(matches) > 1:
        raise NoSuchContainer(f"multiple IDs found with provided prefix: {text}")
    if matches:
        return Container(cdir, matches[0])
    raise NoSuchContainer(f"No such container: {ref}")


def _is_hex(text: str) -> bool:
    return all(ch in "0123456789abcdefABCDEF" for ch in text)


def list_states(cdir: str) -> list[tuple[Container, dict]]:
    """Every container with its state, newest first."""
    out = []
    for cid in _ids(cdir):
        c = Container(cdir, cid)
        try:
            out.append((c, c.state()))
        except (OSError, ValueError):
            continue
    out.sort(key=lambda cs: cs[1].get("created", 0), reverse=True)
    return out


def name_of(c: Container, state: dict, names: dict[str, str] | None = None) -> str:
    """The current name (the name links are the record `rename` changes)."""
    names = names_of(c.containers_dir) if names is None else names
    for name, owner in names.items():
        if owner == c.id:
            return name
    return state.get("name") or ""


def _owner_alive(state: dict) -> bool:
    for key in ("owner", "supervisor"):
        who = state.get(key)
        if who and _alive(who.get("pid"), who.get("start")):
            return True
    return False


def is_active(state: dict) -> bool:
    """Running or between two runs of its restart policy, with a live keeper."""
    return state.get("status") in ACTIVE and _owner_alive(state)


def supervisor_alive(state: dict) -> bool:
    sup = state.get("supervisor")
    return bool(sup) and _alive(sup.get("pid"), sup.get("start"))


def fresh_state(c: Container) -> dict:
    """The state after reaping a container whose keeper died (kill -9)."""
    state = c.state()
    if state.get("status") in ("created", *ACTIVE) and not _owner_alive(state):
        reap_stale(c.containers_dir)
        state = c.state()
    return state


def parse_signal(text: str | int) -> int:
    """9, KILL, SIGKILL, sigkill -> 9 (Docker's signal.ParseSignal)."""
    raw = str(text).strip()
    if raw.isdigit():
        n = int(raw)
        if 0 < n < signal.NSIG:
            return n
        raise ContainerError(f"Invalid signal: {text}")
    name = raw.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ContainerError(f"Invalid signal: {text}") from None


def send_signal(c: Container, state: dict, sig: int) -> None:
    """Deliver `sig` to the container's first process (through runc for runc)."""
    if state.get("runtime", BUILTIN) != BUILTIN:
        import subprocess

        from pybuild.runtime import oci

        binary = oci.runtime_binary(state["runtime"])
        subprocess.run([binary, "--root", c.runtime_root(), "kill", c.id, str(sig)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return
    pid = state.get("pid")
    if not pid or not _alive(pid, state.get("pid_start")):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    if state.get("paused") and sig in (signal.SIGKILL, parse_signal(
            state.get("stop_signal") or "SIGTERM")):
        # as Docker: a frozen process takes the stop signal or SIGKILL only once thawed
        from pybuild.runtime import pause

        pause.resume(c, state)


def mark_stopped_by_user(c: Container) -> None:
    """The restart policy must not bring it back (Docker's HasBeenManuallyStopped)."""
    with open(os.path.join(c.dir, STOP_MARK), "w"):
        pass


def wait_stopped(c: Container, timeout: float | None) -> bool:
    """Until the container is not running and its supervisor has finished; False on time-out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            state = c.state()
        except (OSError, ValueError):
            if not os.path.isdir(c.dir):
                return True
            state = {}
        if state and not is_active(state) and not supervisor_alive(state):
            if state.get("status") in ACTIVE:  # its keeper died: clean up after it
                reap_stale(c.containers_dir)
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stop(c: Container, timeout: float | None = None, signal_name: str | None = None) -> None:
    """The stop signal (`signal_name`, else the image's STOPSIGNAL or --stop-signal), then
    SIGKILL after `timeout` seconds (default: --stop-timeout, else 10; negative: wait for
    ever)."""
    state = fresh_state(c)
    if not is_active(state):
        return
    mark_stopped_by_user(c)
    if timeout is None:
        timeout = state.get("stop_timeout")
        timeout = 10 if timeout is None else timeout
    send_signal(c, state, parse_signal(signal_name or state.get("stop_signal") or "SIGTERM"))
    if wait_stopped(c, None if timeout < 0 else timeout):
        return
    send_signal(c, c.state(), signal.SIGKILL)
    if not wait_stopped(c, 30):
        raise ContainerError("the container did not stop after SIGKILL", c.id[:12])


def kill(c: Container, sig: int = signal.SIGKILL) -> None:
    state = fresh_state(c)
    if state.get("status") not in ("running", "paused") or not _owner_alive(state):
        raise ContainerStateError(f"Cannot kill container: {c.id}: Container {c.id} is not running")
    if sig in (signal.SIGKILL, parse_signal(state.get("stop_signal") or "SIGTERM")):
        mark_stopped_by_user(c)
    send_signal(c, state, sig)


def start(c: Container, attach: bool = False) -> dict | None:
    """Start a created or stopped container under a new supervisor. None if it runs
    already; else the supervisor's first report (see supervisor.launch)."""
    import fcntl

    from pybuild.runtime import supervisor_link as supervisor

    # two pyruns starting one container at once must not make two supervisors
    lock = os.open(os.path.join(c.dir, ".start.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                   0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = fresh_state(c)
        if is_active(state):
            return None
        if supervisor_alive(state) and not wait_stopped(c, 30):
            return None  # a keeper that is about to start it (start -a waits for us)
        try:
            os.unlink(os.path.join(c.dir, STOP_MARK))
        except FileNotFoundError:
            pass
        if state.get("owner"):  # a created container's creator is no keeper
            c.update(owner=None)
        return supervisor.launch(c.containers_dir, c.id, wait_attach=attach)
    finally:
        os.close(lock)


def wait(c: Container) -> int:
    """Block until the container stops; its exit code (Docker's `wait`)."""
    from pybuild.runtime import supervisor_link as supervisor

    state = fresh_state(c)
    if is_active(state) and supervisor_alive(state):
        try:
            sock = supervisor.connect(c.dir, {"mode": "wait"})
        except ContainerError:
            sock = None
        if sock is not None:
            with sock:
                while True:
                    frame = supervisor.read_frame(sock)
                    if frame is None:
                        break
                    kind, body = frame
                    if kind == supervisor.EXIT:
                        return int(body)
                    if kind == supervisor.FAILURE:
                        import json

                        return int(json.loads(body).get("code", 125))
    wait_stopped(c, None)
    try:
        code = c.state().get("exit_code")
    except (OSError, ValueError):
        raise NoSuchContainer(f"No such container: {c.id}") from None
    return 0 if code is None else int(code)


def remove(c: Container, force: bool = False, volumes: bool = False) -> dict:
    """Remove the container (and its anonymous volumes with `volumes`); with `force` a
    running one is killed first. Returns its last state."""
    state = fresh_state(c)
    if is_active(state):
        if not force:
            raise ContainerStateError(
                f"You cannot remove a running container {c.id}. Stop the container before "
                "attempting removal or force remove")
        mark_stopped_by_user(c)
        send_signal(c, state, signal.SIGKILL)
        if not wait_stopped(c, 30):
            raise ContainerError("the container did not stop after SIGKILL", c.id[:12])
        try:
            state = c.state()
        except (OSError, ValueError):
            return state
    c.remove(volumes=volumes)
    return state


def rename(c: Container, new_name: str) -> None:
    from pybuild.runtime.names import release_name, reserve_name

    state = c.state()
    old = name_of(c, state)
    if old == new_name:
        raise ContainerStateError(f"Renaming a container with the same name as its current "
                                  f"name: {new_name}")
    reserve_name(c.containers_dir, new_name, c.id)
    if old:
        release_name(c.containers_dir, old, c.id)
    if not supervisor_alive(state) and not is_active(state):
        c.update(name=new_name)  # a running keeper would overwrite it: the link is the record

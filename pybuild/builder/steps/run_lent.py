"""The mounts a RUN step borrows from the build rather than the image: `type=secret` (read
when the step runs, written to a private tmpfs outside the step's dirs, bound read-only,
and/or put in one variable of the step's env) and `type=ssh` (a socket of the step's own,
with the mount's owner and mode, that forwards each connection to the build's agent, as
BuildKit's ssh forwarding does)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pybuild.builder.secrets import SecretSource, read_secret
from pybuild.errors import BuildError

if TYPE_CHECKING:
    from pybuild.builder.steps.run import RunMount, RunPlan

__all__ = ["lent_mounts"]


def lent_mounts(plan: RunPlan, scratch_dir: str, env: list[str], undo: list,
                secrets: Mapping[str, SecretSource], ssh_sockets: Mapping[str, str]) -> dict:
    """Binds of the secrets and ssh agents a step mounts (by mount index). One that the
    build was not given is skipped unless `required`. `env` gets the secrets' variables;
    `undo` what tears the tmpfs and the forwarders down after the step."""
    from pybuild.runtime.spec import BindMount

    binds = {}  # mount index -> its bind, so every bind keeps the Dockerfile's order
    tmpfs = ""
    for i, m in enumerate(plan.mounts):
        if m.kind == "ssh":
            agent = ssh_sockets.get(m.source)
            if agent is None:
                if m.required:
                    raise BuildError(f'no SSH key "{m.source}" forwarded from the client')
                continue
            binds[i] = BindMount(_forwarder(agent, m, undo), m.target, readonly=True)
        elif m.kind == "secret":
            source = secrets.get(m.source)
            data = None if source is None else read_secret(source)
            if data is None:
                if m.required:
                    raise BuildError(f"secret {m.source}: not found")
                continue
            if m.env:  # the secret's value wins over an ENV of the same name, as in BuildKit
                prefix = f"{m.env}="
                env[:] = [e for e in env if not e.startswith(prefix)]
                env.append(prefix + data.decode("utf-8", "replace"))
            if not m.target:
                continue
            if not tmpfs:
                tmpfs = _secret_tmpfs(scratch_dir, undo)
            binds[i] = BindMount(_secret_file(tmpfs, i, data, m), m.target, readonly=True)
    return binds


def _secret_file(tmpfs: str, i: int, data: bytes, m: RunMount) -> str:
    host = os.path.join(tmpfs, f"secret-{i}")
    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode)
    finally:
        os.close(fd)
    return host


def _secret_tmpfs(scratch_dir: str, undo: list) -> str:
    from pybuild.runtime import linux

    path = os.path.join(scratch_dir, "secrets")
    os.makedirs(path, 0o700)
    linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                "mode=0700,size=16m")
    undo.append(lambda: linux.umount2(path, linux.MNT_DETACH))
    return path


def _forwarder(agent: str, m: RunMount, undo: list) -> str:
    """A listening socket (owner and mode from the mount) whose connections are relayed to
    the agent at `agent`: the step never sees the host's socket, and a step running as
    another USER can use the agent (ssh-agent itself only answers its own uid and root)."""
    import shutil
    import socket
    import tempfile

    # a short dir of its own: a socket path must fit in 108 bytes
    home = tempfile.mkdtemp(prefix="pybuild-ssh-")
    path = os.path.join(home, "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chown(path, m.uid, m.gid)
    os.chmod(path, m.mode)
    server.listen(16)
    stop = threading.Event()
    thread = threading.Thread(target=_accept, args=(server, agent, stop), daemon=True,
                              name="ssh-forward")
    thread.start()

    def close() -> None:
        stop.set()
        try:  # wake accept() up
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as poke:
                poke.connect(path)
        except OSError:
            pass
        thread.join(timeout=5)
        server.close()
        shutil.rmtree(home, ignore_errors=True)

    undo.append(close)
    return path


def _accept(server, agent: str, stop: threading.Event) -> None:
    import socket

    while not stop.is_set():
        try:
            client, _ = server.accept()
        except OSError:
            return
        if stop.is_set():
            client.close()
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(agent)
        except OSError:
            client.close()
            upstream.close()
            continue
        threading.Thread(target=_relay, args=(client, upstream), daemon=True).start()


def _relay(a, b) -> None:
    """Copy bytes both ways until either side closes."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            for key, _ in sel.select():
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        sel.close()
        a.close()
        b.close()

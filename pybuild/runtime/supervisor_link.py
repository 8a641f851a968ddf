"""The pyrun side of a detached container's supervisor: launch one, and talk to it over
containers/<id>/attach.sock.

Protocol: the client sends one JSON line ({"mode": "attach", "stdin": bool, "stdin_once":
bool} or {"mode": "wait"}), then frames; so does the supervisor. A frame is a type byte, a
4-byte big-endian length, the payload. Client to supervisor: 0 stdin data, 5 window size
(rows, cols as two big-endian shorts), 6 end of stdin (closes the container's stdin when the
client asked for stdin_once, as Docker's run -i). Supervisor to client: 1 stdout, 2 stderr,
3 exit code (ASCII), 4 start failure (JSON {"code", "message"})."""

from __future__ import annotations

import json
import os
import select
import struct
import sys
from typing import TYPE_CHECKING

from pybuild.errors import ContainerError, PybuildError

if TYPE_CHECKING:  # socket and subprocess load where used: stop and rm use neither
    import socket

STDIN, STDOUT, STDERR, EXIT, FAILURE, RESIZE, CLOSE_STDIN = 0, 1, 2, 3, 4, 5, 6
SOCKET = "attach.sock"
STOP_MARK = "stop-requested"  # written by stop/kill: the restart policy must not apply
_HEADER = struct.Struct(">BI")


def _dir_fd_path(dir_fd: int, name: str) -> str:
    # a unix socket path is limited to 108 bytes; store roots are deeper than that
    return f"/proc/self/fd/{dir_fd}/{name}"


def connect(container_dir: str, hello: dict, timeout: float = 5.0) -> socket.socket:
    """A connection to the container's supervisor (ContainerError when none listens)."""
    try:
        dir_fd = os.open(container_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise ContainerError(f"no supervisor: {e.strerror}") from None
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(_dir_fd_path(dir_fd, SOCKET))
        sock.settimeout(None)
        sock.sendall(json.dumps(hello).encode() + b"\n")
    except OSError as e:
        sock.close()
        raise ContainerError(f"cannot reach the container's supervisor: {e}") from None
    finally:
        os.close(dir_fd)
    return sock


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def read_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """The next frame, or None at the end of the stream."""
    head = _recv_exact(sock, _HEADER.size)
    if head is None:
        return None
    kind, length = _HEADER.unpack(head)
    body = _recv_exact(sock, length) if length else b""
    return None if body is None else (kind, body)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def launch(containers_dir: str, container_id: str, *, wait_attach: bool = False,
           timeout: float = 60.0) -> dict:
    """Start the supervisor of a created (or stopped) container. Returns its first report:
    {"started": pid}, {"listening": true} (with `wait_attach`: it waits for an attach
    client before starting), or raises the start failure with the container's exit code."""
    import subprocess

    import pybuild

    read_fd, write_fd = os.pipe()
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(pybuild.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pybuild.runtime.supervisor", "--ready-fd", str(write_fd),
           containers_dir, container_id] + (["--wait-attach"] if wait_attach else [])
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, pass_fds=(write_fd,),
                                start_new_session=True, env=env, cwd="/")
    finally:
        os.close(write_fd)
    proc.wait()  # the first child exits as soon as the supervisor is forked off
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout)
        line = b""
        while ready and not line.endswith(b"\n"):
            chunk = os.read(read_fd, 4096)
            if not chunk:
                break
            line += chunk
    finally:
        os.close(read_fd)
    if not line:
        raise ContainerError("the container's supervisor ended before starting it (see "
                             f"{os.path.join(containers_dir, container_id, 'supervisor.log')})",
                             container_id[:12])
    report = json.loads(line)
    if "error" in report:
        raise _failure(int(report.get("code", 125)), report["error"])
    return report


def _failure(code: int, message: str) -> PybuildError:
    from pybuild.errors import CommandNotExecutable, CommandNotFound

    if code == 127:
        return CommandNotFound(message)
    if code == 126:
        return CommandNotExecutable(message)
    return ContainerError(message)


def raise_failure(payload: bytes) -> None:
    info = json.loads(payload)
    raise _failure(int(info.get("code", 125)), str(info.get("message", "")))

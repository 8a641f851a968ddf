"""`pyrun attach` and the attached half of `start -a` / `run --restart` (foreground): the
terminal talks to a container's supervisor over its socket. Ctrl-P Ctrl-Q (or
--detach-keys) detaches; without a tty, Ctrl-C and friends are proxied to the container."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

import click

from pybuild.cli.common import store_root
from pybuild.errors import ContainerError, ContainerStateError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(text: str) -> bytes:
    """Docker's term.ToBytes: comma-separated `ctrl-X` or single characters."""
    out = bytearray()
    for part in text.split(","):
        key = part.strip()
        if len(key) == 1:
            out.append(ord(key))
            continue
        low = key.lower()
        if low.startswith("ctrl-") and len(key) == 6:
            ch = low[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if ch in specials:
                out.append(specials[ch])
                continue
        raise ContainerError(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class _DetachScanner:
    """Holds back bytes that may start the detach sequence; releases them on a mismatch."""

    def __init__(self, keys: bytes):
        self.keys, self.held = keys, b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for b in data:
            candidate = self.held + bytes([b])
            if self.keys and self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                continue
            out += candidate
            self.held = b""
        return bytes(out), False


def session(container, *, stdin: bool, tty: bool, detach_keys: str = DEFAULT_DETACH_KEYS,
            sig_proxy: bool = True, stdin_once: bool = False) -> int | None:
    """Attach to the running container's supervisor. The exit code when the container ends,
    None when the user detached. `stdin_once`: the end of our stdin closes the container's
    (run -i, start -ai)."""
    from pybuild.runtime import lifecycle
    from pybuild.runtime import supervisor_link as supervisor
    from pybuild.runtime.stdio import raw_terminal

    keys = parse_detach_keys(detach_keys)
    sock = supervisor.connect(container.dir, {"mode": "attach", "stdin": stdin,
                                              "stdin_once": stdin_once})
    detached = threading.Event()
    send_lock = threading.Lock()

    def send(kind: int, payload: bytes = b"") -> None:
        with send_lock:
            sock.sendall(supervisor.frame(kind, payload))

    def resize(*_args) -> None:
        size = _terminal_size()
        if size is not None:
            with contextlib.suppress(OSError):
                send(supervisor.RESIZE, size)

    def pump_stdin() -> None:
        scanner = _DetachScanner(keys)
        while True:
            try:
                data = os.read(0, 65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    send(supervisor.CLOSE_STDIN)
                return
            data, detach = scanner.feed(data)
            try:
                if data:
                    send(supervisor.STDIN, data)
            except OSError:
                return
            if detach:
                detached.set()
                with contextlib.suppress(OSError):
                    sock.shutdown(2)
                return

    saved = {}
    if tty:
        resize()
        saved[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, resize)
    if sig_proxy and not tty:
        def proxy(sig, _frame):
            with contextlib.suppress(ContainerError, OSError, ValueError):
                lifecycle.send_signal(container, container.state(), sig)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            saved[sig] = signal.signal(sig, proxy)
    try:
        with raw_terminal(0) if (tty and stdin) else contextlib.nullcontext():
            if stdin:
                threading.Thread(target=pump_stdin, daemon=True).start()
            code = None
            while True:
                frame = supervisor.read_frame(sock)
                if frame is None:
                    break
                kind, body = frame
                if kind == supervisor.STDOUT:
                    _write(1, body)
                elif kind == supervisor.STDERR:
                    _write(2, body)
                elif kind == supervisor.EXIT:
                    code = int(body)
                    break
                elif kind == supervisor.FAILURE:
                    supervisor.raise_failure(body)
    finally:
        sock.close()
        for sig, old in saved.items():
            signal.signal(sig, old)
    if detached.is_set():
        return None
    if code is None:  # the supervisor went away without a word: ask the record
        code = lifecycle.wait(container)
    return code


def _terminal_size() -> bytes | None:
    """(rows, cols) of our terminal as the RESIZE payload."""
    import fcntl
    import struct

    for fd in (1, 0, 2):
        try:
            raw = fcntl.ioctl(fd, 0x5413, b"\0" * 8)  # TIOCGWINSZ
        except OSError:
            continue
        rows, cols = struct.unpack("HHHH", raw)[:2]
        return struct.pack(">HH", rows, cols)
    return None


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[n:]


def start_attached(container, *, stdin: bool, tty: bool,
                   detach_keys: str = DEFAULT_DETACH_KEYS) -> int:
    """Start under a supervisor that waits for us, then stay attached (start -a, run)."""
    from pybuild.runtime import lifecycle

    parse_detach_keys(detach_keys)  # a bad value fails before anything starts
    if lifecycle.start(container, attach=True) is None:
        pass  # already running: attach to it as it is
    code = session(container, stdin=stdin, tty=tty, detach_keys=detach_keys, stdin_once=True)
    return 0 if code is None else code


@click.command("attach")
@click.option("--detach-keys", default=DEFAULT_DETACH_KEYS, show_default=True,
              help="Key sequence for detaching a container.")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, show_default=True,
              help="Proxy all received signals to the process (non-TTY mode only).")
@click.argument("container")
@click.pass_context
def attach_cmd(ctx: click.Context, detach_keys, no_stdin, sig_proxy, container) -> int:
    """Attach local standard input, output, and error streams to a running container."""
    from pybuild.runtime import lifecycle

    root = store_root((ctx.obj or {}).get("root"))
    c = lifecycle.find(lifecycle.containers_dir(root), container)
    state = lifecycle.fresh_state(c)
    if not lifecycle.is_active(state):
        raise ContainerStateError("You cannot attach to a stopped container, start it first")
    if not lifecycle.supervisor_alive(state):
        raise ContainerError("the container runs in the foreground of another pyrun; only "
                             "detached containers can be attached", c.id[:12])
    tty = bool(state.get("tty"))
    stdin = not no_stdin and not state.get("stdin_null", True)
    if tty and stdin and not os.isatty(0):
        print("the input device is not a TTY", file=sys.stderr)
        return 1
    parse_detach_keys(detach_keys)
    code = session(c, stdin=stdin, tty=tty, detach_keys=detach_keys, sig_proxy=sig_proxy)
    return 0 if code is None else code

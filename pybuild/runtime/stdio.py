"""Attached standard streams for a foreground container: signals proxied to the container
(Docker's --sig-proxy), and for `-t` a pty pump with raw mode and window-size changes."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
from collections.abc import Callable, Iterator

PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2)
_TIOCGWINSZ = 0x5413
_TIOCSWINSZ = 0x5414


class SignalForwarder:
    """Where proxied signals go; until `target` is set they act as usual (abort pyrun)."""

    def __init__(self) -> None:
        self.target: Callable[[int], None] | None = None
        self.interrupts = 0

    def __call__(self, sig: int, _frame) -> None:
        if self.target is None:
            if sig == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + sig)
        if sig == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts >= 2:
                self.target(signal.SIGKILL)
                return
        self.target(sig)


@contextlib.contextmanager
def forward_signals(send: Callable[[int], None] | None = None) -> Iterator[SignalForwarder]:
    """Pass the signals pyrun gets on to the container (set `.target` once it exists). A
    pid 1 without a handler ignores SIGINT (as in Docker), so a second Ctrl-C kills it."""
    forwarder = SignalForwarder()
    forwarder.target = send
    saved = {}
    for sig in PROXIED:
        saved[sig] = signal.signal(sig, forwarder)
    try:
        yield forwarder
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _winsize(fd: int) -> bytes | None:
    import fcntl

    try:
        return fcntl.ioctl(fd, _TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def copy_winsize(master: int) -> None:
    import fcntl

    for fd in (1, 0, 2):
        size = _winsize(fd)
        if size is not None:
            fcntl.ioctl(master, _TIOCSWINSZ, size)
            return


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on a terminal stdin (so Ctrl-C travels to the container as a byte)."""
    if not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def pump_pty(master: int, interactive: bool) -> None:
    """Copy the container's terminal to stdout (and stdin to it with -i) until it closes."""
    old_winch = signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(master))
    readers = [master] + ([0] if interactive else [])
    try:
        with raw_terminal(0) if interactive else contextlib.nullcontext():
            while True:
                ready, _, _ = select.select(readers, [], [])
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError as e:
                        if e.errno == errno.EIO:  # every slave fd is closed: the container ended
                            break
                        raise
                    if not data:
                        break
                    _write_all(1, data)
                if 0 in ready:
                    data = os.read(0, 65536)
                    if data:
                        _write_all(master, data)
                    else:
                        readers.remove(0)
    finally:
        signal.signal(signal.SIGWINCH, old_winch)
        os.close(master)

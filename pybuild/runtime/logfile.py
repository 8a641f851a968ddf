"""A container's log in Docker's json-file format (containers/<id>/<id>-json.log): one JSON
object a line, {"log": "text\\n", "stream": "stdout"|"stderr", "time": RFC3339Nano}; the
writer the supervisor feeds, and the reader `pyrun logs` uses (tail, since, follow)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Docker splits a line that grows past 16 KiB into several entries.
_MAX_LINE = 16 * 1024


def log_path(container_dir: str, container_id: str) -> str:
    return os.path.join(container_dir, f"{container_id}-json.log")


def rfc3339nano(ns: int, fixed: bool = False) -> str:
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction trimmed), or Docker's
    RFC3339NanoFixed (always nine digits) that `logs -t` prints."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}"
    if not fixed:
        digits = digits.rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def parse_rfc3339(text: str) -> float:
    """RFC3339 (with an optional fraction and zone) -> unix seconds."""
    from datetime import datetime

    t = text.strip()
    frac = 0.0
    if "." in t:
        head, rest = t.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac = float("0." + digits) if digits else 0.0
        t = head + rest
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:  # Docker takes a zone-less time as local time
        return dt.timestamp() + frac
    return dt.timestamp() + frac


@dataclass(frozen=True)
class Entry:
    time: str       # RFC3339Nano as stored
    stream: str     # stdout | stderr
    log: str        # the text, with its newline

    @property
    def timestamp(self) -> float:
        return parse_rfc3339(self.time)

    @property
    def fixed_time(self) -> str:
        """The stored time with nine fraction digits (RFC3339NanoFixed), no float rounding."""
        head, dot, frac = self.time.rstrip("Z").partition(".")
        return f"{head}.{(frac if dot else '').ljust(9, '0')[:9]}Z"


class LogWriter:
    """Appends complete lines per stream; a partial line waits for its newline (or for
    `flush`, when the container ended without one). Thread-safe by use: one pump thread."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives with the supervisor
        self._pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._pending[stream] + data
        lines = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= _MAX_LINE:
                if len(buf) >= _MAX_LINE:
                    lines.append(buf[:_MAX_LINE])
                    buf = buf[_MAX_LINE:]
                    continue
                break
            lines.append(buf[:nl + 1])
            buf = buf[nl + 1:]
        self._pending[stream] = buf
        self._emit(stream, lines)

    def flush(self) -> None:
        for stream, buf in self._pending.items():
            if buf:
                self._pending[stream] = b""
                self._emit(stream, [buf])

    def _emit(self, stream: str, lines: list[bytes]) -> None:
        if not lines:
            return
        now = rfc3339nano(time.time_ns())
        out = b"".join(
            json.dumps({"log": line.decode("utf-8", "replace"), "stream": stream,
                        "time": now}, ensure_ascii=False).encode() + b"\n"
            for line in lines)
        self._file.write(out)

    def close(self) -> None:
        self.flush()
        self._file.close()


def _parse(line: bytes) -> Entry | None:
    try:
        d = json.loads(line)
        return Entry(str(d["time"]), str(d.get("stream", "stdout")), str(d["log"]))
    except (ValueError, KeyError, TypeError):
        return None


def read_entries(path: str, tail: int | None = None) -> tuple[list[Entry], int]:
    """The entries so far (the last `tail` when given) and the offset reading stopped at
    (only complete lines are read)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    lines = data[:end].splitlines()
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return [e for e in map(_parse, lines) if e is not None], end


def follow(path: str, offset: int, done: Callable[[], bool],
           interval: float = 0.1) -> Iterator[Entry]:
    """Entries appended after `offset` until `done()` is true and nothing more came."""
    pending = b""
    while True:
        finished = done()  # asked before reading, so the last lines are not missed
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            pending += chunk
            end = pending.rfind(b"\n") + 1
            for line in pending[:end].splitlines():
                entry = _parse(line)
                if entry is not None:
                    yield entry
            pending = pending[end:]
            continue
        if finished:
            return
        time.sleep(interval)

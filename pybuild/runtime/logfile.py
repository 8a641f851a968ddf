"""A container's log in Docker's json-file format (containers/<id>/<id>-json.log): one JSON
object a line, {"log": "text\\n", "stream": "stdout"|"stderr", "time": RFC3339Nano}; the
writer the supervisor feeds, rotated as Docker's json-file driver rotates it (--log-opt
max-size, max-file, compress: <id>-json.log.1, .2, ... or .1.gz, ...), and the reader `pyrun
logs` uses across the rotated files (tail, since, follow)."""

from __future__ import annotations

import gzip
import json
import os
import re
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
    attrs: tuple[tuple[str, str], ...] = ()  # --log-opt labels/env/tag, sorted by key

    @property
    def details(self) -> str:
        """`logs --details`' prefix: k=v,k2=v2 (empty without attrs)."""
        return ",".join(f"{k}={v}" for k, v in self.attrs)

    @property
    def timestamp(self) -> float:
        return parse_rfc3339(self.time)

    @property
    def fixed_time(self) -> str:
        """The stored time with nine fraction digits (RFC3339NanoFixed), no float rounding."""
        head, dot, frac = self.time.rstrip("Z").partition(".")
        return f"{head}.{(frac if dot else '').ljust(9, '0')[:9]}Z"


class NullLog:
    """The `none` logging driver: the output is dropped."""

    def write(self, stream: str, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class LogWriter:
    """Appends complete lines per stream; a partial line waits for its newline (or for
    `flush`, when the container ended without one). Thread-safe by use: one pump thread.
    With `max_size`, a write finding the file at or past it rotates first (moby's
    loggerutils LogFile): with `max_files` > 1 the file becomes .1 (gzipped with
    `compress`), .1 becomes .2, ..., the oldest goes; with one file it is truncated."""

    def __init__(self, path: str, max_size: int = -1, max_files: int = 1,
                 compress: bool = False, attrs: dict[str, str] | None = None):
        self.path = path
        self.attrs = dict(attrs or {})  # Docker's "attrs" of every entry, when any
        self.max_size, self.max_files, self.compress = max_size, max_files, compress
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives with the supervisor
        self._size = os.fstat(self._file.fileno()).st_size
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
        extra = {"attrs": self.attrs} if self.attrs else {}
        encoded = [json.dumps({"log": line.decode("utf-8", "replace"), "stream": stream,
                               **extra, "time": now}, ensure_ascii=False).encode() + b"\n"
                   for line in lines]
        if self.max_size < 0:
            self._file.write(b"".join(encoded))
            return
        for entry in encoded:
            if self._size >= self.max_size:
                self._rotate()
            self._file.write(entry)
            self._size += len(entry)

    def _rotate(self) -> None:
        self._file.close()
        if self.max_files > 1:
            ext = ".gz" if self.compress else ""
            try:
                os.unlink(f"{self.path}.{self.max_files - 1}{ext}")
            except FileNotFoundError:
                pass
            for i in range(self.max_files - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{i - 1}{ext}", f"{self.path}.{i}{ext}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
            if self.compress:
                _gzip(f"{self.path}.1")
        # a new file (a follower sees the inode change), or the one file truncated
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self.flush()
        self._file.close()


def _gzip(path: str) -> None:
    """path -> path.gz (temp + rename), then path goes."""
    tmp = f"{path}.gz.tmp"
    with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.rename(tmp, f"{path}.gz")
    os.unlink(path)


def rotated_paths(path: str) -> list[str]:
    """The rotated files of the log at `path`, oldest first (.3, .2.gz, .1, ...)."""
    folder, base = os.path.split(path)
    pattern = re.compile(re.escape(base) + r"\.(\d+)(\.gz)?$")
    found = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    for name in names:
        m = pattern.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return [p for _n, p in sorted(found, reverse=True)]


def _read_whole(path: str) -> bytes:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, OSError, EOFError):  # rotated away meanwhile, or truncated gz
        return b""


def _parse(line: bytes) -> Entry | None:
    try:
        d = json.loads(line)
        attrs = d.get("attrs") or {}
        return Entry(str(d["time"]), str(d.get("stream", "stdout")), str(d["log"]),
                     tuple(sorted((str(k), str(v)) for k, v in attrs.items())))
    except (ValueError, KeyError, TypeError):
        return None


def read_entries(path: str, tail: int | None = None) -> tuple[list[Entry], int]:
    """The entries so far, the rotated files' first (the last `tail` when given), and the
    offset in the current file reading stopped at (only complete lines are read)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    end = data.rfind(b"\n") + 1
    lines = data[:end].splitlines()
    for older in reversed(rotated_paths(path)):  # newest rotated first, while lines lack
        if tail is not None and len(lines) >= tail:
            break
        lines = _read_whole(older).splitlines() + lines
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return [e for e in map(_parse, lines) if e is not None], end


def _open(path: str):
    try:
        return open(path, "rb")  # noqa: SIM115 - the follower keeps it across reads
    except FileNotFoundError:
        return None


def _next_file(path: str, inode: int) -> tuple[str, int | None]:
    """The file written after the one with `inode` (which rotated away): the rotated file
    just newer than it, else, if it is gone already, the oldest uncompressed one left; with
    its inode (None: just the current file)."""
    chain = previous = None
    for attempt in range(200):  # names shift while a rotation runs: two equal scans
        chain = _scan(path)
        if chain == previous:
            break
        previous = chain
        time.sleep(0.001 * min(attempt, 10))
    for k, (_candidate, ino) in enumerate(chain):
        if ino == inode:
            return chain[k - 1] if k > 0 else (path, None)
    return chain[-1] if chain else (path, None)


def _scan(path: str) -> list[tuple[str, int]]:
    """(name, inode) of the uncompressed log files, newest first: path, path.1, ..."""
    chain = []
    for candidate in [path, *reversed(rotated_paths(path))]:
        if candidate.endswith(".gz"):
            continue
        try:
            chain.append((candidate, os.stat(candidate).st_ino))
        except FileNotFoundError:
            continue
    return chain


def _open_next(path: str, inode: int):
    """Open the file after `inode`'s; names shift under a fast writer, so the file opened
    must be the one found (by inode), else look again."""
    for _ in range(100):
        name, want = _next_file(path, inode)
        f = _open(name)
        if f is None or want is None or os.fstat(f.fileno()).st_ino == want:
            return f
        f.close()
    return _open(path)


def follow(path: str, offset: int, done: Callable[[], bool],
           interval: float = 0.1) -> Iterator[Entry]:
    """Entries appended after `offset` until `done()` is true and nothing more came. The
    file stays open, so a rotation loses nothing while the rotated files last: its rest is
    read, then the files rotated after it, oldest first."""
    pending = b""
    f = _open(path)
    if f is not None:
        f.seek(offset)
    try:
        while True:
            finished = done()  # asked before reading, so the last lines are not missed
            chunk = f.read() if f is not None else b""
            st = None
            if not chunk:
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    pass
                if st is not None and f is None:
                    f, pending = _open(path), b""
                    continue
                if st is not None and st.st_ino != os.fstat(f.fileno()).st_ino:
                    # rotated: first what was written just before, then the next file
                    chunk = f.read()
                    if not chunk:
                        nxt = _open_next(path, os.fstat(f.fileno()).st_ino)
                        f.close()
                        f, pending = nxt, b""
                        continue
            if chunk:
                pending += chunk
                end = pending.rfind(b"\n") + 1
                for line in pending[:end].splitlines():
                    entry = _parse(line)
                    if entry is not None:
                        yield entry
                pending = pending[end:]
                continue
            if f is not None and st is not None and st.st_size < f.tell():
                f.seek(0)  # truncated (max-file=1)
                pending = b""
                continue
            if finished:
                return
            time.sleep(interval)
    finally:
        if f is not None:
            f.close()

"""Rendering of build events (pybuild.builder.events): BuildKit's plain text, a live tty view
(rich, imported only then), or nothing (quiet).

The plain format follows BuildKit's progressui text printer: `#N name` when a vertex is
shown, `#N <secs> <line>` for its output, `#N ...` when another vertex takes over before it
ends, `#N DONE 0.1s` / `#N CACHED` / `#N ERROR: ...` when it ends, a blank line between
vertices; at the end a `------` box with the last lines of each failed vertex, then the
warnings, as buildx prints them."""

from __future__ import annotations

import codecs
import sys
import threading
from collections import deque

from pybuild.builder.events import (
    BuildDone,
    Vertex,
    VertexCached,
    VertexDone,
    VertexFailed,
    VertexLog,
    VertexStarted,
    Warning,
)
from pybuild.errors import PybuildError

__all__ = ["MODES", "BuildProgress", "make_progress"]

MODES = ("auto", "tty", "plain", "quiet")
ERROR_LOG_LINES = 10  # BuildKit's logsBufferSize: lines kept for a failed vertex's box
MAX_DELAY = 10.0  # BuildKit's maxDelay: seconds a vertex's output may wait behind another's


def make_progress(mode: str, stream=None) -> BuildProgress:
    """mode: "auto" (tty if `stream` is a terminal, else plain), "tty", "plain", "quiet"."""
    stream = stream if stream is not None else sys.stderr
    if mode not in MODES:
        raise PybuildError(f"invalid progress mode {mode}")
    if mode == "quiet":
        return BuildProgress()
    if mode in ("auto", "tty") and _isatty(stream):
        from pybuild.cli.build_progress_tty import TtyProgress

        return TtyProgress(stream)
    return PlainProgress(stream)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def log_timestamp(seconds: float) -> str:
    """BuildKit's offset of a log line from its vertex's start: 3 decimals under 10s, 2 under
    100s, else 1."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.3f}"
    if seconds < 100:
        return f"{seconds:.2f}"
    return f"{seconds:.1f}"


class BuildProgress:
    """The Progress the solver gets. This base renders nothing (quiet); subclasses implement
    `_handle` and `_finish`, always called under one lock: the solver emits from threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    def emit(self, event) -> None:
        with self._lock:
            if not self._closed:
                self._handle(event)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._finish()

    def _handle(self, event) -> None:
        pass

    def _finish(self) -> None:
        pass


class _Vtx:
    """What the plain printer knows of one vertex."""

    def __init__(self, vertex: Vertex):
        self.vertex = vertex
        self.index = vertex.id
        self.started: float | None = None
        self.logs: list[str] = []  # "#N <secs> <text>" lines not printed yet; the last may be partial
        self.partial = False  # the last entry of logs is an unfinished line
        self.offset = 0  # chars of logs[0] already printed (a partial line printed before)
        self.decoders: dict[int, codecs.IncrementalDecoder] = {}
        self.recent: deque[str] = deque(maxlen=ERROR_LOG_LINES)  # "<secs> <text>" for the box
        self.error: str | None = None
        self.waiting_since: float | None = None  # has updates not printed since then


class PlainProgress(BuildProgress):
    def __init__(self, stream) -> None:
        super().__init__()
        self.out = stream
        self.vertices: dict[int, _Vtx] = {}
        self.current: _Vtx | None = None  # the vertex whose lines are being printed
        self.not_first = False
        self.warnings: list[Warning] = []

    # -- events -------------------------------------------------------------------------
    def _vtx(self, vertex: Vertex) -> _Vtx:
        v = self.vertices.get(vertex.id)
        if v is None:
            v = self.vertices[vertex.id] = _Vtx(vertex)
        return v

    def _handle(self, event) -> None:
        if isinstance(event, Warning):
            self.warnings.append(event)
            return
        if isinstance(event, BuildDone):
            return
        v = self._vtx(event.vertex)
        if isinstance(event, VertexStarted | VertexLog):
            if isinstance(event, VertexStarted):
                if v.started is None:
                    v.started = event.time
            else:
                self._add_log(v, event)
            if self.current is None or self.current is v:
                self._show(v)
            else:
                # BuildKit stays with the vertex it is printing while that one runs; others
                # wait, unless they have waited longer than its maxDelay
                if v.waiting_since is None:
                    v.waiting_since = event.time
                if event.time - v.waiting_since > MAX_DELAY:
                    self._show(v)
        else:
            if isinstance(event, VertexFailed):
                v.error = event.error
            self._show(v)
            if isinstance(event, VertexCached):
                self._end(v, f"#{v.index} CACHED")
            elif isinstance(event, VertexDone):
                self._end(v, f"#{v.index} DONE {event.elapsed:.1f}s")
            else:
                self._end(v, f"#{v.index} ERROR: {event.error}")
            waiting = [w for w in self.vertices.values() if w.waiting_since is not None]
            if waiting:  # the one that waited longest goes next
                self._show(min(waiting, key=lambda w: w.waiting_since))
        self.out.flush()

    def _add_log(self, v: _Vtx, event: VertexLog) -> None:
        decoder = v.decoders.get(event.stream)
        if decoder is None:
            decoder = v.decoders[event.stream] = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(event.data)
        if not text:
            return
        stamp = log_timestamp(event.time - v.started) if v.started is not None else "0.000"
        pieces = text.split("\n")
        complete = pieces[-1] == ""
        if complete:
            pieces.pop()
        for i, piece in enumerate(pieces):
            if i == 0 and v.partial and v.logs:
                v.logs[-1] += piece  # the rest of a line begun in an earlier chunk
            else:
                v.logs.append(f"#{v.index} {stamp} {piece}")
        v.partial = not complete

    # -- printing (BuildKit's textMux.printVtx) ---------------------------------------------
    def _write(self, text: str) -> None:
        self.out.write(text)

    def _show(self, v: _Vtx) -> None:
        """Make `v` the vertex being printed (header first) and print its pending lines."""
        if self.current is not v:
            old = self.current
            if old is not None:
                if old.partial:
                    self._write("\n")
                old.offset = 0  # its unfinished line is printed whole when it comes back
                self._write(f"#{old.index} ...\n")
            if self.not_first:
                self._write("\n")
            self.not_first = True
            self._write(f"#{v.index} {v.vertex.name}\n")
            self.current = v
        v.waiting_since = None
        last = len(v.logs) - 1
        for i, line in enumerate(v.logs):
            self._write(line[v.offset:] if i == 0 else line)
            if i != last or not v.partial:
                self._write("\n")
                v.recent.append(line.split(" ", 1)[1])
        if v.logs:
            if v.partial:
                v.logs = v.logs[-1:]
                v.offset = len(v.logs[0])
            else:
                v.logs = []
                v.offset = 0

    def _end(self, v: _Vtx, status: str) -> None:
        if v.partial:
            self._write("\n")
            if v.logs:
                v.recent.append(v.logs[-1].split(" ", 1)[1])
            v.logs, v.partial, v.offset = [], False, 0
        self._write(status + "\n")
        self.current = None

    def _finish(self) -> None:
        for v in self.vertices.values():
            if v.waiting_since is not None:
                self._show(v)
        if self.current is not None and self.current.partial:
            self._write("\n")
        for v in self.vertices.values():
            if v.error is not None:
                self._write("------\n")
                self._write(f" > {v.vertex.name}:\n")
                for line in v.recent:
                    self._write(line + "\n")
                self._write("------\n")
        write_warnings(self._write, self.warnings)
        self.out.flush()


def warning_text(w: Warning) -> str:
    return f"{w.message} (line {w.line})" if w.line is not None else w.message


def write_warnings(write, warnings: list[Warning]) -> None:
    """buildx's summary: a blank line, ` N warning(s) found:`, then ` - <warning>` lines."""
    if not warnings:
        return
    count = "1 warning found" if len(warnings) == 1 else f"{len(warnings)} warnings found"
    write(f"\n {count}:\n")
    for w in warnings:
        write(f" - {warning_text(w)}\n")

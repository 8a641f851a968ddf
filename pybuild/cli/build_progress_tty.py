"""The live build view on a terminal, after BuildKit's tty display: a `[+] Building 3.2s
(8/10)` header, one ` => name  1.2s` row per vertex (CACHED / ERROR prefixed), the last
lines of a running step's output under it, redrawn by rich's Live; at the end the whole
list, then the failed steps' output and the warnings. Imported only when stderr is a tty:
rich costs ~80 ms."""

from __future__ import annotations

import codecs
import threading
import time
from collections import deque

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

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
from pybuild.cli.build_progress import BuildProgress, log_timestamp, write_warnings

TAIL_LINES = 6  # BuildKit's terminal height for a running step's output
# BuildKit's tty box holds every line of a failed step; keep the last ones so a step that
# printed megabytes before failing cannot flood the terminal (and our memory).
ERROR_BOX_LINES = 100


class _Row:
    def __init__(self, vertex: Vertex):
        self.vertex = vertex
        self.started: float | None = None
        self.elapsed: float | None = None  # set when it ends
        self.cached = False
        self.error: str | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.partial = ""  # the unfinished last line of output
        self.partial_stamp = ""
        self.box: deque[str] = deque(maxlen=ERROR_BOX_LINES)
        self.decoders: dict[int, codecs.IncrementalDecoder] = {}

    @property
    def done(self) -> bool:
        return self.cached or self.elapsed is not None

    def add(self, event: VertexLog) -> None:
        decoder = self.decoders.get(event.stream)
        if decoder is None:
            decoder = self.decoders[event.stream] = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(event.data)
        if not text:
            return
        stamp = log_timestamp(event.time - self.started) if self.started is not None else "0.000"
        pieces = text.split("\n")
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            if i == 0 and self.partial:
                line, line_stamp = self.partial + piece, self.partial_stamp
            else:
                line, line_stamp = piece, stamp
            if i < last:
                self.tail.append(_visible(line))
                self.box.append(f"{line_stamp} {line}")
            else:
                self.partial, self.partial_stamp = line, line_stamp

    def seconds(self, now: float) -> float:
        if self.cached:
            return 0.0
        if self.elapsed is not None:
            dt = self.elapsed
        elif self.started is not None:
            dt = now - self.started
        else:
            dt = 0.0
        return 0.0 if dt < 0.05 else dt


def _visible(line: str) -> str:
    """What a terminal shows of a line: the text after its last carriage return, tabs as
    spaces, no other control characters (they would move our cursor)."""
    line = line.rsplit("\r", 1)[-1].replace("\t", "    ")
    return "".join(c for c in line if c >= " " and c != "\x7f")


class TtyProgress(BuildProgress):
    def __init__(self, stream, console: Console | None = None) -> None:
        super().__init__()
        self.stream = stream
        self.console = console or Console(file=stream, highlight=False)
        self.rows: dict[int, _Row] = {}
        self.warnings: list[Warning] = []
        self.start: float | None = None
        self.finished = False
        self._state = threading.Lock()  # rows vs. rich's refresh thread
        self.live: Live | None = None

    def _handle(self, event) -> None:
        with self._state:
            if self.start is None:
                self.start = time.monotonic()
            if isinstance(event, Warning):
                self.warnings.append(event)
            elif not isinstance(event, BuildDone):
                row = self.rows.get(event.vertex.id)
                if row is None:
                    row = self.rows[event.vertex.id] = _Row(event.vertex)
                if isinstance(event, VertexStarted):
                    row.started = row.started if row.started is not None else event.time
                elif isinstance(event, VertexLog):
                    row.add(event)
                elif isinstance(event, VertexCached):
                    row.cached = True
                elif isinstance(event, VertexDone):
                    row.elapsed = event.elapsed
                elif isinstance(event, VertexFailed):
                    row.elapsed, row.error = event.elapsed, event.error
        if self.live is None:
            self.live = Live(get_renderable=self._render, console=self.console,
                             refresh_per_second=8, transient=False,
                             redirect_stdout=False, redirect_stderr=False,
                             vertical_overflow="visible")
            self.live.start()

    def _render(self):
        with self._state:
            now = time.monotonic()
            rows = list(self.rows.values())
            done = sum(r.done for r in rows)
            total_time = now - self.start if self.start is not None else 0.0
            header = f"[+] Building {total_time:.1f}s ({done}/{len(rows)})"
            if self.finished and rows and done == len(rows):
                header += " FINISHED"
            lines: list[tuple[Text, Text | None]] = []
            for r in rows:
                name = r.vertex.name.replace("\t", " ")
                style = ""
                if r.error is not None:
                    name, style = "ERROR " + name, "red"
                elif r.done:
                    style = "blue"
                if r.cached:
                    name = "CACHED " + name
                lines.append((Text(" => " + name, style=style), Text(f"{r.seconds(now):3.1f}s", style=style)))
                if not r.done and (r.tail or r.partial):
                    tail = list(r.tail)
                    if r.partial:
                        tail.append(_visible(r.partial))
                    for t in tail[-TAIL_LINES:]:
                        lines.append((Text(" => => # " + t, style="dim"), None))
            if not self.finished:
                # like BuildKit, a running view keeps to the terminal's height: newest rows last
                room = max(self.console.size.height - 2, 1)
                lines = lines[-room:]
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="crop")
        grid.add_column(justify="right", no_wrap=True)
        for left, right in lines:
            grid.add_row(left, right or "")
        return Group(Text(header), grid)

    def _finish(self) -> None:
        with self._state:
            self.finished = True
        if self.live is not None:
            self.live.stop()  # renders once more, in full, with FINISHED
        with self._state:
            failed = [r for r in self.rows.values() if r.error is not None]
            warnings = list(self.warnings)
        for r in failed:
            box = list(r.box) + ([f"{r.partial_stamp} {r.partial}"] if r.partial else [])
            self.stream.write("------\n")
            self.stream.write(f" > {r.vertex.name}:\n")
            for line in box:
                self.stream.write(line + "\n")
            self.stream.write("------\n")
        write_warnings(self.stream.write, warnings)
        self.stream.flush()

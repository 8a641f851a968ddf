"""What a build reports while it runs: the events the solver emits and the CLI renders.

The solver never prints. It calls `progress.emit(event)` with the values below, from any of
its threads (independent stages run at the same time), so a Progress must be thread-safe.
Renderers live in pybuild.cli.build_progress (tty, plain, quiet); tests collect events with
`Recorder`.

A vertex is one line of BuildKit's output: `#N [stage i/n] INSTRUCTION` for a step, or an
internal job (`[internal] load build definition from Dockerfile`, `[internal] load
.dockerignore`, `[internal] load metadata for busybox:latest`, `exporting to image`).
Its id is 1-based in order of first appearance, as BuildKit numbers them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "BuildDone",
    "Progress",
    "Recorder",
    "Vertex",
    "VertexCached",
    "VertexDone",
    "VertexFailed",
    "VertexLog",
    "VertexStarted",
    "Warning",
]


@dataclass(frozen=True)
class Vertex:
    id: int  # the N of `#N`
    name: str  # "[build 2/4] RUN make", "[internal] load .dockerignore", "exporting to image"
    stage: str | None = None  # the stage's name (or index as text) for steps, None for internal
    line: int | None = None  # the Dockerfile line of a step's instruction


@dataclass(frozen=True)
class VertexStarted:
    vertex: Vertex
    time: float  # time.monotonic() when it started


@dataclass(frozen=True)
class VertexCached:
    """The step's result came from the cache: nothing ran (BuildKit's `#N CACHED`)."""

    vertex: Vertex


@dataclass(frozen=True)
class VertexLog:
    """Output of a RUN (or a status line of an internal job), as it arrives: arbitrary chunks,
    not necessarily whole lines."""

    vertex: Vertex
    stream: int  # 1 stdout, 2 stderr
    data: bytes
    time: float  # time.monotonic()


@dataclass(frozen=True)
class VertexDone:
    vertex: Vertex
    elapsed: float  # seconds


@dataclass(frozen=True)
class VertexFailed:
    vertex: Vertex
    elapsed: float
    error: str  # one line: "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"


@dataclass(frozen=True)
class Warning:  # noqa: A001 - the name BuildKit's UI uses
    """A build warning (unused build arg, deprecated form, ...), shown once at the end."""

    message: str
    line: int | None = None


@dataclass(frozen=True)
class BuildDone:
    """The build finished (image_id set) or failed (image_id None)."""

    image_id: str | None
    tags: tuple[str, ...]
    elapsed: float


Event = VertexStarted | VertexCached | VertexLog | VertexDone | VertexFailed | Warning | BuildDone


class Progress(Protocol):
    def emit(self, event: Event) -> None: ...


class Recorder:
    """A Progress that keeps every event (tests, and callers who want no output)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type) -> list:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]

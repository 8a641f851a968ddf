"""Transfer progress as events, in Docker's words. The library emits them; only the CLI
renders them (bars on a terminal, plain lines otherwise)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

# Docker's per-layer states
WAITING = "Waiting"
PULLING_FS_LAYER = "Pulling fs layer"
DOWNLOADING = "Downloading"
VERIFYING = "Verifying Checksum"
DOWNLOAD_COMPLETE = "Download complete"
EXTRACTING = "Extracting"
PULL_COMPLETE = "Pull complete"
ALREADY_EXISTS = "Already exists"
PREPARING = "Preparing"
PUSHING = "Pushing"
PUSHED = "Pushed"
LAYER_EXISTS = "Layer already exists"
MOUNTED_FROM = "Mounted from"  # + " <repository>"

# the states that move a bar, rather than finish or start it
IN_PROGRESS = frozenset({DOWNLOADING, EXTRACTING, PUSHING})


@dataclasses.dataclass(frozen=True)
class Progress:
    """One change: `id` is a layer's short id (12 hex), or "" for a line about the image."""

    id: str
    status: str
    current: int = 0
    total: int = 0


Events = Callable[[Progress], None]


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def ignore(_event: Progress) -> None:
    pass

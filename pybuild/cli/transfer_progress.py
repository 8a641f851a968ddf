"""Rendering of pull/push progress events: per-layer bars on a terminal (rich, imported
only then), Docker's plain status lines otherwise, nothing with -q."""

from __future__ import annotations

import sys
import threading

from pybuild.registry.events import IN_PROGRESS, Progress


class PlainRenderer:
    """One line per state change, as Docker prints when stdout is not a terminal: byte
    counts are not printed, so a log shows each layer's states once."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, e: Progress) -> None:
        with self._lock:
            if e.id and e.status in IN_PROGRESS and self._last.get(e.id) == e.status:
                return
            self._last[e.id] = e.status
            print(f"{e.id}: {e.status}" if e.id else e.status, file=self.out, flush=True)

    def close(self) -> None:
        pass


class QuietRenderer:
    def __call__(self, e: Progress) -> None:
        pass

    def close(self) -> None:
        pass


class BarRenderer:
    """Per-layer rows `<id>: <state> [bar] done/total` with rich, updated from any thread."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, TextColumn
        from rich.progress import Progress as Bars

        self.console = Console()
        self.bars = Bars(TextColumn("{task.fields[sid]}: {task.description:<20}"),
                         BarColumn(bar_width=40), DownloadColumn(), console=self.console,
                         transient=False, auto_refresh=True, refresh_per_second=8)
        self.tasks: dict[str, object] = {}
        self.totals: dict[str, int] = {}
        self._lock = threading.Lock()
        self.bars.start()

    def __call__(self, e: Progress) -> None:
        with self._lock:
            if not e.id:
                self.console.print(e.status, highlight=False)
                return
            task = self.tasks.get(e.id)
            if task is None:
                task = self.tasks[e.id] = self.bars.add_task(e.status, sid=e.id, total=None)
            if e.total:
                self.totals[e.id] = e.total
            total = self.totals.get(e.id)
            if e.status in IN_PROGRESS:
                self.bars.update(task, description=e.status, completed=e.current, total=total)
            else:
                done = e.status not in ("Waiting", "Pulling fs layer", "Preparing")
                self.bars.update(task, description=e.status, total=total,
                                 completed=(total or 0) if done else 0)

    def close(self) -> None:
        self.bars.stop()


def renderer(quiet: bool):
    if quiet:
        return QuietRenderer()
    if sys.stdout.isatty():
        return BarRenderer()
    return PlainRenderer()

"""ADD archive extraction (not yet in this increment)."""

from __future__ import annotations

from pybuild.builder.steps.copy_sources import Item


def mark_archives(items: list[Item], urls_too: bool) -> list[Item]:
    return items

"""The cache index in the store's meta.db: step key -> resulting layer (chain id) and config change.

The `cache` table is created by migration 2 in pybuild.image.meta, which also registers its
chain ids as GC roots, so `pyrun system prune`/gc never deletes a snapshot a cache entry needs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pybuild.image.store import Store

__all__ = ["CacheEntry", "forget", "lookup", "record"]


@dataclass(frozen=True)
class CacheEntry:
    key: str
    chain_id: str | None  # None: the step changed only the config (ENV, LABEL, CMD, ...)
    config_change: dict[str, Any]
    created: float


def lookup(store: Store, key: str) -> CacheEntry | None:
    """The entry for `key`, or None. An entry whose snapshot is gone (removed by hand, or a
    store repaired by `system check`) is a miss: reusing it would build on nothing."""
    with store.transaction() as db:
        row = db.execute(
            "SELECT c.chain_id, c.config_change, c.created, s.chain_id FROM cache c"
            " LEFT JOIN snapshots s ON s.chain_id = c.chain_id WHERE c.key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        chain_id, change, created, present = row
        if chain_id is not None and present is None:
            db.execute("DELETE FROM cache WHERE key = ?", (key,))
            return None
    return CacheEntry(key, chain_id, json.loads(change), created)


def record(
    store: Store, key: str, chain_id: str | None, config_change: dict[str, Any] | None = None
) -> CacheEntry:
    """Remember a step's result (replacing an older one for the same key), in one transaction.
    The snapshot must already be in the store: the row must never name a missing layer."""
    change = config_change or {}
    text = json.dumps(change, sort_keys=True, separators=(",", ":"))
    now = time.time()
    with store.transaction() as db:
        if chain_id is not None and db.execute(
            "SELECT 1 FROM snapshots WHERE chain_id = ?", (chain_id,)
        ).fetchone() is None:
            raise ValueError(f"cache entry names an unknown snapshot {chain_id}")
        db.execute(
            "INSERT OR REPLACE INTO cache (key, chain_id, config_change, created)"
            " VALUES (?, ?, ?, ?)",
            (key, chain_id, text, now),
        )
    return CacheEntry(key, chain_id, json.loads(text), now)


def forget(store: Store, keys: list[str] | None = None) -> int:
    """Drop the given entries (None: all of them, as `builder prune` would); their snapshots
    become collectable by the next gc. Returns how many rows went."""
    with store.transaction() as db:
        if keys is None:
            return db.execute("DELETE FROM cache").rowcount
        return sum(db.execute("DELETE FROM cache WHERE key = ?", (k,)).rowcount for k in keys)

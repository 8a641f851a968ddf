"""What the build cache holds, for `pyrun system df` (its "Build Cache" row) and `pyrun builder
prune`: cache entries, the layers only they keep, and the files under <root>/buildcache
(RUN cache mounts, remembered Dockerfile parses)."""

from __future__ import annotations

import os

from pybuild.image.store import Store
from pybuild.image.usage import Usage

__all__ = ["buildcache_dir", "cache_usage", "dir_size"]


def buildcache_dir(store: Store) -> str:
    return os.path.join(store.root, "buildcache")


def dir_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def cache_usage(store: Store) -> Usage:
    """Entries (TOTAL), those whose layer an image uses too (ACTIVE), and the bytes that
    only the cache keeps: layers no image uses, plus the buildcache files."""
    with store._db_lock:
        db = store.db
        rows = db.execute("SELECT c.chain_id, s.size FROM cache c"
                          " LEFT JOIN snapshots s ON s.chain_id = c.chain_id").fetchall()
        used = {r[0] for r in db.execute("SELECT chain_id FROM image_layers")}
    active = sum(1 for chain, _ in rows if chain in used)
    only_cache = {chain: size or 0 for chain, size in rows if chain and chain not in used}
    size = sum(only_cache.values()) + dir_size(buildcache_dir(store))
    return Usage("Build Cache", len(rows), active, size, size)

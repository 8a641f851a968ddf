"""Garbage collection of the store: blobs and snapshots that no image (nor any GC root another
area registered in pybuild.image.meta) refers to, orphan snapshot dirs and tmp/ leftovers."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pybuild.image import meta, snapshots
from pybuild.image.store import Store


@dataclass(frozen=True)
class GcResult:
    blobs: tuple[str, ...]          # digests removed
    snapshots: tuple[str, ...]      # chain ids removed
    leftovers: int                  # tmp/ entries and orphan snapshot dirs removed
    bytes_freed: int                # of the blobs removed


def live_chain_ids(store: Store) -> set[str]:
    """Chain ids in use (by images and GC roots), closed over their parents."""
    db = store.db
    live = {r[0] for r in db.execute("SELECT chain_id FROM image_layers")}
    for sql in meta.GC_CHAIN_ID_ROOTS:
        live.update(r[0] for r in db.execute(sql) if r[0])
    parents = dict(db.execute("SELECT chain_id, parent FROM snapshots").fetchall())
    todo = list(live)
    while todo:
        p = parents.get(todo.pop())
        if p and p not in live:
            live.add(p)
            todo.append(p)
    return live


def live_blobs(store: Store) -> set[str]:
    db = store.db
    live = {r[0] for r in db.execute("SELECT id FROM images")}
    live.update(r[0] for r in db.execute("SELECT digest FROM image_manifests"))
    live.update(r[0] for r in db.execute("SELECT digest FROM repo_digests"))
    live.update(r[0] for r in db.execute(
        "SELECT digest FROM layers WHERE diff_id IN (SELECT diff_id FROM image_layers)"))
    for sql in meta.GC_BLOB_ROOTS:
        live.update(r[0] for r in db.execute(sql) if r[0])
    return live


def collect(store: Store, wait: bool = True) -> GcResult:
    with store.exclusive(wait):
        with store._db_lock:
            chains = live_chain_ids(store)
            blobs_live = live_blobs(store)
        dead_snaps = [s.chain_id for s in store.snapshots() if s.chain_id not in chains]
        removed_snaps = snapshots.delete(store, dead_snaps)

        # rows first, files after: a crash in between leaves unreferenced files (gc's next
        # run takes them), never a layer row naming a missing blob
        dead = [n for n in sorted(os.listdir(store.blob_dir)) if "sha256:" + n not in blobs_live]
        with store.transaction() as db:
            db.executemany("DELETE FROM layers WHERE digest=?", [("sha256:" + n,) for n in dead])
            for (digest,) in db.execute("SELECT DISTINCT digest FROM layers").fetchall():
                if not store.has_blob(digest):  # its file was lost some other way
                    db.execute("DELETE FROM layers WHERE digest=?", (digest,))
        removed_blobs, freed = [], 0
        for name in dead:
            path = os.path.join(store.blob_dir, name)
            try:
                size = os.lstat(path).st_size
                os.unlink(path)
            except FileNotFoundError:
                continue
            except IsADirectoryError:
                snapshots.remove_tree(path)
            removed_blobs.append("sha256:" + name)
            freed += size

        leftovers = 0
        known = {str(s.n) for s in store.snapshots()}
        for name in os.listdir(store.snapshots_dir):
            if name not in known:
                snapshots.remove_tree(os.path.join(store.snapshots_dir, name))
                leftovers += 1
        # nobody else holds the store, so nothing in tmp/ is in progress
        for name in os.listdir(store.tmp_dir):
            snapshots.remove_tree(os.path.join(store.tmp_dir, name))
            leftovers += 1
    return GcResult(tuple(removed_blobs), tuple(removed_snaps), leftovers, freed)

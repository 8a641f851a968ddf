"""Snapshots: one unpacked layer per chain id in snapshots/<n>/fs, shared by every image and
container. A snapshot is staged in tmp/ (or is a finished overlay upper dir), renamed into
place and recorded in one meta.db transaction; concurrent creators of one chain id end with
one snapshot (the loser's staged copy is discarded)."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import time
from collections.abc import Callable

from pybuild.errors import ImageError, StoreError
from pybuild.image.blobwriter import _fsync_dir
from pybuild.image.store import SnapshotRecord, Store, chain_id


@functools.cache
def _libc():
    import ctypes  # loaded when a snapshot is written, not by every user of remove_tree

    return ctypes.CDLL(None, use_errno=True)


def syncfs(path: str) -> None:
    """Flush the file system holding `path` (cheaper than fsyncing thousands of files)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc().syncfs(fd) != 0:
            import ctypes

            err = ctypes.get_errno()
            raise StoreError(f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def remove_tree(path: str) -> None:
    """rm -rf that also copes with read-only dirs (a layer may contain mode 0555 dirs)."""
    def onerror(func, p, exc_info):
        if not isinstance(exc_info[1], PermissionError):
            if isinstance(exc_info[1], FileNotFoundError):
                return
            raise exc_info[1]
        # without CAP_DAC_OVERRIDE a 0555 dir blocks its own emptying: open it up, retry once
        os.chmod(os.path.dirname(p), stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
            shutil.rmtree(p)
        else:
            func(p)

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, onerror=onerror)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def staging_dir(store: Store) -> str:
    """A fresh tmp/snap-XXXX dir; the snapshot content goes into its `fs` subdir."""
    import tempfile  # not for remove_tree, which a cached build uses

    d = tempfile.mkdtemp(prefix="snap-", dir=store.tmp_dir)
    os.mkdir(os.path.join(d, "fs"), 0o755)
    return d


def install(store: Store, fs_dir: str, parent: str | None, diff_id: str, size: int,
            durable: bool = True, synced: bool = False) -> SnapshotRecord:
    """Rename a finished layer dir (a staged dir's fs/, or a build's overlay upper dir on the
    store's file system) into snapshots/<n>/fs and record it. If the chain id exists already,
    `fs_dir` is removed and the existing record returned. synced=True: the caller ran
    syncfs() after the dir was complete (only the renames are synced here)."""
    cid = chain_id(parent, diff_id)
    with store.hold():
        if parent is not None and store.snapshot(parent) is None:
            raise ImageError(f"parent snapshot {parent} of layer {diff_id} is missing")
        if durable and not synced:
            syncfs(fs_dir)
        trash: list[str] = []
        existing = None
        with store.transaction() as db:
            row = db.execute("SELECT n FROM snapshots WHERE chain_id=?", (cid,)).fetchone()
            if row:
                existing = row
            else:
                n = db.execute("INSERT INTO snapshots (chain_id, parent, diff_id, size, created) "
                               "VALUES (?,?,?,?,?)",
                               (cid, parent, diff_id, size, time.time())).lastrowid
                target = os.path.join(store.snapshots_dir, str(n))
                if os.path.lexists(target):  # left by a crash between rename and commit
                    import tempfile

                    moved = tempfile.mkdtemp(prefix="trash-", dir=store.tmp_dir)
                    os.rename(target, os.path.join(moved, "old"))
                    trash.append(moved)
                os.mkdir(target, 0o755)
                try:
                    os.rename(fs_dir, os.path.join(target, "fs"))
                except OSError as e:
                    os.rmdir(target)
                    raise StoreError(f"cannot move {fs_dir} into the store: {e.strerror}") from None
                if durable:  # the renames reach the disk before the record does
                    _fsync_dir(target)
                    _fsync_dir(store.snapshots_dir)
        if existing:
            remove_tree(fs_dir)
        for t in trash:
            remove_tree(t)
        rec = store.snapshot(cid)
        assert rec is not None
        return rec


def create(store: Store, parent: str | None, diff_id: str | None,
           fill: Callable[[str], tuple[str, int]], durable: bool = True) -> SnapshotRecord:
    """Stage a snapshot: fill(dir) writes the layer into dir and returns (diff_id, size)
    (the diff id is often known only after unpacking); then install it. If `diff_id` is
    given and its snapshot exists, fill is not called."""
    if diff_id is not None:
        rec = store.snapshot(chain_id(parent, diff_id))
        if rec is not None:
            return rec
    with store.hold():
        stage = staging_dir(store)
        try:
            got, size = fill(os.path.join(stage, "fs"))
            if diff_id is not None and got != diff_id:
                raise ImageError(f"layer content has diff id {got}, expected {diff_id}")
            return install(store, os.path.join(stage, "fs"), parent, got, size, durable)
        finally:
            remove_tree(stage)


def delete(store: Store, chain_ids: list[str]) -> list[str]:
    """Forget snapshots, then remove their dirs (the caller checked nothing uses them). A
    crash in between leaves dirs without records, which gc() removes."""
    removed: list[str] = []
    with store.transaction() as db:
        for cid in chain_ids:
            row = db.execute("SELECT n FROM snapshots WHERE chain_id=?", (cid,)).fetchone()
            if row:
                db.execute("DELETE FROM snapshots WHERE chain_id=?", (cid,))
                removed.append((cid, row[0]))
    for _, n in removed:
        remove_tree(os.path.join(store.snapshots_dir, str(n)))
    return [cid for cid, _ in removed]

"""The store on disk: content-addressed blobs plus the meta.db records of images, tags,
layers and snapshots, under one root that several pybuild/pyrun processes share.

Layout (DESIGN.md "The store")::

    blobs/sha256/<hex>   lock   meta.db   snapshots/<n>/fs   containers/   volumes/   tmp/

API (all digests are "sha256:<hex>"; records are frozen dataclasses from pybuild.image.records,
re-exported here with chain_id/chain_ids/sha256_digest/check_digest)::

    store = Store(root)                      # creates the layout, opens/migrates meta.db
    # blobs: written to tmp/, verified while written, fsynced, renamed into place
    store.put_blob(data, expected=None) -> Blob            # Blob(digest, size)
    store.ingest(stream, expected=None, size=None) -> Blob # ImageError on a digest/size mismatch
    with store.blob_writer(expected=None, size=None) as w: w.write(b); blob = w.commit()
    store.has_blob(d)  store.blob_size(d)  store.blob_path(d)  store.open_blob(d)
    store.read_blob(d, verify=True) -> bytes   store.delete_blob(d)   store.blobs()
    # images (id = config digest), tags (full reference -> image id), manifests
    store.add_image(config_bytes, config_media_type=..., parent=None, size=None) -> ImageRecord
    store.image(id) / store.images() / store.image_ids_with_prefix(hex) / store.delete_image(id)
    store.add_manifest(image_id, digest, media_type)   store.manifests(image_id)
    store.add_repo_digest(repository, digest, image_id)   store.repo_digests(image_id=None)
    store.set_tag(ref, image_id)  store.tag(ref)  store.remove_tag(ref)  store.tags(image_id=None)
    # layers: diff id -> the blobs (gzip/zstd/plain) known to hold it
    store.add_layer_blob(LayerBlob(...))  store.layer_blobs(diff_id)  store.layer_of_blob(digest)
    # snapshots: chain id -> snapshots/<n>/fs (created by pybuild.image.snapshots)
    store.snapshot(chain_id)  store.snapshots()  store.snapshot_dir(chain_id_or_record)
    store.lower_dirs(chain_ids, relative=False)  # topmost first, for overlay's lowerdir
    # concurrency
    with store.hold(): ...        # shared store lock: keep gc from collecting half-made work
    with store.transaction() as db: ...   # BEGIN IMMEDIATE on meta.db
    store.gc() -> GcResult        # pybuild.image.gc: unreferenced blobs/snapshots, tmp/ leftovers

Layers and snapshots (other modules, all taking the Store)::

    pybuild.image.layers.commit_dir(store, upper_dir, parent_chain_id, source_date_epoch=None,
        compression=None) -> Layer(diff_id, size, chain_id, snapshot, blob)
        # a build's unmounted upper dir (on the store's fs) becomes snapshots/<n>/fs; lazy:
        # the tar is hashed while streaming, never written, unless compression is given
    layers.ensure_blob(store, chain_id, "gzip"|"zstd"|"none") -> LayerBlob   # push/save
    layers.unpack_layer(store, parent_chain_id, stream, expected_digest=None,
        expected_diff_id=None, size=None, keep_blob=True, media_type=None) -> Layer  # pull/load
    layers.compress_dir(store, dir, "gzip") -> LayerBlob; layers.tar_digest(dir) -> (diff_id, size)
    layers.open_plain(store, blob_digest) -> readable plain tar of any layer blob
    pybuild.image.snapshots.create(store, parent, diff_id, fill) / install(...) / delete(...)
    pybuild.image.check.check_store(store) -> [Finding]    pybuild.image.gc.collect(store)

Writers (ingest, snapshot creation, a whole pull or build) hold the shared lock; gc takes it
exclusively, so it never deletes something another process is about to record. Files exist
before the meta.db transaction that names them, so a crash leaves the old or the new state
(plus, at worst, an unreferenced file that gc and `pyrun system check` find).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from pybuild.errors import ImageError, StoreError
from pybuild.image import meta
from pybuild.image.blobwriter import BlobWriter, _fsync_dir
from pybuild.image.records import (  # re-exported: the store's public values
    CHUNK,
    Blob,
    ImageRecord,
    LayerBlob,
    ManifestRecord,
    SnapshotRecord,
    TagRecord,
    chain_id,
    chain_ids,
    check_digest,
    sha256_digest,
)

__all__ = ["Store", "BlobWriter", "Blob", "ImageRecord", "LayerBlob", "ManifestRecord",
           "SnapshotRecord", "TagRecord", "chain_id", "chain_ids", "check_digest",
           "sha256_digest", "CHUNK", "MT_OCI_CONFIG", "_fsync_dir"]

MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


class Store:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.blob_dir = os.path.join(self.root, "blobs", "sha256")
        self.snapshots_dir = os.path.join(self.root, "snapshots")
        self.containers_dir = os.path.join(self.root, "containers")
        self.volumes_dir = os.path.join(self.root, "volumes")
        self.tmp_dir = os.path.join(self.root, "tmp")
        try:
            for d in (self.blob_dir, self.snapshots_dir, self.containers_dir,
                      self.volumes_dir, self.tmp_dir):
                os.makedirs(d, mode=0o700 if d == self.tmp_dir else 0o755, exist_ok=True)
            self._lock_fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot create the store at {self.root}: {e.strerror}") from None
        self._db_lock = threading.RLock()
        self._hold_lock = threading.Lock()
        self._holds = 0
        self.db = meta.connect(os.path.join(self.root, "meta.db"))

    def close(self) -> None:
        self.db.close()
        os.close(self._lock_fd)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- locking -------------------------------------------------------------------------
    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Shared store lock (re-entrant per Store): gc waits until every holder is done."""
        with self._hold_lock:
            if self._holds == 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
            self._holds += 1
        try:
            yield
        finally:
            with self._hold_lock:
                self._holds -= 1
                if self._holds == 0:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self, wait: bool = True) -> Iterator[None]:
        """The store to ourselves (gc, prune): no other process holds or ingests."""
        if self._holds:
            raise StoreError("cannot lock the store exclusively while holding it shared")
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise StoreError(f"{self.root}: the store is in use by another process") from None
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction: commit on success, roll back on any error."""
        with self._db_lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise StoreError(f"{self.root}/meta.db: {e}") from None
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._db_lock:
            return self.db.execute(sql, args).fetchall()

    # ---- blobs ---------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, check_digest(digest)[7:])

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def blob_size(self, digest: str) -> int:
        try:
            return os.stat(self.blob_path(digest)).st_size
        except FileNotFoundError:
            raise ImageError(f"blob {digest} not found in the store") from None

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise ImageError(f"blob {digest} not found in the store") from None

    def read_blob(self, digest: str, verify: bool = True) -> bytes:
        with self.open_blob(digest) as f:
            data = f.read()
        if verify and sha256_digest(data) != digest:
            raise StoreError(f"blob {digest} is corrupt (its content has another digest)")
        return data

    def blob_writer(self, expected: str | None = None, size: int | None = None) -> BlobWriter:
        return BlobWriter(self, expected, size)

    def put_blob(self, data: bytes, expected: str | None = None) -> Blob:
        digest = sha256_digest(data)
        if expected is not None and check_digest(expected) != digest:
            raise ImageError(f"digest mismatch: expected {expected}, got {digest}")
        if self.has_blob(digest):
            return Blob(digest, len(data))
        with self.hold(), self.blob_writer(digest, len(data)) as w:
            w.write(data)
            return w.commit()

    def ingest(self, stream: BinaryIO, expected: str | None = None,
               size: int | None = None) -> Blob:
        """Copy a stream into a blob, verifying digest and size; nothing stored on mismatch."""
        with self.hold(), self.blob_writer(expected, size) as w:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                w.write(chunk)
                if size is not None and w.size > size:
                    raise ImageError(f"size mismatch: more than the expected {size} bytes")
            return w.commit()

    def delete_blob(self, digest: str) -> bool:
        try:
            os.unlink(self.blob_path(digest))
            return True
        except FileNotFoundError:
            return False

    def blobs(self) -> list[str]:
        return sorted("sha256:" + n for n in os.listdir(self.blob_dir))

    # ---- images, manifests, tags -----------------------------------------------------------
    def add_image(self, config: bytes, config_media_type: str = MT_OCI_CONFIG,
                  parent: str | None = None, size: int | None = None) -> ImageRecord:
        """Store a config blob and its image record (id = config digest). Idempotent."""
        import json

        try:
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
            if not isinstance(diff_ids, list):
                raise TypeError("rootfs.diff_ids is not a list")
            diff_ids = [check_digest(d) for d in diff_ids]
        except (ValueError, KeyError, TypeError) as e:
            raise ImageError(f"invalid image config: {e}") from None
        blob = self.put_blob(config)
        existing = self.image(blob.digest)
        if existing is not None:
            return existing
        if size is None:
            size = self._layers_size(diff_ids)
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO images VALUES (?,?,?,?,?)",
                       (blob.digest, config_media_type, time.time(), size, parent))
            db.executemany("INSERT OR IGNORE INTO image_layers VALUES (?,?,?,?)",
                           [(blob.digest, i, d, c)
                            for i, (d, c) in enumerate(zip(diff_ids, chain_ids(diff_ids), strict=True))])
        return self.image(blob.digest)

    def _layers_size(self, diff_ids: list[str]) -> int:
        total = 0
        for d in diff_ids:
            row = self._query("SELECT uncompressed_size FROM layers WHERE diff_id=? LIMIT 1", (d,))
            if not row:
                row = self._query("SELECT size FROM snapshots WHERE diff_id=? LIMIT 1", (d,))
            total += row[0][0] if row else 0
        return total

    def image(self, image_id: str) -> ImageRecord | None:
        rows = self._query("SELECT id, config_media_type, created, size, parent FROM images "
                           "WHERE id=?", (image_id,))
        if not rows:
            return None
        layers = self._query("SELECT diff_id FROM image_layers WHERE image_id=? ORDER BY position",
                             (image_id,))
        return ImageRecord(*rows[0], diff_ids=tuple(r[0] for r in layers))

    def images(self) -> list[ImageRecord]:
        ids = self._query("SELECT id FROM images ORDER BY created DESC, id")
        return [r for (i,) in ids if (r := self.image(i)) is not None]

    def image_ids_with_prefix(self, hex_prefix: str) -> list[str]:
        """Image ids whose hex starts with the prefix (Docker's short ids)."""
        prefix = hex_prefix.removeprefix("sha256:")
        if not re.fullmatch(r"[0-9a-f]{1,64}", prefix):
            return []
        return [r[0] for r in self._query("SELECT id FROM images WHERE id >= ? AND id < ? "
                                          "ORDER BY id", (f"sha256:{prefix}", f"sha256:{prefix}g"))]

    def delete_image(self, image_id: str) -> bool:
        """Forget an image with its tags, manifests and repo digests; blobs stay for gc()."""
        with self.transaction() as db:
            return db.execute("DELETE FROM images WHERE id=?", (image_id,)).rowcount > 0

    def add_manifest(self, image_id: str, digest: str, media_type: str) -> None:
        if not self.has_blob(digest):
            raise ImageError(f"manifest {digest} is not in the store")
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO image_manifests VALUES (?,?,?)",
                       (image_id, check_digest(digest), media_type))

    def manifests(self, image_id: str) -> list[ManifestRecord]:
        return [ManifestRecord(*r) for r in self._query(
            "SELECT image_id, digest, media_type FROM image_manifests WHERE image_id=? "
            "ORDER BY digest", (image_id,))]

    def add_repo_digest(self, repository: str, digest: str, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO repo_digests VALUES (?,?,?)",
                       (repository, check_digest(digest), image_id))

    def repo_digests(self, image_id: str | None = None) -> list[tuple[str, str, str]]:
        """(repository, manifest digest, image id) rows."""
        if image_id is None:
            return self._query("SELECT * FROM repo_digests ORDER BY repository, digest")
        return self._query("SELECT * FROM repo_digests WHERE image_id=? "
                           "ORDER BY repository, digest", (image_id,))

    def set_tag(self, reference: str, image_id: str) -> str | None:
        """Point a reference at an image; return the image id it pointed at before."""
        if self.tag(reference) == image_id:
            # already so (a cached rebuild's tag): no write, so no commit and no fsync
            return image_id
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone():
                raise ImageError(f"no such image: {image_id}")
            old = db.execute("SELECT image_id FROM tags WHERE reference=?", (reference,)).fetchone()
            db.execute("INSERT OR REPLACE INTO tags VALUES (?,?,?)",
                       (reference, image_id, time.time()))
        return old[0] if old else None

    def tag(self, reference: str) -> str | None:
        rows = self._query("SELECT image_id FROM tags WHERE reference=?", (reference,))
        return rows[0][0] if rows else None

    def remove_tag(self, reference: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM tags WHERE reference=?", (reference,)).rowcount > 0

    def tags(self, image_id: str | None = None) -> list[TagRecord]:
        if image_id is None:
            rows = self._query("SELECT * FROM tags ORDER BY reference")
        else:
            rows = self._query("SELECT * FROM tags WHERE image_id=? ORDER BY reference", (image_id,))
        return [TagRecord(*r) for r in rows]

    # ---- layers ----------------------------------------------------------------------------
    def add_layer_blob(self, layer: LayerBlob) -> None:
        if layer.compression not in ("none", "gzip", "zstd"):
            raise ImageError(f"unknown layer compression {layer.compression!r}")
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO layers VALUES (?,?,?,?,?,?)",
                       (check_digest(layer.diff_id), check_digest(layer.digest), layer.compression,
                        layer.media_type, layer.size, layer.uncompressed_size))

    def layer_blobs(self, diff_id: str, compression: str | None = None) -> list[LayerBlob]:
        """Blobs recorded for a diff id (those whose file still exists), optionally one kind."""
        rows = self._query("SELECT diff_id, digest, compression, size, uncompressed_size, "
                           "media_type FROM layers WHERE diff_id=? ORDER BY compression, digest",
                           (diff_id,))
        out = [LayerBlob(*r) for r in rows]
        return [b for b in out if (compression is None or b.compression == compression)
                and self.has_blob(b.digest)]

    def layer_of_blob(self, digest: str) -> LayerBlob | None:
        rows = self._query("SELECT diff_id, digest, compression, size, uncompressed_size, "
                           "media_type FROM layers WHERE digest=? LIMIT 1", (digest,))
        return LayerBlob(*rows[0]) if rows else None

    # ---- snapshots -------------------------------------------------------------------------
    def snapshot(self, chain_id: str) -> SnapshotRecord | None:
        rows = self._query("SELECT chain_id, n, parent, diff_id, size, created FROM snapshots "
                           "WHERE chain_id=?", (chain_id,))
        return SnapshotRecord(*rows[0]) if rows else None

    def snapshots(self) -> list[SnapshotRecord]:
        return [SnapshotRecord(*r) for r in self._query(
            "SELECT chain_id, n, parent, diff_id, size, created FROM snapshots ORDER BY n")]

    def snapshot_dir(self, snap: SnapshotRecord | str, relative: bool = False) -> str:
        """snapshots/<n>/fs of a record or chain id (relative: to snapshots_dir)."""
        if isinstance(snap, str):
            rec = self.snapshot(snap)
            if rec is None:
                raise ImageError(f"no snapshot for chain id {snap}")
            snap = rec
        rel = f"{snap.n}/fs"
        return rel if relative else os.path.join(self.snapshots_dir, rel)

    def lower_dirs(self, chain_ids: Iterable[str], relative: bool = False) -> list[str]:
        """Snapshot dirs of a layer chain (given base first), topmost first for lowerdir=.

        relative=True gives paths relative to snapshots_dir ("12/fs"): mount with that as the
        working directory and 120 layers fit in the one-page mount option limit."""
        return [self.snapshot_dir(c, relative) for c in reversed(list(chain_ids))]

    def gc(self, wait: bool = True):
        """Remove blobs and snapshots nothing refers to; see pybuild.image.gc."""
        from pybuild.image.gc import collect

        return collect(self, wait=wait)

"""Layers: a layer dir (a build's overlay upper dir, or a snapshot) <-> tar blobs.

- commit_dir: a finished upper dir becomes a snapshot plus its diff id, hashed while the
  tar streams and never written (lazy, as BuildKit); optionally compressed in the same pass.
- ensure_blob: the compressed blob of a layer, made the first time push/save needs it
  (transcoded from a blob it already has, else re-tarred from the snapshot) and remembered.
- unpack_layer: a pulled blob (gzip/zstd/plain by magic) -> snapshot in one streaming pass:
  the blob is stored and hashed, decompressed, hashed again for the diff id, and unpacked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

from pybuild.errors import ImageError, StoreError
from pybuild.image import snapshots
from pybuild.image.compress import (
    CHUNK,
    CompressSink,
    DecompressReader,
    HashSink,
    check,
)
from pybuild.image.store import LayerBlob, SnapshotRecord, Store, chain_id
from pybuild.image.tarstream import LayerStream
from pybuild.image.tarwriter import write_layer_tar
from pybuild.image.unpack import unpack

# overlay bookkeeping an upper dir may carry; as a lower dir it would mislead overlayfs
_UPPER_ONLY_XATTRS = ("trusted.overlay.origin", "trusted.overlay.impure",
                      "trusted.overlay.nlink", "trusted.overlay.upper",
                      "trusted.overlay.redirect", "trusted.overlay.metacopy")


@dataclass(frozen=True)
class Layer:
    diff_id: str
    size: int                  # bytes of the plain tar
    chain_id: str
    snapshot: SnapshotRecord
    blob: LayerBlob | None     # None while compression is lazy


def tar_digest(path: str, source_date_epoch: int | None = None) -> tuple[str, int]:
    """(diff id, tar size) of a layer dir, hashing the tar as it streams."""
    sink = HashSink()
    size = write_layer_tar(path, sink, source_date_epoch)
    return sink.digest(), size


def _compress(store: Store, write_plain, compression: str, level: int | None) -> LayerBlob:
    """Run write_plain(sink) -> plain size through the compressor into a new blob."""
    check(compression)
    with store.hold(), store.blob_writer() as bw:
        sink = CompressSink(bw, compression, level)
        try:
            size = write_plain(sink)
        finally:
            sink.close()
        blob = bw.commit()
    return LayerBlob(sink.plain.digest(), blob.digest, compression, blob.size, size)


def compress_dir(store: Store, path: str, compression: str = "gzip",
                 source_date_epoch: int | None = None, level: int | None = None,
                 record: bool = True) -> LayerBlob:
    """Tar + compress + hash a layer dir in one pass into a blob (and record it)."""
    lb = _compress(store, lambda sink: write_layer_tar(path, sink, source_date_epoch),
                   compression, level)
    if record:
        store.add_layer_blob(lb)
    return lb


def prepare_upper(path: str, source_date_epoch: int | None = None) -> None:
    """Drop overlay's upper-only xattrs and clamp mtimes on disk, so the snapshot and its
    diff id agree (a later re-tar for ensure_blob gives the same bytes)."""
    def fix(p: str) -> None:
        try:
            names = os.listxattr(p, follow_symlinks=False)
        except OSError:
            names = []
        for name in names:
            if name in _UPPER_ONLY_XATTRS:
                os.removexattr(p, name, follow_symlinks=False)
        if source_date_epoch is not None:
            st = os.lstat(p)
            if st.st_mtime > source_date_epoch:
                os.utime(p, (source_date_epoch, source_date_epoch), follow_symlinks=False)

    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            fix(os.path.join(dirpath, name))
        fix(dirpath)


def commit_dir(store: Store, layer_dir: str, parent: str | None,
               source_date_epoch: int | None = None, compression: str | None = None,
               durable: bool = True) -> Layer:
    """Make a finished (unmounted) upper dir on the store's file system a snapshot: hash its
    tar (and compress it now if `compression` is given), rename it into snapshots/. If that
    chain id exists already, `layer_dir` is removed and the existing snapshot used."""
    with store.hold():
        prepare_upper(layer_dir, source_date_epoch)
        blob = None
        if compression is not None:
            blob = compress_dir(store, layer_dir, compression)
            diff_id, size = blob.diff_id, blob.uncompressed_size
        else:
            diff_id, size = tar_digest(layer_dir)
        snap = snapshots.install(store, layer_dir, parent, diff_id, size, durable)
        return Layer(diff_id, size, snap.chain_id, snap, blob)


def open_plain(store: Store, blob_digest: str) -> DecompressReader:
    """The plain tar of a layer blob, whatever its compression."""
    return DecompressReader(store.open_blob(blob_digest))


def ensure_blob(store: Store, chain: str, compression: str = "gzip",
                level: int | None = None) -> LayerBlob:
    """The layer blob of a snapshot in the given compression, made now if missing."""
    check(compression)
    snap = store.snapshot(chain)
    if snap is None:
        raise ImageError(f"no snapshot for chain id {chain}")
    have = store.layer_blobs(snap.diff_id)
    for lb in have:
        if lb.compression == compression:
            return lb
    with store.hold():
        if have:  # transcode: a pulled layer's own tar, not a re-tar of its snapshot
            def write_plain(sink, src=have[0].digest):
                with open_plain(store, src) as r:
                    n = 0
                    while data := r.read(CHUNK):
                        sink.write(data)
                        n += len(data)
                    return n
            lb = _compress(store, write_plain, compression, level)
        else:
            lb = compress_dir(store, store.snapshot_dir(snap), compression, level=level,
                              record=False)
        if lb.diff_id != snap.diff_id:
            store.delete_blob(lb.digest)
            raise StoreError(f"snapshot {snap.n} of layer {snap.diff_id} changed since it was "
                             f"committed (now {lb.diff_id}); run `pyrun system check`")
        store.add_layer_blob(lb)
        return lb


def unpack_layer(store: Store, parent: str | None, src: BinaryIO,
                 expected_digest: str | None = None, expected_diff_id: str | None = None,
                 size: int | None = None, keep_blob: bool = True, media_type: str | None = None,
                 durable: bool = True) -> Layer:
    """A layer blob stream -> its snapshot (and the blob itself if keep_blob), one pass."""
    with store.hold():
        if expected_diff_id is not None:
            snap = store.snapshot(chain_id(parent, expected_diff_id))
            blobs = store.layer_blobs(expected_diff_id)
            if snap is not None and (not keep_blob or blobs):
                mine = [b for b in blobs if b.digest == expected_digest] or blobs or [None]
                return Layer(snap.diff_id, snap.size, snap.chain_id, snap, mine[0])
        bw = store.blob_writer(expected_digest, size) if keep_blob else None
        stage = snapshots.staging_dir(store)
        try:
            # the blob writer hashes the compressed bytes when there is one: not twice
            reader = DecompressReader(src, raw_sink=bw, hash_raw=bw is None)
            plain = LayerStream(reader.chunk)
            unpack(plain, os.path.join(stage, "fs"))
            diff_id = plain.digest()
            raw_digest = bw.digest() if bw is not None else reader.raw_digest()
            if expected_digest is not None and raw_digest != expected_digest:
                raise ImageError(f"layer digest mismatch: expected {expected_digest}, "
                                 f"got {raw_digest}")
            if size is not None and reader.raw_size != size:
                raise ImageError(f"layer {expected_digest}: expected {size} bytes, "
                                 f"got {reader.raw_size}")
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise ImageError(f"layer diff id mismatch: expected {expected_diff_id}, "
                                 f"got {diff_id}")
            blob = bw.commit() if bw is not None else None
            snap = snapshots.install(store, os.path.join(stage, "fs"), parent, diff_id,
                                     plain.size, durable)
            lb = None
            if blob is not None:
                lb = LayerBlob(diff_id, blob.digest, reader.compression, blob.size, plain.size,
                               media_type)
                store.add_layer_blob(lb)
            return Layer(diff_id, plain.size, snap.chain_id, snap, lb)
        finally:
            if bw is not None and bw.blob is None:
                bw.abort()
            snapshots.remove_tree(stage)

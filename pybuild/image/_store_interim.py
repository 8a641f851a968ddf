"""INTERIM: the smallest part of the core store the image verbs need (blobs by digest, and
meta.db tables for images, tags and layers, named as in the store helper's meta.py), used only until pybuild.image.store (owner:
store) lands on main; then pybuild.image.images switches to it and this module goes away."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from pybuild.errors import ImageError, StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    config_media_type TEXT NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    parent TEXT
);
CREATE TABLE IF NOT EXISTS repo_digests (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (repository, digest)
);
CREATE TABLE IF NOT EXISTS tags (
    reference TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (
    diff_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    compression TEXT NOT NULL,
    media_type TEXT,
    size INTEGER NOT NULL,
    uncompressed_size INTEGER NOT NULL,
    PRIMARY KEY (diff_id, digest)
);
"""


class Store:
    def __init__(self, root: str):
        self.root = root
        self.blob_dir = os.path.join(root, "blobs", "sha256")
        self.tmp_dir = os.path.join(root, "tmp")
        try:
            os.makedirs(self.blob_dir, exist_ok=True)
            os.makedirs(self.tmp_dir, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store at {root}: {e}") from None
        self.db = sqlite3.connect(os.path.join(root, "meta.db"), timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def blob_path(self, digest: str) -> str:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64:
            raise ImageError(f"unsupported blob digest {digest}")
        return os.path.join(self.blob_dir, hexpart)

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is missing from the store") from None

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            data = f.read()
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ImageError(f"blob {digest} is corrupt: its content does not match its digest")
        return data

    def ingest(self, src: BinaryIO, expected: str | None = None, size: int | None = None) -> tuple[str, int]:
        """Copy a stream into the blob store (temp file, fsync, rename); verify if told what to expect."""
        h = hashlib.sha256()
        n = 0
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    n += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + h.hexdigest()
            if expected is not None and digest != expected:
                raise ImageError(f"digest mismatch: expected {expected}, got {digest}")
            if size is not None and n != size:
                raise ImageError(f"size mismatch for {digest}: expected {size} bytes, got {n} (truncated?)")
            os.rename(tmp, self.blob_path(digest))
            return digest, n
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def put_bytes(self, data: bytes) -> str:
        import io

        return self.ingest(io.BytesIO(data))[0]


def _decompressor(src: BinaryIO, compression: str) -> BinaryIO:
    if compression == "gzip":
        from isal import igzip

        return igzip.IGzipFile(fileobj=src, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(src)  # type: ignore[return-value]
    return src


def sniff_compression(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return "none"


class _Hashing:
    """A reader that hashes and counts what passes through it."""

    def __init__(self, src: BinaryIO):
        self.src, self.h, self.n = src, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.h.update(data)
        self.n += len(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


def diff_id_of(path: str, compression: str) -> tuple[str, int]:
    """sha256 and size of a (possibly compressed) layer file's uncompressed tar."""
    import zlib

    with open(path, "rb") as raw:
        try:
            src = _Hashing(_decompressor(raw, compression))
            while src.read(1 << 20):
                pass
        except (OSError, EOFError, zlib.error) as e:
            raise ImageError(f"corrupt or truncated layer ({compression}): {e}") from None
        except Exception as e:  # zstandard raises its own error type
            if type(e).__module__.startswith("zstandard"):
                raise ImageError(f"corrupt or truncated layer (zstd): {e}") from None
            raise
    return src.digest, src.n


def ingest_layer(store: Store, path: str) -> tuple[str, str, str, int, int]:
    """Put a layer file into the store as it is if compressed, else gzip it first.
    Returns (diff_id, blob_digest, compression, blob_size, uncompressed_size)."""
    with open(path, "rb") as f:
        compression = sniff_compression(f.read(4))
    diff_id, usize = diff_id_of(path, compression)
    if compression == "none":
        from isal import igzip

        fd, gz = tempfile.mkstemp(dir=store.tmp_dir, prefix="gz-")
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                # mtime=0 and no name: the same tar always gives the same blob
                with igzip.IGzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=1) as z:
                    while chunk := src.read(1 << 20):
                        z.write(chunk)
            with open(gz, "rb") as f:
                digest, size = store.ingest(f)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(gz)
        compression = "gzip"
    else:
        with open(path, "rb") as f:
            digest, size = store.ingest(f)
    return diff_id, digest, compression, size, usize


def open_uncompressed(store: Store, blob_digest: str, compression: str) -> BinaryIO:
    return _decompressor(store.open_blob(blob_digest), compression)

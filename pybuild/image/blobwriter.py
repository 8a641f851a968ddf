"""Writing one blob: to tmp/, hashed and counted as it goes, verified, fsynced, renamed."""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import TYPE_CHECKING

from pybuild.errors import ImageError
from pybuild.image.records import Blob, check_digest

if TYPE_CHECKING:
    from pybuild.image.store import Store


class BlobWriter:
    """A blob being written: hashed and counted as it goes, then verified and renamed."""

    def __init__(self, store: Store, expected: str | None, size: int | None):
        self._store, self.expected, self.expected_size = store, expected, size
        if expected is not None:
            check_digest(expected)
        import tempfile  # loaded when something is written: not on a cached build

        fd, self.tmp_path = tempfile.mkstemp(prefix="blob-", dir=store.tmp_dir)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._hash = hashlib.sha256()
        self.size = 0
        self.blob: Blob | None = None

    def write(self, data) -> int:
        self._hash.update(data)
        self._file.write(data)
        self.size += len(data)
        return len(data)

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, synced: bool = False) -> Blob:
        """Verify digest and size, fsync, rename into blobs/sha256/. Idempotent. synced=True:
        the caller flushed the store's file system (syncfs) after the last write, so the
        bytes are on disk already and only the rename and its directory are synced."""
        if self.blob is not None:
            return self.blob
        digest = self.digest()
        try:
            if self.expected is not None and digest != self.expected:
                raise ImageError(f"digest mismatch: expected {self.expected}, got {digest}")
            if self.expected_size is not None and self.size != self.expected_size:
                raise ImageError(f"size mismatch for {digest}: expected {self.expected_size} "
                                 f"bytes, got {self.size}")
            if not synced:
                os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self.tmp_path, 0o444)
            os.rename(self.tmp_path, self._store.blob_path(digest))
            _fsync_dir(self._store.blob_dir)
        except BaseException:
            self.abort()
            raise
        self.blob = Blob(digest, self.size)
        return self.blob

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp_path)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.blob is None:
            self.abort()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

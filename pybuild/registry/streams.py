"""Readers for the one streaming pass of a pull: bytes from the network are teed into the
blob being written, decompressed, and hashed (the diff id) while the layer is unpacked."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from typing import BinaryIO

from pybuild.errors import ImageError


class ChunkReader(io.RawIOBase):
    """A raw reader over an iterator of byte chunks; each chunk is also handed to `sink`
    (the blob writer) as it is read, so the blob is written in the same pass."""

    def __init__(self, chunks: Iterator[bytes], sink: Callable[[bytes], object] | None = None):
        self._chunks = chunks
        self._sink = sink
        self._buf = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                if self._sink is not None:
                    self._sink(chunk)
                self._buf = memoryview(chunk)
                return True
        self._eof = True
        return False

    def readinto(self, b) -> int:
        if not self._buf and (self._eof or not self._next()):
            return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def drain(self) -> None:
        """Read to the end: the source's own checks (size, digest) run when it finishes."""
        self._buf = memoryview(b"")
        while not self._eof and self._next():
            self._buf = memoryview(b"")


class HashingReader(io.RawIOBase):
    """Counts and hashes what passes through: the diff id of an uncompressed layer."""

    def __init__(self, src: BinaryIO):
        self._src = src
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._src.read(len(b))
        n = len(data)
        b[:n] = data
        self._hash.update(data)
        self.size += n
        return n

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def decompressed(src: BinaryIO, compression: str) -> BinaryIO:
    if compression == "gzip":
        from isal import igzip

        return igzip.IGzipFile(fileobj=src, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)  # type: ignore[return-value]
    if compression == "none":
        return src
    raise ImageError(f"unknown layer compression {compression!r}")

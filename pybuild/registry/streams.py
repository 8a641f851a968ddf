"""The network side of a pull's one streaming pass: the client's verified chunk iterator as
a readable stream for the store's decompressor and unpacker."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator


class ChunkReader(io.RawIOBase):
    """A reader over an iterator of byte chunks; each chunk is also handed to `sink` (if
    any) as it is first read. read() hands out the chunks themselves when they fit, so a
    reader asking for big blocks costs no extra copy."""

    def __init__(self, chunks: Iterator[bytes], sink: Callable[[bytes], object] | None = None):
        self._chunks = chunks
        self._sink = sink
        self._chunk = b""
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                if self._sink is not None:
                    self._sink(chunk)
                self._chunk, self._pos = bytes(chunk), 0
                return True
        self._eof = True
        self._chunk, self._pos = b"", 0
        return False

    def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._chunk) and (self._eof or not self._next()):
            return b""
        if n is None or n < 0:
            n = len(self._chunk)
        if self._pos == 0 and n >= len(self._chunk):
            out, self._chunk = self._chunk, b""
            return out
        out = self._chunk[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()  # a generator: ends its HTTP response
        super().close()

    def drain(self) -> None:
        """Read to the end: the source's own checks (size, digest) run when it finishes."""
        while self.read(1 << 20):
            pass

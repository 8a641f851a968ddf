"""A layer's plain tar as a forward-only stream for the unpacker: chunks come from a
decompressor (or any reader), are hashed once as they are produced (the diff id), and a
regular file's bytes go from those chunks straight to its file descriptor, without the
copies tarfile's own stream mode makes."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable

CHUNK = 1 << 20


class LayerStream(io.RawIOBase):
    """Forward-only, seekable only forwards (tarfile's random-access mode needs no more on
    a well-formed tar). `digest()`/`size` cover every byte produced, read or skipped."""

    def __init__(self, next_chunk: Callable[[], bytes], hash: bool = True):
        self._next_chunk = next_chunk
        self._hash = hashlib.sha256() if hash else None
        self.size = 0         # plain bytes produced so far
        self._buf = b""       # the current chunk; _pos is the read offset into it
        self._pos = 0
        self._eof = False

    @classmethod
    def over(cls, reader, hash: bool = True) -> LayerStream:
        """A stream over any readable (read(n) -> bytes)."""
        return cls(lambda: reader.read(CHUNK), hash)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """The next non-empty chunk into _buf; False at the end."""
        while not self._eof:
            data = self._next_chunk()
            if not data:
                self._eof = True
                break
            if self._hash is not None:
                self._hash.update(data)
            self.size += len(data)
            self._buf, self._pos = data, 0
            return True
        self._buf, self._pos = b"", 0
        return False

    def tell(self) -> int:
        return self.size - (len(self._buf) - self._pos)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._pos:]]
            while self._fill():
                parts.append(self._buf)
            self._buf, self._pos = b"", 0
            return b"".join(parts)
        avail = len(self._buf) - self._pos
        if avail >= n:  # the usual case: a 512-byte header inside a big chunk
            out = self._buf[self._pos:self._pos + n]
            self._pos += n
            return out
        parts = [self._buf[self._pos:]] if avail else []
        want = n - avail
        while want > 0 and self._fill():
            take = min(want, len(self._buf))
            parts.append(self._buf[:take] if take < len(self._buf) else self._buf)
            self._pos = take
            want -= take
        return b"".join(parts)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            pos += self.tell()
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a layer stream seeks only from its start")
        skip = pos - self.tell()
        if skip < 0:
            raise io.UnsupportedOperation("a layer stream cannot seek backwards")
        while skip > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    break  # past the end: the next read says so (returns b"")
                continue
            step = min(skip, avail)
            self._pos += step
            skip -= step
        return self.tell()

    def copy_to(self, fd: int, n: int) -> int:
        """Write the next `n` bytes to `fd` straight from the chunks; returns how many there
        were (fewer only at the end of the stream)."""
        left = n
        while left > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    break
                continue
            take = min(left, avail)
            view = memoryview(self._buf)[self._pos:self._pos + take]
            while view:
                view = view[os.write(fd, view):]
            self._pos += take
            left -= take
        return n - left

    def drain(self) -> None:
        """Produce (and hash) everything left: the tar's trailing blocks and padding."""
        self._buf, self._pos = b"", 0
        while self._fill():
            self._buf, self._pos = b"", 0

    def digest(self) -> str:
        if self._hash is None:
            raise ValueError("this layer stream does not hash")
        return "sha256:" + self._hash.hexdigest()

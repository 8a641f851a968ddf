"""The network side of a pull's one streaming pass: the client's verified chunk iterator as
a readable stream for the store's decompressor and unpacker, read in place or fetched ahead
by a thread of its own."""

from __future__ import annotations

import io
import queue
import threading
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


_END = object()


class PrefetchReader(ChunkReader):
    """A ChunkReader whose chunks are fetched by a thread of its own: the network read,
    `sink` (the blob writer: sha256 and file write, both without the GIL) run there while
    the reader's thread decompresses and unpacks. At most `depth` chunks wait in between.
    An error in the fetching thread is raised by the read that reaches it; close() stops
    the thread (ending the HTTP response there) and waits for it, so nothing calls `sink`
    once close() returned."""

    def __init__(self, chunks: Iterator[bytes], sink: Callable[[bytes], object] | None = None,
                 depth: int = 16, name: str = "fetch"):
        super().__init__(iter(()))
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fetch, args=(chunks, sink), name=name,
                                        daemon=True)
        self._thread.start()
        self._chunks = self._receive()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _fetch(self, chunks: Iterator[bytes], sink) -> None:
        try:
            for chunk in chunks:
                if self._stop.is_set():
                    break
                if sink is not None:
                    sink(chunk)
                if not self._put(chunk):
                    break
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread
            self._put(e)
        else:
            self._put(_END)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a generator: ends its HTTP response, in the thread that runs it

    def _receive(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        super().close()

"""Layer compression: gzip (isal's igzip, ~10x zlib here) and zstd, detection by magic, and
the sinks that hash a plain tar and its compressed blob in one streaming pass."""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import BinaryIO

from pybuild.errors import ImageError

COMPRESSIONS = ("none", "gzip", "zstd")
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20
OUT_MAX = 128 << 10  # most plain bytes one gzip decompress call returns


def detect(head: bytes) -> str:
    """Compression of a layer blob from its first bytes: gzip, zstd or none."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def check(compression: str) -> str:
    if compression not in COMPRESSIONS:
        raise ImageError(f"unknown compression {compression!r} (use gzip, zstd or none)")
    return compression


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def compressor(compression: str, level: int | None = None):
    """An object with compress(bytes) -> bytes and flush() -> bytes."""
    if check(compression) == "gzip":
        from isal import isal_zlib

        # isal level 1: as fast as level 0 here and compresses like zlib -1
        return isal_zlib.compressobj(1 if level is None else level, isal_zlib.DEFLATED, 31)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3 if level is None else level).compressobj()
    return _Identity()


class DecompressReader:
    """A readable over a compressed stream (gzip members / zstd frames may be concatenated);
    `raw_hash` and `raw_size` cover the compressed bytes read, hashed as they pass."""

    def __init__(self, src: BinaryIO, compression: str | None = None, raw_sink=None,
                 hash_raw: bool = True):
        self._src = src
        # hash_raw=False: the raw sink (a BlobWriter) hashes the compressed bytes already
        self.raw_hash = hashlib.sha256() if hash_raw else None
        self.raw_size = 0
        self._raw_sink = raw_sink
        head = self._read_raw()
        self.compression = detect(head) if compression is None else check(compression)
        self._pending = head
        self._buf = b""
        self._eof = False
        self._dec = self._new_decoder()

    def _read_raw(self) -> bytes:
        data = self._src.read(CHUNK)
        if data:
            if self.raw_hash is not None:
                self.raw_hash.update(data)
            self.raw_size += len(data)
            if self._raw_sink is not None:
                self._raw_sink.write(data)
        return data

    def _new_decoder(self):
        if self.compression == "gzip":
            from isal import igzip_lib

            return igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP)
        if self.compression == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj()
        return None

    def chunk(self) -> bytes:
        """The next piece of plain output as the decompressor made it; b"" at the end."""
        if self._pos < len(self._buf):
            out = self._buf[self._pos:]
            self._buf, self._pos = b"", 0
            return out
        return b"" if self._eof else self._fill()

    def _fill(self) -> bytes:
        gzip = self.compression == "gzip"
        while True:
            if gzip and not self._dec.needs_input:
                data = b""  # output held back by the cap below: no new input needed yet
            else:
                data = self._pending or self._read_raw()
                self._pending = b""
                if self._dec is None:
                    if not data:
                        self._eof = True
                    return data
                if not data:
                    if not self._dec.eof and self._started:
                        raise ImageError(f"truncated {self.compression} stream")
                    self._eof = True
                    return b""
            self._started = True
            try:
                # gzip output comes in pieces of at most OUT_MAX: fresh multi-megabyte
                # buffers per call cost a page fault per 4 KiB (measured: 3.6x slower)
                out = (self._dec.decompress(data, OUT_MAX) if gzip
                       else self._dec.decompress(data))
            except Exception as e:  # noqa: BLE001 - IsalError / ZstdError: corrupt input
                raise ImageError(f"corrupt {self.compression} stream: {e}") from None
            if self._dec.eof:
                rest = self._dec.unused_data
                self._dec = self._new_decoder()
                self._started = False
                self._pending = rest
            if out:
                return out

    _started = False

    _pos = 0  # read offset into _buf: slicing off the front would copy it on every read

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._pos:]]
            self._buf, self._pos = b"", 0
            while not self._eof:
                parts.append(self._fill())
            return b"".join(parts)
        avail = len(self._buf) - self._pos
        if avail >= n:
            out = self._buf[self._pos:self._pos + n]
            self._pos += n
            return out
        parts = [self._buf[self._pos:]]
        while avail < n and not self._eof:
            data = self._fill()
            parts.append(data)
            avail += len(data)
        joined = b"".join(parts)
        self._buf, self._pos = joined, min(n, len(joined))
        return joined[:n]

    def raw_digest(self) -> str:
        if self.raw_hash is None:
            raise ValueError("this reader does not hash its raw bytes")
        return "sha256:" + self.raw_hash.hexdigest()

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> DecompressReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HashSink:
    """The lazy path: hash and count a plain tar, keep nothing."""

    def __init__(self):
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data) -> None:
        self.hash.update(data)
        self.size += len(data)

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _Flushable:
    """The file-like face isal's threaded writer wants on a plain sink."""

    def __init__(self, out):
        self._out = out

    def write(self, data) -> int:
        self._out.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class CompressSink:
    """Plain tar in -> diff id (sha256 of the plain bytes) here, while another thread
    compresses into `out` (a BlobWriter, which hashes the compressed bytes): the two halves
    run on two cores. gzip uses isal's threaded writer (its compressobj keeps the GIL, which
    starves the tar walker: measured 79 vs 230 MB/s); zstandard releases the GIL itself."""

    def __init__(self, out, compression: str, level: int | None = None):
        self.plain = HashSink()
        self._out = out
        self._error: BaseException | None = None
        self._gzip = None
        self._thread = None
        if check(compression) == "gzip":
            from isal import igzip_threaded

            # mtime 0 and a fixed header: the same bytes every time
            self._gzip = igzip_threaded.open(_Flushable(out), "wb", compresslevel=1 if level is None
                                             else level, threads=1, block_size=CHUNK)
            return
        self._comp = compressor(compression, level)
        self._q: queue.Queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="compress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (data := self._q.get()) is not None:
                if self._error is None:
                    out = self._comp.compress(data)
                    if out:
                        self._out.write(out)
            if self._error is None:
                self._out.write(self._comp.flush())
        except BaseException as e:  # noqa: BLE001 - re-raised in the writing thread
            self._error = e
            while self._q.get() is not None:
                pass

    def write(self, data) -> None:
        if self._error is not None:
            raise self._error
        data = bytes(data)
        self.plain.write(data)
        if self._gzip is not None:
            self._gzip.write(data)
        else:
            self._q.put(data)

    def close(self) -> None:
        """Finish the compressed stream (raises what the worker hit)."""
        if self._gzip is not None:
            gz, self._gzip = self._gzip, None
            gz.close()
        if self._thread is not None and self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


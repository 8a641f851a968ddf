"""Deterministic tar of a layer dir: overlay upper dir (or snapshot) -> OCI layer tar.

Entries are walked depth-first with names sorted per dir (as Go's filepath.Walk), owners
are numeric only, atime/ctime are left out, PAX records appear only when ustar cannot hold
a value (long names, xattrs, huge sizes or ids), and with `source_date_epoch` every mtime
is clamped to it. Overlay whiteouts (0/0 char devices) become `.wh.<name>`, an opaque dir
(trusted.overlay.opaque=y) gets a `.wh..wh..opq` entry. Hard links within the layer, symlinks,
devices, fifos, xattrs (security.capability included) and setuid bits are kept; a sparse
file is stored with its holes as zeros. Headers are written by hand: about twice the
speed of the stdlib tarfile writer (bench/layer.py)."""

from __future__ import annotations

import os
import stat

from pybuild.errors import ImageError

WHITEOUT_PREFIX = b".wh."
OPAQUE_MARKER = b".wh..wh..opq"
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_FLUSH = 1 << 20
_MAX_OCTAL = {8: 0o7777777, 12: 0o77777777777}


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: bytes) -> bool:
    for name in (b"trusted.overlay.opaque", b"user.overlay.opaque"):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _xattrs(path: bytes) -> list[tuple[str, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if name.startswith(OVERLAY_XATTR_PREFIXES):
            continue
        try:
            out.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return out


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


def _num(value: int, width: int) -> bytes:
    if 0 <= value <= _MAX_OCTAL.get(width, 8 ** (width - 1) - 1):
        return b"%0*o\0" % (width - 1, value)
    # GNU base-256 for what ustar octal cannot hold (and PAX has no key for)
    return bytes([0x80]) + value.to_bytes(width - 1, "big", signed=False)


def _header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: bytes,
            linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
            prefix: bytes = b"") -> bytes:
    h = b"".join((
        name.ljust(100, b"\0"), _num(mode, 8), _num(uid, 8), _num(gid, 8), _num(size, 12),
        _num(mtime, 12), b"        ", typeflag, linkname.ljust(100, b"\0"), b"ustar\x0000",
        b"\0" * 64, _num(devmajor, 8), _num(devminor, 8), prefix.ljust(155, b"\0"), b"\0" * 12))
    chk = b"%06o\0 " % sum(h)
    return h[:148] + chk + h[156:]


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """ustar (prefix, name) for a path, or None if it needs a PAX path record."""
    if len(name) <= 100:
        return b"", name
    if len(name) > 256:
        return None
    i = name.find(b"/", len(name) - 101)
    while 0 < i:
        if i <= 155 and len(name) - i - 1 <= 100 and len(name) - i - 1 > 0:
            return name[:i], name[i + 1:]
        i = name.find(b"/", i + 1)
    return None


class TarWriter:
    """Writes one tar stream to `sink.write(bytes)` in ~1 MiB pieces."""

    def __init__(self, sink, source_date_epoch: int | None = None):
        self.sink = sink
        self.epoch = source_date_epoch
        self.buf = bytearray()
        self.size = 0

    def _emit(self, data) -> None:
        self.buf += data
        if len(self.buf) >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.size += len(self.buf)
            self.sink.write(bytes(self.buf))
            self.buf = bytearray()

    def entry(self, name: bytes, st: os.stat_result | None, typeflag: bytes, size: int = 0,
              linkname: bytes = b"", xattrs: list[tuple[str, bytes]] = (),
              mode: int | None = None) -> None:
        uid = st.st_uid if st else 0
        gid = st.st_gid if st else 0
        mtime = int(st.st_mtime) if st else 0
        if self.epoch is not None and mtime > self.epoch:
            mtime = self.epoch
        if mode is None:
            mode = stat.S_IMODE(st.st_mode) if st else 0o644
        pax: list[bytes] = []
        split = _split_name(name)
        if split is None:
            pax.append(_pax_record(b"path", name))
            split = (b"", name[:100])
        if len(linkname) > 100:
            pax.append(_pax_record(b"linkpath", linkname))
            linkname = linkname[:100]
        if size > _MAX_OCTAL[12]:
            pax.append(_pax_record(b"size", b"%d" % size))
        for key, val in (("uid", uid), ("gid", gid)):
            if val > _MAX_OCTAL[8]:
                pax.append(_pax_record(key.encode(), b"%d" % val))
        if mtime < 0:
            pax.append(_pax_record(b"mtime", b"%d" % mtime))
            mtime = 0
        for key, value in xattrs:
            pax.append(_pax_record(b"SCHILY.xattr." + key.encode(), value))
        if pax:
            body = b"".join(pax)
            self._emit(_header(b"PaxHeaders/" + split[1][:89], 0o644, 0, 0, len(body), mtime,
                               b"x"))
            self._emit(body + b"\0" * (-len(body) % 512))
        dev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if typeflag in (b"3", b"4") else (0, 0)
        self._emit(_header(split[1], mode, min(uid, _MAX_OCTAL[8]), min(gid, _MAX_OCTAL[8]),
                           min(size, _MAX_OCTAL[12]), mtime, typeflag, linkname, *dev,
                           prefix=split[0]))

    def file_content(self, path: bytes, size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            left = size
            while left > 0:
                chunk = os.read(fd, min(left, _FLUSH))
                if not chunk:
                    raise ImageError(f"{os.fsdecode(path)}: file shrank while being archived")
                left -= len(chunk)
                if len(chunk) >= _FLUSH:
                    self.flush()
                    self.size += len(chunk)
                    self.sink.write(chunk)
                else:
                    self._emit(chunk)
        finally:
            os.close(fd)
        self._emit(b"\0" * (-size % 512))

    def close(self) -> int:
        self._emit(b"\0" * 1024)
        self.flush()
        return self.size


def write_layer_tar(root: str, sink, source_date_epoch: int | None = None) -> int:
    """Tar the layer dir `root` (overlay form) into `sink`; return the tar's size."""
    w = TarWriter(sink, source_date_epoch)
    links: dict[tuple[int, int], bytes] = {}
    base = os.fsencode(root)
    try:
        _walk(w, base, b"", links)
    except FileNotFoundError as e:
        raise ImageError(f"{e.filename}: vanished while the layer was archived") from None
    return w.close()


def _walk(w: TarWriter, base: bytes, rel: bytes, links: dict) -> None:
    path = base + b"/" + rel if rel else base
    with os.scandir(path) as it:
        names = sorted(e.name for e in it)
    for name in names:
        r = rel + b"/" + name if rel else name
        full = base + b"/" + r
        st = os.lstat(full)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            w.entry(r + b"/", st, b"5", xattrs=_xattrs(full))
            if _is_opaque(full):
                w.entry(r + b"/" + OPAQUE_MARKER, st, b"0", mode=0o644)
            _walk(w, base, r, links)
        elif stat.S_ISREG(mode):
            if st.st_nlink > 1:
                first = links.setdefault((st.st_dev, st.st_ino), r)
                if first != r:
                    w.entry(r, st, b"1", linkname=first, xattrs=_xattrs(full))
                    continue
            w.entry(r, st, b"0", size=st.st_size, xattrs=_xattrs(full))
            w.file_content(full, st.st_size)
        elif stat.S_ISLNK(mode):
            w.entry(r, st, b"2", linkname=os.readlink(full), xattrs=_xattrs(full))
        elif _is_whiteout(st):
            wo = (rel + b"/" if rel else b"") + WHITEOUT_PREFIX + name
            w.entry(wo, st, b"0", mode=stat.S_IMODE(mode) or 0o644)
        elif stat.S_ISCHR(mode):
            w.entry(r, st, b"3", xattrs=_xattrs(full))
        elif stat.S_ISBLK(mode):
            w.entry(r, st, b"4", xattrs=_xattrs(full))
        elif stat.S_ISFIFO(mode):
            w.entry(r, st, b"6", xattrs=_xattrs(full))
        # sockets cannot be archived; Docker skips them too

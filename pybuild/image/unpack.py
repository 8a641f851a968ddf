"""Unpack one layer tar into an empty dir in overlay form, confined to that dir.

`.wh.<name>` entries become 0/0 char devices and `.wh..wh..opq` the trusted.overlay.opaque
xattr, so the dir is directly an overlay lower dir. Safety: `..` components are refused,
absolute names are taken relative to the root, no path is ever resolved through a symlink
(an entry below a symlink is refused), hard links must point at an entry inside this layer,
overlay xattrs in the tar are ignored (they would steer overlayfs). Nothing outside the
root is created, changed or followed."""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from typing import BinaryIO

from pybuild.errors import ImageError
from pybuild.image.tarstream import LayerStream
from pybuild.image.tarwriter import OPAQUE_MARKER, OVERLAY_XATTR_PREFIXES, WHITEOUT_PREFIX

_CHUNK = 1 << 20


def _parts(name: str, what: str = "entry") -> list[bytes]:
    raw = os.fsencode(name)
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise ImageError(f"layer {what} {name!r} escapes the layer root (has '..')")
    if b"\0" in raw:
        raise ImageError(f"layer {what} {name!r} contains a NUL byte")
    return parts


class Unpacker:
    def __init__(self, root: str):
        self.root = os.fsencode(os.path.abspath(root))
        self.dirs: set[bytes] = {b""}   # rel paths known to be real dirs (not symlinks)
        self.deferred: dict[bytes, tuple[int, float]] = {}  # dirs: mode/mtime at the end
        self.as_root = os.geteuid() == 0

    def full(self, rel: bytes) -> bytes:
        return self.root + b"/" + rel if rel else self.root

    def ensure_dir(self, parts: list[bytes], name: str, create: bool = True) -> bytes:
        rel = b""
        for p in parts:
            rel = rel + b"/" + p if rel else p
            if rel in self.dirs:
                continue
            full = self.full(rel)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                if not create:
                    raise ImageError(f"layer entry {name!r}: {os.fsdecode(rel)} does not exist "
                                     "in this layer") from None
                os.mkdir(full, 0o755)
                self.dirs.add(rel)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise ImageError(f"layer entry {name!r} goes through the symlink "
                                 f"{os.fsdecode(rel)!r}: refused")
            if not stat.S_ISDIR(st.st_mode):
                raise ImageError(f"layer entry {name!r}: {os.fsdecode(rel)!r} is not a directory")
            self.dirs.add(rel)
        return rel

    def clear(self, rel: bytes, keep_dir: bool) -> None:
        """Make room for a new entry at rel (a later entry replaces an earlier one)."""
        full = self.full(rel)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            from pybuild.image.snapshots import remove_tree

            remove_tree(full)
            self.dirs = {d for d in self.dirs if d != rel and not d.startswith(rel + b"/")}
        else:
            os.unlink(full)

    def entry(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        parts = _parts(ti.name)
        if not parts:
            return  # the root itself ("./"): the snapshot dir keeps its own metadata
        parent = self.ensure_dir(parts[:-1], ti.name)
        leaf = parts[-1]
        rel = parent + b"/" + leaf if parent else leaf
        full = self.full(rel)
        if leaf == OPAQUE_MARKER:
            os.setxattr(self.full(parent), "trusted.overlay.opaque", b"y")
            return
        if leaf.startswith(WHITEOUT_PREFIX):
            target = leaf[len(WHITEOUT_PREFIX):]
            if target in (b"", b".", b".."):
                raise ImageError(f"layer entry {ti.name!r}: invalid whiteout")
            trel = parent + b"/" + target if parent else target
            self.clear(trel, keep_dir=False)
            tfull = self.full(trel)
            os.mknod(tfull, stat.S_IFCHR | 0o000, 0)
            if self.as_root:
                os.chown(tfull, ti.uid, ti.gid, follow_symlinks=False)
            os.utime(tfull, (ti.mtime, ti.mtime), follow_symlinks=False)
            return
        if ti.isdir():
            self.clear(rel, keep_dir=True)
            if not os.path.isdir(full):
                os.mkdir(full, 0o700)
            self.dirs.add(rel)
        else:
            self.clear(rel, keep_dir=False)
            if ti.isreg():
                self.write_file(tf, ti, full)
            elif ti.issym():
                os.symlink(os.fsencode(ti.linkname), full)
            elif ti.islnk():
                tparts = _parts(ti.linkname, "hard link target")
                if not tparts:
                    raise ImageError(f"layer entry {ti.name!r}: hard link to the layer root")
                tparent = self.ensure_dir(tparts[:-1], ti.name, create=False)
                tfull = self.full(tparent + b"/" + tparts[-1] if tparent else tparts[-1])
                try:
                    tst = os.lstat(tfull)
                except FileNotFoundError:
                    raise ImageError(f"layer entry {ti.name!r}: hard link target "
                                     f"{ti.linkname!r} is not in this layer") from None
                if stat.S_ISDIR(tst.st_mode):
                    raise ImageError(f"layer entry {ti.name!r}: hard link to a directory")
                os.link(tfull, full, follow_symlinks=False)
                return  # a hard link shares its target's metadata
            elif ti.ischr() or ti.isblk() or ti.isfifo():
                kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
                try:
                    os.mknod(full, kind | 0o600, os.makedev(ti.devmajor, ti.devminor))
                except PermissionError:
                    raise ImageError(f"layer entry {ti.name!r}: creating a device node is not "
                                     "permitted here (needs root outside a user namespace)") from None
            else:
                raise ImageError(f"layer entry {ti.name!r}: unsupported tar type {ti.type!r}")
        self.metadata(ti, full)

    def write_file(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, full: bytes) -> None:
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            stream = tf.fileobj
            if ti.sparse is None and isinstance(stream, LayerStream) and \
                    stream.tell() == ti.offset_data:
                # the file's bytes are next in the stream: from its chunks to the file
                if ti.size < 0 or stream.copy_to(fd, ti.size) != ti.size:
                    raise ImageError(f"layer entry {ti.name!r}: truncated tar")
                return
            src = tf.extractfile(ti)  # a sparse file: tarfile rebuilds its holes
            left = ti.size
            while left > 0:
                chunk = src.read(min(left, _CHUNK))
                if not chunk:
                    raise ImageError(f"layer entry {ti.name!r}: truncated tar")
                _write_all(fd, chunk)
                left -= len(chunk)
        finally:
            os.close(fd)

    def metadata(self, ti: tarfile.TarInfo, full: bytes) -> None:
        is_link = ti.issym()
        if self.as_root:
            os.chown(full, ti.uid, ti.gid, follow_symlinks=False)
        # after chown, which clears setuid bits and security.capability
        for key, value in sorted(ti.pax_headers.items()):
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if name.startswith(OVERLAY_XATTR_PREFIXES):
                continue
            os.setxattr(full, name, value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False)
        mode = ti.mode & 0o7777
        if ti.isdir():
            self.deferred[full] = (mode, ti.mtime)  # a repeated dir entry: the last one wins
            return
        if not is_link:
            os.chmod(full, mode)
        os.utime(full, (ti.mtime, ti.mtime), follow_symlinks=False)

    def finish(self) -> None:
        # children changed their dirs' mtimes; a 0555 dir would have blocked them: set last
        for full, (mode, mtime) in reversed(list(self.deferred.items())):
            os.chmod(full, mode)
            os.utime(full, (mtime, mtime), follow_symlinks=False)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def unpack(stream: BinaryIO | LayerStream, dest: str) -> None:
    """Unpack a plain tar stream into the (empty) dir `dest`; read `stream` to its end.
    A LayerStream (which hashes the diff id as it goes) is read without extra copies."""
    u = Unpacker(dest)
    if not isinstance(stream, LayerStream):
        stream = LayerStream.over(stream, hash=False)
    try:
        # random-access mode over a forward-only stream: tarfile only ever seeks forwards
        # here (past a member's data), and a regular file's data is read by write_file
        with tarfile.TarFile(fileobj=stream, mode="r", encoding="utf-8",
                             errors="surrogateescape") as tf:
            for ti in tf:
                name = ti.name
                try:
                    u.entry(tf, ti)
                except OSError as e:
                    if e.errno == errno.ENAMETOOLONG:
                        raise ImageError(f"layer entry {name[:80]!r}...: name too long") from None
                    raise ImageError(f"layer entry {name!r}: {e.strerror}") from None
        u.finish()
    except tarfile.TarError as e:
        raise ImageError(f"invalid layer tar: {e}") from None
    except io.UnsupportedOperation as e:  # a tar that would need seeking backwards
        raise ImageError(f"invalid layer tar: {e}") from None
    stream.drain()  # the tar's trailing padding belongs to the diff id too

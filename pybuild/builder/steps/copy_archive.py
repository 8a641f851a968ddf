"""ADD's archive extraction: a local file that is a tar (plain, gzip, bzip2, xz or zstd,
told by content as Docker does, never by name) is unpacked into the destination directory.

Confined like Docker's chrootarchive.Untar: the archive's root is the destination dir and
paths resolve as if it were `/` (secure_join), names that climb out of it with `..` are
refused, as are relative symlinks pointing out and hard links to outside; an existing entry
is replaced unless both are directories. Owners come from the tar (or --chown), modes and
mtimes too; `.wh.` names are ordinary files here (this is not a layer)."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from typing import IO, TYPE_CHECKING

from pybuild.builder.steps.copy_sources import Item
from pybuild.errors import BuildError
from pybuild.image.tarwriter import OVERLAY_XATTR_PREFIXES
from pybuild.runtime.mounts import secure_join

if TYPE_CHECKING:
    from pybuild.builder.steps.copy_apply import _Writer

__all__ = ["extract", "is_archive", "mark_archives"]

_HEAD = 64 << 10
_CHUNK = 1 << 20


def _compression(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "none"


def _head_plain(path: str) -> bytes:
    """The first bytes of the file, decompressed if it is compressed ("" if that fails)."""
    with open(path, "rb") as f:
        raw = f.read(_HEAD)
        kind = _compression(raw)
        try:
            if kind == "gzip":
                return zlib.decompressobj(wbits=47).decompress(raw, 1024)
            if kind == "bzip2":
                return bz2.BZ2Decompressor().decompress(raw, 1024)
            if kind == "xz":
                return lzma.LZMADecompressor().decompress(raw, 1024)
            if kind == "zstd":
                import zstandard

                f.seek(0)
                with zstandard.ZstdDecompressor().stream_reader(f) as r:
                    return r.read(1024)
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
            return b""
        except Exception as e:  # zstandard.ZstdError is not an OSError
            if type(e).__name__ == "ZstdError":
                return b""
            raise
    return raw


def is_archive(path: str) -> bool:
    """Docker's isArchivePath: a regular file whose (decompressed) start is a tar header."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        head = _head_plain(path)
    except OSError:
        return False
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def mark_archives(items: list[Item], urls_too: bool) -> list[Item]:
    """ADD: local files that are archives become `archive` items; URL items are marked to
    be unpacked only when asked (`ADD --unpack=true`), as BuildKit."""
    out = []
    for item in items:
        if item.url is not None:
            out.append(dataclasses.replace(item, unpack=urls_too))
        elif item.kind == "file" and item.nodes[0].src is not None \
                and is_archive(item.nodes[0].src):
            out.append(dataclasses.replace(item, kind="archive"))
        else:
            out.append(item)
    return out


def _open_plain(path: str) -> IO[bytes]:
    with open(path, "rb") as f:
        kind = _compression(f.read(8))
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True,
                                                          read_across_frames=True)
    return open(path, "rb")


class _Extractor:
    def __init__(self, root: str, writer: _Writer, display: str):
        self.root = root  # a real dir: the archive's `/`
        self.w = writer
        self.display = display
        self.deferred: list[tuple[str, tarfile.TarInfo]] = []

    def fail(self, message: str) -> BuildError:
        return BuildError(f"{self.display}: {message}")

    def clean(self, name: str, what: str = "entry") -> str:
        """The entry's path below the root ("" for the root); refuses a climb out."""
        # Docker cleans the name and joins it to the root: `/../x` is `/x`, `../x` is out
        norm = posixpath.normpath("/" + name)
        if not name.startswith("/"):
            depth = 0
            for p in (p for p in name.split("/") if p not in ("", ".")):
                depth = depth - 1 if p == ".." else depth + 1
                if depth < 0:
                    raise self.fail(f"archive {what} {name!r} is outside of the destination")
        return norm.lstrip("/")

    def parent(self, rel: str) -> str:
        parent = posixpath.dirname(rel)
        real = secure_join(self.root, parent)
        if not os.path.isdir(real):
            if os.path.lexists(real):
                raise self.fail(f"archive entry {rel!r}: {parent} is not a directory")
            self.w.make_real_dirs(real)
        return real

    def entry(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        rel = self.clean(ti.name)
        if not rel:
            return  # the root entry: the destination keeps its own metadata
        full = os.path.join(self.parent(rel), posixpath.basename(rel))
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            st = None
        if st is not None and not (stat.S_ISDIR(st.st_mode) and ti.isdir()):
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(full)
            else:
                os.unlink(full)
        if ti.isdir():
            if st is None or not stat.S_ISDIR(st.st_mode):
                os.mkdir(full, 0o700)
            self.deferred.append((full, ti))
            return
        if ti.isreg():
            src = tf.extractfile(ti)
            assert src is not None
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            try:
                while chunk := src.read(_CHUNK):
                    _write_all(fd, chunk)
            finally:
                os.close(fd)
        elif ti.issym():
            if not ti.linkname.startswith("/") and _climbs_out(rel, ti.linkname):
                raise self.fail(f"invalid symlink {rel!r} -> {ti.linkname!r}: outside of the"
                                " destination")
            os.symlink(ti.linkname, full)
        elif ti.islnk():
            trel = self.clean(ti.linkname, "hard link target")
            tfull = os.path.join(secure_join(self.root, posixpath.dirname(trel)),
                                 posixpath.basename(trel))
            if not trel or not os.path.isfile(tfull) or os.path.islink(tfull):
                raise self.fail(f"archive hard link {rel!r} -> {ti.linkname!r}: no such file"
                                " in the archive")
            os.link(tfull, full, follow_symlinks=False)
            return
        elif ti.ischr() or ti.isblk() or ti.isfifo():
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
            os.mknod(full, kind | 0o600, os.makedev(ti.devmajor, ti.devminor))
        else:
            return  # other types (GNU sparse leftovers, ...) carry nothing to write
        self.metadata(full, ti)

    def metadata(self, full: str, ti: tarfile.TarInfo) -> None:
        owner = self.w.owner
        self.w.chown(full, owner.uid if owner else ti.uid, owner.gid if owner else ti.gid)
        for key, value in sorted(ti.pax_headers.items()):
            name = key[len("SCHILY.xattr."):]
            if key.startswith("SCHILY.xattr.") and not name.startswith(OVERLAY_XATTR_PREFIXES):
                try:  # best effort, as BuildKit's BestEffortXattrs
                    os.setxattr(full, name, value.encode("utf-8", "surrogateescape"),
                                follow_symlinks=False)
                except OSError:
                    pass
        if not ti.issym():
            os.chmod(full, ti.mode & 0o7777)
        os.utime(full, (ti.mtime, ti.mtime), follow_symlinks=False)

    def finish(self) -> None:
        for full, ti in reversed(self.deferred):
            self.metadata(full, ti)


def _climbs_out(rel: str, link: str) -> bool:
    """Whether a relative link at `rel` points above the extraction root (Docker refuses
    those: "invalid symlink")."""
    depth = rel.count("/")  # the link's own dir, in levels below the root
    for part in link.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def extract(item: Item, dest_real: str, writer: _Writer) -> None:
    """Unpack the archive item into the real directory `dest_real`."""
    node = item.nodes[0]
    assert node.src is not None
    ex = _Extractor(dest_real, writer, node.display or item.name)
    try:
        with _open_plain(node.src) as stream, tarfile.open(
                fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as tf:
            for ti in tf:
                ex.entry(tf, ti)
        ex.finish()
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error) as e:
        raise ex.fail(f"invalid archive: {e}") from None

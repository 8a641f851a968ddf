"""Copy a file tree as `cp -a` does, never following a symlink: files, dirs, links, devices,
fifos with their owners, modes, mtimes and xattrs (overlay bookkeeping left out), hard
links inside the tree kept. An existing dir at the destination is merged into; any other
existing entry is replaced. Used by volume copy-up and `pyrun cp`."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from pybuild.image.tarwriter import OVERLAY_XATTR_PREFIXES

_CHUNK = 1 << 20


@dataclass
class _Copy:
    owner: tuple[int, int] | None          # force this uid:gid (cp into a container)
    keep_overlay: bool = False             # keep trusted.overlay.* (copying an upper dir)
    as_root: bool = os.geteuid() == 0
    links: dict = field(default_factory=dict)   # (dev, ino) -> first destination path
    dirs: list = field(default_factory=list)    # (path, stat) whose metadata is set last

    def meta(self, src: str, dst: str, st: os.stat_result) -> None:
        if self.as_root:
            uid, gid = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
            os.chown(dst, uid, gid, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            return
        _copy_xattrs(src, dst, self.keep_overlay)
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid bits
        if not stat.S_ISDIR(st.st_mode):
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def one(self, src: str, dst: str) -> None:
        st = os.lstat(src)
        mode = st.st_mode
        try:
            have = os.lstat(dst)
        except FileNotFoundError:
            have = None
        if have is not None and not (stat.S_ISDIR(have.st_mode) and stat.S_ISDIR(mode)):
            remove(dst)
            have = None
        if stat.S_ISDIR(mode):
            if have is None:
                os.mkdir(dst, 0o700)
            self.dirs.append((src, dst, st))
            with os.scandir(src) as it:
                names = sorted(e.name for e in it)
            for name in names:
                self.one(os.path.join(src, name), os.path.join(dst, name))
            return
        if stat.S_ISREG(mode) and st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), dst)
            if first != dst:
                os.link(first, dst, follow_symlinks=False)
                return
        if stat.S_ISREG(mode):
            copy_file(src, dst)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        else:
            return  # sockets are not copied (as tar and docker cp)
        self.meta(src, dst, st)

    def finish(self) -> None:
        for src, dst, st in reversed(self.dirs):
            self.meta(src, dst, st)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(src: str, dst: str, owner: tuple[int, int] | None = None) -> None:
    """Copy `src` (any kind) to `dst`, whose parent must exist."""
    c = _Copy(owner)
    c.one(src, dst)
    c.finish()


def copy_contents(src_dir: str, dst_dir: str, owner: tuple[int, int] | None = None,
                  root_meta: bool = True, keep_overlay: bool = False) -> None:
    """Copy what is inside `src_dir` into the existing `dst_dir` (and, with `root_meta`,
    give `dst_dir` the owner and mode of `src_dir`, as Docker's volume copy-up does)."""
    c = _Copy(owner, keep_overlay=keep_overlay)
    with os.scandir(src_dir) as it:
        names = sorted(e.name for e in it)
    for name in names:
        c.one(os.path.join(src_dir, name), os.path.join(dst_dir, name))
    c.finish()
    if root_meta:
        st = os.lstat(src_dir)
        c.meta(src_dir, dst_dir, st)


def copy_file(src: str, dst: str) -> None:
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)
        try:
            while True:
                try:
                    n = os.copy_file_range(fin, fout, _CHUNK)
                except OSError:  # across file systems on older kernels, special files
                    while _copy_rw(fin, fout):
                        pass
                    break
                if not n:
                    break
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_rw(fin: int, fout: int) -> int:
    data = os.read(fin, _CHUNK)
    view = memoryview(data)
    while view:
        view = view[os.write(fout, view):]
    return len(data)


def _copy_xattrs(src: str, dst: str, keep_overlay: bool = False) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(OVERLAY_XATTR_PREFIXES) and not keep_overlay:
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError:
            continue  # a file system without that namespace: as cp -a, keep going


def remove(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        from pybuild.image.snapshots import remove_tree

        remove_tree(path)
    else:
        os.unlink(path)

"""Apply one overlay-form snapshot (whiteouts as 0/0 char devices, opaque dirs by xattr) on
top of a plain directory tree, as overlayfs would show it: the image filesystem that
`--output type=local|tar` writes.

Confined: every path written is a parent already known to be a real directory in `dest`
(created or lstat'ed here) plus one name; a symlink in `dest` is replaced, never followed.
Owners (as root), modes, setuid bits, mtimes, xattrs (overlay ones excepted) and hard links
within the snapshot are kept."""

from __future__ import annotations

import os
import stat

from pybuild.errors import ImageError

_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
_CHUNK = 1 << 20


def _is_opaque(path: bytes) -> bool:
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _remove(path: bytes) -> None:
    """Remove whatever is at path (a tree too); nothing there is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        from pybuild.image.snapshots import remove_tree

        remove_tree(os.fsdecode(path))
    else:
        os.unlink(path)


def _clear_dir(path: bytes) -> None:
    with os.scandir(path) as it:
        names = [e.name for e in it]
    for name in names:
        _remove(path + b"/" + name)


class _Applier:
    def __init__(self, src: bytes, dest: bytes):
        self.src = src
        self.dest = dest
        self.as_root = os.geteuid() == 0
        self.links: dict[tuple[int, int], bytes] = {}  # (dev, ino) -> dest path, this snapshot
        self.dirs: list[tuple[bytes, bytes, os.stat_result]] = []  # dir metadata, set last

    def walk(self, rel: bytes) -> None:
        sdir = self.src + b"/" + rel if rel else self.src
        ddir = self.dest + b"/" + rel if rel else self.dest
        with os.scandir(sdir) as it:
            names = sorted(e.name for e in it)
        for name in names:
            r = rel + b"/" + name if rel else name
            self.entry(sdir + b"/" + name, ddir + b"/" + name, r)

    def entry(self, spath: bytes, dpath: bytes, rel: bytes) -> None:
        st = os.lstat(spath)
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:  # a whiteout: the lower entry is gone
            _remove(dpath)
            return
        if stat.S_ISDIR(mode):
            try:
                dst = os.lstat(dpath)
            except FileNotFoundError:
                dst = None
            if dst is not None and stat.S_ISDIR(dst.st_mode):
                if _is_opaque(spath):  # hides everything the lower layers had in it
                    _clear_dir(dpath)
            else:
                if dst is not None:
                    os.unlink(dpath)  # a file or a symlink (never followed) becomes a dir
                os.mkdir(dpath, 0o700)
            self.walk(rel)
            self.dirs.append((spath, dpath, st))
            return
        _remove(dpath)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            os.link(self.links[key], dpath, follow_symlinks=False)
            return
        if stat.S_ISREG(mode):
            self.copy_file(spath, dpath)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(spath), dpath)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(dpath, 0o600)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dpath, (mode & ~0o7777) | 0o600, st.st_rdev)
        elif stat.S_ISSOCK(mode):
            return  # sockets are not part of an image (tar cannot hold them either)
        else:
            raise ImageError(f"{os.fsdecode(rel)}: unsupported file type {oct(stat.S_IFMT(mode))}")
        if st.st_nlink > 1:
            self.links[key] = dpath
        self.metadata(spath, dpath, st)

    def copy_file(self, spath: bytes, dpath: bytes) -> None:
        sfd = os.open(spath, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            dfd = os.open(dpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600)
            try:
                size = os.fstat(sfd).st_size
                done = 0
                while done < size:
                    try:
                        n = os.copy_file_range(sfd, dfd, min(size - done, 1 << 30))
                    except OSError:  # another filesystem type pair: plain copy
                        n = os.sendfile(dfd, sfd, None, min(size - done, _CHUNK))
                    if n == 0:
                        break
                    done += n
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def metadata(self, spath: bytes, dpath: bytes, st: os.stat_result) -> None:
        if self.as_root:
            os.chown(dpath, st.st_uid, st.st_gid, follow_symlinks=False)
        try:
            names = os.listxattr(spath, follow_symlinks=False)
        except OSError:
            names = []
        for name in names:
            if name.startswith(_OVERLAY_XATTRS):
                continue
            try:
                os.setxattr(dpath, name, os.getxattr(spath, name, follow_symlinks=False),
                            follow_symlinks=False)
            except OSError:
                if self.as_root:
                    raise
                # without root, trusted.* and security.* cannot be set: the owner is lost too
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dpath, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid
        os.utime(dpath, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)

    def finish(self) -> None:
        # deepest first: setting a child dir's mtime changes nothing above it, but creating
        # the child changed its parent's, and a 0555 parent would have blocked the child
        for spath, dpath, st in reversed(self.dirs):
            self.metadata(spath, dpath, st)


def apply_snapshot(src: str, dest: str) -> None:
    """Apply the snapshot dir `src` on top of the tree at `dest` (an existing directory)."""
    a = _Applier(os.fsencode(os.path.abspath(src)), os.fsencode(os.path.abspath(dest)))
    try:
        a.walk(b"")
        a.finish()
    except OSError as e:
        where = os.fsdecode(e.filename) if e.filename else src
        raise ImageError(f"writing the image filesystem to {dest}: {where}: {e.strerror}") from None

"""Write a prepared COPY/ADD into a destination root, as BuildKit's file op (fsutil copy)
does, confined to that root: every existing path is resolved with secure_join (links are
followed as if the root were `/`, never out of it), and a new entry replaces whatever is at
its own name without following it."""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from pybuild.builder.steps.copy_perms import Owner, OwnerError, parse_chmod, resolve_chown
from pybuild.builder.steps.copy_sources import Item, Node
from pybuild.errors import BuildError
from pybuild.runtime.mounts import secure_join

if TYPE_CHECKING:
    from pybuild.builder.steps.copy import PreparedCopy

__all__ = ["apply_items"]

_CHUNK = 1 << 20


class _Writer:
    def __init__(self, dest_root: str, owner: Owner | None,
                 chmod: Callable[[int, bool], int] | None):
        self.root = os.path.realpath(dest_root)
        self.owner = owner  # --chown; None: keep each node's own (0:0 from the context)
        self.chmod = chmod
        self.as_root = os.geteuid() == 0
        self.dirs: dict[str, str] = {"/": self.root}  # logical dir -> real dir
        self.deferred: list[tuple[str, Node]] = []  # dir metadata, set after their contents
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) of a source -> first copy

    # --- paths -------------------------------------------------------------------------

    def real(self, logical: str) -> str:
        return secure_join(self.root, logical)

    def real_dir(self, logical: str) -> str:
        found = self.dirs.get(logical)
        if found is None:
            found = self.real(logical)
            if not os.path.isdir(found):
                raise BuildError(f"{logical}: not a directory")
            self.dirs[logical] = found
        return found

    def leaf(self, logical: str) -> str:
        """Where a new entry at `logical` goes: its parent resolved, its own name not."""
        parent, name = posixpath.split(logical)
        return os.path.join(self.real_dir(parent or "/"), name)

    def mkdir_all(self, logical: str) -> str:
        """Create the missing dirs of `logical` (0755, owned by --chown or 0:0, as fsutil's
        MkdirAll for the destination path); returns the real dir."""
        if logical in self.dirs:
            return self.dirs[logical]
        current = "/"
        for part in [p for p in logical.split("/") if p]:
            current = posixpath.join(current, part)
            if current in self.dirs:
                continue
            real = self.real(current)
            try:
                st = os.stat(real)
            except FileNotFoundError:
                self.make_real_dirs(real)
                self.dirs[current] = real
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise BuildError(f"cannot create directory {current}: a file is in the way")
            self.dirs[current] = real
        return self.dirs[logical] if logical != "/" else self.root

    def make_real_dirs(self, real: str) -> None:
        """mkdir -p of a path secure_join gave (inside the root, no links below its first
        missing part: a dangling link's target is created where it points, in the root)."""
        rel = os.path.relpath(real, self.root)
        if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
            raise BuildError(f"{real}: outside the destination root")
        current = self.root
        for part in rel.split("/"):
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                if not os.path.isdir(current) or os.path.islink(current):
                    raise BuildError(f"cannot create directory {current[len(self.root):]}:"
                                     " a file is in the way") from None
                continue
            os.chmod(current, 0o755)  # whatever the umask
            owner = self.owner or Owner(0, 0)
            self.chown(current, owner.uid, owner.gid)

    def is_dir(self, logical: str) -> bool:
        return os.path.isdir(self.real(logical))

    # --- writing -------------------------------------------------------------------------

    def chown(self, real: str, uid: int, gid: int) -> None:
        if self.as_root:
            os.chown(real, uid, gid, follow_symlinks=False)

    def metadata(self, real: str, node: Node) -> None:
        uid, gid = (self.owner.uid, self.owner.gid) if self.owner else (node.uid, node.gid)
        self.chown(real, uid, gid)
        if node.kind != "symlink":
            mode = stat.S_IMODE(node.mode)
            if self.chmod is not None:
                mode = self.chmod(mode, node.kind == "dir")
            os.chmod(real, mode)  # after chown, which clears setuid bits
        os.utime(real, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)

    def clear(self, real: str, logical: str) -> None:
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise BuildError(f"cannot replace directory {logical} with a non-directory")
        os.unlink(real)

    def put_dir(self, logical: str, node: Node, merge_meta: bool) -> str:
        """Make `logical` a dir for `node`. A dir that exists keeps its metadata when
        `merge_meta` is False (the top of a copy, as fsutil's copyDirectoryOnly)."""
        real = self.leaf(logical)
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            os.mkdir(real, 0o700)
            self.dirs[logical] = real
            self.deferred.append((real, node))
            return real
        if stat.S_ISLNK(st.st_mode):
            real = self.real(logical)  # a link to a dir: follow it, inside the root
            if not os.path.lexists(real):  # dangling: make the dir where it points
                self.make_real_dirs(real)
                self.dirs[logical] = real
                self.deferred.append((real, node))
                return real
            if not os.path.isdir(real):
                raise BuildError(f"cannot copy to non-directory: {logical}")
        elif not stat.S_ISDIR(st.st_mode):
            raise BuildError(f"cannot copy to non-directory: {logical}")
        self.dirs[logical] = real
        if merge_meta:
            self.deferred.append((real, node))
        return real

    def put(self, logical: str, node: Node) -> None:
        """Write a non-dir node at `logical`, replacing what is there."""
        real = self.leaf(logical)
        self.clear(real, logical)
        if node.kind == "file":
            if self.copy_file(node, real):
                return  # a hard link to an earlier copy shares its metadata
        elif node.kind == "symlink":
            os.symlink(node.target or "", real)
        else:
            os.mknod(real, node.mode, node.rdev)
        self.metadata(real, node)

    def copy_file(self, node: Node, real: str) -> bool:
        """Copy the bytes; True if made as a hard link to an earlier copy of the same inode
        (hard links inside the source stay hard links, as fsutil's copy keeps them)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        if node.data is not None:
            fd = os.open(real, flags, 0o600)
            try:
                _write_all(fd, node.data)
            finally:
                os.close(fd)
            return False
        assert node.src is not None
        try:
            src = os.open(node.src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            raise BuildError(f"cannot read {node.display}: {e.strerror}") from None
        try:
            st = os.fstat(src)
            if not stat.S_ISREG(st.st_mode):
                raise BuildError(f"{node.display} changed while it was being copied")
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1:
                first = self.links.get(key)
                if first is not None:
                    os.link(first, real, follow_symlinks=False)
                    return True
                self.links[key] = real
            dst = os.open(real, flags, 0o600)
            try:
                _copy_fd(src, dst, st.st_size)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return False

    def tree(self, target: str, item: Item, top_created_meta: bool) -> None:
        """A directory item: its contents into the dir `target`."""
        top, *inner = item.nodes
        self.put_dir(target, top, merge_meta=top_created_meta)
        for node in inner:
            logical = posixpath.join(target, node.rel)
            if node.kind == "dir":
                self.put_dir(logical, node, merge_meta=True)
            else:
                self.put(logical, node)

    def finish(self) -> None:
        for real, node in reversed(self.deferred):
            self.metadata(real, node)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _copy_fd(src: int, dst: int, size: int) -> None:
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(dst, src, offset, min(size - offset, 1 << 30))
            if sent == 0:
                break
            offset += sent
        return
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    os.lseek(src, offset, os.SEEK_SET)
    while chunk := os.read(src, _CHUNK):
        _write_all(dst, chunk)


def apply_items(prepared: PreparedCopy, dest_root: str) -> None:
    from pybuild.builder.steps.copy import dest_path

    request = prepared.request
    try:
        owner = resolve_chown(request.chown, dest_root) if request.chown else None
        chmod = parse_chmod(request.chmod) if request.chmod else None
    except (OwnerError, ValueError) as e:
        raise BuildError(str(e), step=request.where) from None
    dest, dir_hint = dest_path(request)
    w = _Writer(dest_root, owner, chmod)
    try:
        _apply(w, prepared, dest, dir_hint)
        w.finish()
    except BuildError as e:
        if e.step is None:
            raise BuildError(e.message, step=request.where) from None
        raise
    except OSError as e:
        what = f": {e.filename}" if e.filename else ""
        raise BuildError(f"{request.keyword} failed: {e.strerror}{what}",
                         step=request.where) from None


def _apply(w: _Writer, prepared: PreparedCopy, dest: str, dir_hint: bool) -> None:
    request = prepared.request
    items = prepared.items
    # --parents copies paths below dest, which is then always a directory
    into = dir_hint or request.parents or (not request.link and w.is_dir(dest))
    if len(items) > 1 and not into:
        raise BuildError(f"When using {request.keyword} with more than one source file, the"
                         " destination must be a directory and end with a /")
    if dir_hint or request.parents:
        w.mkdir_all(dest)
    elif dest != "/":
        w.mkdir_all(posixpath.dirname(dest))
    for item in items:
        if item.kind == "url":
            from pybuild.builder.steps.copy_url import fetch_item

            item = fetch_item(item, prepared.scratch_dir)
        if item.kind == "archive":
            from pybuild.builder.steps.copy_archive import extract

            w.mkdir_all(dest)
            extract(item, w.real(dest), w)
        elif request.parents:  # below dest at the path it has in the source
            base = dest
            for node in item.prefix:
                base = posixpath.join(dest, node.rel)
                w.put_dir(base, node, merge_meta=False)
            target = base if item.name == "." else posixpath.join(base, item.name)
            if item.kind == "dir":
                w.tree(target, item, top_created_meta=False)
            else:
                w.put(target, item.nodes[0])
        elif item.kind == "dir":
            # an existing dir (or a `/`-ending dest made above) keeps its own metadata;
            # a dir the copy creates takes the source dir's (fsutil's copyDirectoryOnly)
            w.tree(dest, item, top_created_meta=False)
        else:
            target = posixpath.join(dest, item.name) if into else dest
            if target == "/":
                raise BuildError("cannot copy a file onto /")
            w.put(target, item.nodes[0])


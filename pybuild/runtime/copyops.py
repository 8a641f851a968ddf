"""`cp`, `diff` and `export` on a container's file system, with Docker's path rules (a
trailing "/." copies a dir's contents, a dir goes into an existing dir, a file replaces a
file) and tar streams. Container paths are resolved with secure_join inside the container's
root: `..` and symlinks never lead out of it."""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass

from pybuild.errors import ContainerError
from pybuild.image.tarwriter import TarWriter
from pybuild.runtime.mounts import layered_exists, secure_join
from pybuild.runtime.rootview import ContainerView


@dataclass(frozen=True)
class ContainerFs:
    """What cp/diff/export need to know about one container."""

    id: str
    name: str                 # for messages: the reference the user gave
    view: ContainerView
    stubs: tuple[str, ...] = ()


def open_container(root: str, ref: str, with_volumes: bool = True) -> ContainerFs:
    from pybuild.runtime.commit import is_running
    from pybuild.runtime.container import Container
    from pybuild.runtime.containerref import find_container

    c = Container(os.path.join(root, "containers"), find_container(os.path.join(root, "containers"), ref))
    state = c.state()
    mounts = []
    if with_volumes:
        for rec in state.get("mounts") or ():
            if rec.get("Type") in ("volume", "bind") and rec.get("Source"):
                mounts.append({"destination": rec["Destination"], "type": "bind",
                               "source": rec["Source"],
                               "options": ["rbind", "rprivate", *([] if rec.get("RW", True) else ["ro"])]})
    return ContainerFs(c.id, ref, ContainerView(c.rootfs(state["lower_dirs"]), tuple(mounts),
                                                state["pid"] if is_running(state) else None),
                       tuple(state.get("stubs") or ()))


# ---------------------------------------------------------------- paths

def _split(path: str) -> tuple[str, bool, bool]:
    """(normalised path, ends with "/.", ends with "/")."""
    dot = path.endswith("/.") or path == "."
    slash = path.endswith("/") and not dot
    return os.path.normpath(path) if path else ".", dot, slash


def _in_container(root: str, path: str, follow: bool) -> str:
    """`path` inside the container's `root`; the last component is followed only if asked."""
    norm = "/" + os.path.normpath("/" + path).lstrip("/")
    if follow or norm == "/":
        return secure_join(root, norm)
    parent, base = os.path.split(norm)
    return os.path.join(secure_join(root, parent), base)


# ---------------------------------------------------------------- the copy rules

def _place(src: str, src_dot: bool, dest: str, dest_slash: bool, dest_label: str,
           owner) -> None:
    """Docker's cp rules, once both sides are real paths on this host (or in the view)."""
    from pybuild.runtime.fscopy import copy_contents, copy_tree

    st = os.lstat(src)
    is_dir = stat.S_ISDIR(st.st_mode)
    exists = os.path.exists(dest)
    if not is_dir:
        if exists and os.path.isdir(dest):
            copy_tree(src, os.path.join(dest, os.path.basename(src)), owner)
            return
        if dest_slash:
            raise ContainerError(f"destination directory {dest_label} must exist: "
                                 "no such directory")
        _parent_must_exist(dest, dest_label)
        copy_tree(src, dest, owner)
        return
    if exists and not os.path.isdir(dest):
        raise ContainerError(f"cannot copy a directory to a file: {dest_label}")
    if exists:
        if src_dot:
            copy_contents(src, dest, owner)
        else:
            copy_tree(src, os.path.join(dest, os.path.basename(src)), owner)
        return
    _parent_must_exist(dest, dest_label)
    copy_tree(src, dest, owner)


def _parent_must_exist(dest: str, label: str) -> None:
    parent = os.path.dirname(dest.rstrip("/")) or "."
    if not os.path.isdir(parent):
        raise ContainerError(f"destination directory {os.path.dirname(label.rstrip('/')) or '.'}"
                             " does not exist: no such directory")


def content_size(path: str) -> int:
    """Bytes of what a copy of `path` carries (files and link targets), for the CLI's
    "Successfully copied" line."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def copy_out(cfs: ContainerFs, src: str, dest: str, *, follow: bool = False,
             archive: bool = False) -> int:
    """CONTAINER:SRC -> host DEST (a tar on stdout when DEST is "-"); the bytes copied."""
    path, dot, slash = _split(src)
    owner = None if archive else (os.geteuid(), os.getegid())

    def work(root: str) -> int:
        full = _in_container(root, path, follow or dot or slash)
        if not os.path.lexists(full):
            raise ContainerError(f"Could not find the file {src} in container {cfs.name}")
        if slash and not os.path.isdir(full):
            raise ContainerError(f"{src}: not a directory")
        if dest == "-":
            out = sys.stdout.buffer
            out.flush()
            return write_tar(full, os.path.basename(full.rstrip("/")) if not dot else "",
                             _FdSink(1))
        d, _ddot, dslash = _split(dest)
        _place(full, dot, d if not dest.endswith("/") else d + "/", dslash, dest, owner)
        return content_size(full)

    return cfs.view.call(work)


def copy_in(cfs: ContainerFs, src: str, dest: str, *, follow: bool = False,
            archive: bool = False) -> int:
    """host SRC -> CONTAINER:DEST (a tar from stdin when SRC is "-"); the bytes copied."""
    owner = None if archive else (0, 0)
    if src != "-":
        path, dot, slash = _split(src)
        host = os.path.realpath(path) if (follow or dot or slash) else os.path.abspath(path)
        if not os.path.lexists(host):
            raise ContainerError(f"lstat {src}: no such file or directory")
        if slash and not os.path.isdir(host):
            raise ContainerError(f"{src}: not a directory")
    dpath, _ddot, dslash = _split(dest)

    def work(root: str) -> int:
        target = _in_container(root, dpath, True)
        if src == "-":
            if not os.path.isdir(target):
                raise ContainerError(f"destination \"{cfs.name}:{dest}\" must be a directory")
            return _untar(sys.stdin.buffer, target)
        _place(host, dot, target, dslash, f"{cfs.name}:{dest}", owner)
        return content_size(host)

    return cfs.view.call(work, write=True)


# ---------------------------------------------------------------- tars

class _FdSink:
    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]


def write_tar(path: str, name: str, sink) -> int:
    """A tar of `path` (any kind; dirs recursively, links never followed) whose entries are
    named under `name` ("" = the dir's contents)."""
    from pybuild.image.tarwriter import _xattrs

    w = TarWriter(sink)
    links: dict = {}

    def walk(full: bytes, arc: bytes) -> None:
        st = os.lstat(full)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            if arc:
                w.entry(arc + b"/", st, b"5", xattrs=_xattrs(full))
            with os.scandir(full) as it:
                names = sorted(e.name for e in it)
            for n in (os.fsencode(x) for x in names):
                walk(full + b"/" + n, arc + b"/" + n if arc else n)
        elif stat.S_ISREG(mode):
            if st.st_nlink > 1:
                first = links.setdefault((st.st_dev, st.st_ino), arc)
                if first != arc:
                    w.entry(arc, st, b"1", linkname=first)
                    return
            w.entry(arc, st, b"0", size=st.st_size, xattrs=_xattrs(full))
            w.file_content(full, st.st_size)
        elif stat.S_ISLNK(mode):
            w.entry(arc, st, b"2", linkname=os.readlink(full))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            kind = b"3" if stat.S_ISCHR(mode) else b"4" if stat.S_ISBLK(mode) else b"6"
            w.entry(arc, st, kind)

    walk(os.fsencode(path), os.fsencode(name))
    return w.close()


def _untar(stream, dest: str) -> int:
    """A tar stream into the dir `dest`, confined to it (pybuild.image.unpack's rules, but
    `.wh.` names are refused rather than turned into overlay whiteouts)."""
    import tarfile

    from pybuild.errors import ImageError
    from pybuild.image.tarwriter import WHITEOUT_PREFIX
    from pybuild.image.unpack import Unpacker

    u = Unpacker(dest)
    size = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8",
                          errors="surrogateescape") as tf:
            for ti in tf:
                if os.path.basename(ti.name.rstrip("/")).encode().startswith(WHITEOUT_PREFIX):
                    raise ContainerError(f"refusing tar entry {ti.name!r}: a whiteout name")
                size += ti.size if ti.isreg() else 0
                try:
                    u.entry(tf, ti)
                except ImageError as e:
                    raise ContainerError(str(e).replace("layer entry", "tar entry")) from None
        u.finish()
    except tarfile.TarError as e:
        raise ContainerError(f"invalid tar stream: {e}") from None
    return size


def export(cfs: ContainerFs, fd: int) -> None:
    """The container's merged file system (without its volumes) as a tar on `fd`."""
    from pybuild.image.tarwriter import write_layer_tar

    cfs.view.call(lambda root: write_layer_tar(root, _FdSink(fd)) and None)


# ---------------------------------------------------------------- diff

def diff(cfs: ContainerFs) -> list[tuple[str, str]]:
    """("A"|"C"|"D", path) for the container's upper dir against its image, sorted by path;
    mount stubs the container needed are not changes."""
    upper = cfs.view.rootfs.upper_dir
    lowers = cfs.view.rootfs.lower_dirs
    stubs = set(cfs.stubs)
    out: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = "/" + os.path.relpath(dirpath, upper).lstrip(".")
        rel_dir = "/" if rel_dir == "/" else rel_dir.rstrip("/")
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            path = os.path.join(rel_dir, name)
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(("D", path))
                continue
            if path in stubs or (stat.S_ISDIR(st.st_mode) and _only_stubs(upper, path, stubs)):
                continue
            out.append(("C" if layered_exists(lowers, path) else "A", path))
            if stat.S_ISDIR(st.st_mode) and _opaque(full):
                for lower in lowers:
                    below = os.path.join(lower, path.lstrip("/"))
                    if os.path.isdir(below) and not os.path.islink(below):
                        for n in os.listdir(below):
                            if not os.path.lexists(os.path.join(full, n)):
                                out.append(("D", os.path.join(path, n)))
                        break
    seen: set[tuple[str, str]] = set()
    return sorted((x for x in out if not (x in seen or seen.add(x))), key=lambda x: x[1])


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _only_stubs(upper: str, path: str, stubs: set[str]) -> bool:
    """A dir made only to hold mount stubs (nothing else written below it)."""
    if not any(s.startswith(path + "/") for s in stubs):
        return False
    for dirpath, dirnames, filenames in os.walk(os.path.join(upper, path.lstrip("/"))):
        for name in dirnames + filenames:
            p = "/" + os.path.relpath(os.path.join(dirpath, name), upper)
            if p not in stubs and not any(s.startswith(p + "/") for s in stubs):
                return False
    return True

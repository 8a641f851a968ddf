"""Host dirs behind a RUN step's cache and tmpfs mounts: a cache dir kept in the store per id
(seeded from a stage or an image with `from=`), locked or private as `sharing=` says, and a
fresh tmpfs per tmpfs mount."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from typing import TYPE_CHECKING

from pybuild.errors import BuildError

if TYPE_CHECKING:
    from pybuild.builder.steps.run import RunMount

__all__ = ["cache_dir", "tmpfs"]


def _new_dir(path: str, m: RunMount, seed: tuple[str, str] | None) -> None:
    """A new cache dir: a copy of the seed (modes, owners, links kept), else empty with the
    mount's mode and owner."""
    if seed is None:
        os.mkdir(path)
        os.chmod(path, m.mode)
        os.chown(path, m.uid, m.gid)
        return
    if not os.path.isdir(seed[0]):
        raise BuildError(f"RUN --mount=type=cache,from={m.from_}: {m.seed}: not a directory "
                         f"in {m.from_}")
    shutil.copytree(seed[0], path, symlinks=True, copy_function=_copy_owned)
    _chown_dirs(seed[0], path)


def _copy_owned(src: str, dst: str) -> None:
    shutil.copy2(src, dst, follow_symlinks=False)
    st = os.lstat(src)
    os.lchown(dst, st.st_uid, st.st_gid)


def _chown_dirs(src: str, dst: str) -> None:
    for dirpath, dirnames, _ in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        st = os.lstat(dirpath)
        os.lchown(os.path.join(dst, rel), st.st_uid, st.st_gid)
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                st = os.lstat(full)
                os.lchown(os.path.join(dst, rel, d), st.st_uid, st.st_gid)


def tmpfs(host: str, size: int | None, undo: list) -> str:
    """A fresh tmpfs (BuildKit mounts one per tmpfs mount: nosuid, the size as its limit),
    mounted on the host and bound in; unmounted after the step."""
    from pybuild.runtime import linux

    os.makedirs(host, 0o755)
    options = "mode=1777" + (f",size={size}" if size else "")
    linux.mount("tmpfs", host, "tmpfs", linux.MS_NOSUID, options)
    undo.append(lambda: linux.umount2(host, linux.MNT_DETACH))
    return host


def cache_dir(m: RunMount, cache_root: str, scratch_dir: str, i: int, undo: list,
              seed: tuple[str, str] | None = None) -> str:
    """The host dir of a cache mount: made with the mount's mode and owner the first time;
    `locked` waits for other writers, `private` takes a fresh dir while another one runs.
    `seed` (a dir, and the key of the stage or image it is in): a new cache dir starts as a
    copy of it, and the cache is that source's own (BuildKit keys it by id and base ref)."""
    import fcntl

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", m.source).strip(".") or "cache"
    if seed is not None:
        name += "-" + hashlib.sha256(f"{seed[1]}\0{m.seed}".encode()).hexdigest()[:16]
    host = os.path.join(cache_root, name)
    if not os.path.isdir(host):
        os.makedirs(cache_root, 0o755, exist_ok=True)
        tmp = f"{host}.new-{os.getpid()}-{i}"
        _new_dir(tmp, m, seed)
        try:
            os.rename(tmp, host)
        except OSError:  # another build made it first
            shutil.rmtree(tmp, ignore_errors=True)
    if m.sharing == "shared":
        return host
    fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if m.sharing == "private" else 0))
    except BlockingIOError:
        os.close(fd)
        private = os.path.join(scratch_dir, f"cache-{i}")
        _new_dir(private, m, seed)
        return private
    undo.append(lambda: os.close(fd))  # closing releases the flock
    return host

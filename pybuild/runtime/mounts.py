"""Mount helpers for the built-in executor: OCI mount options -> flags, symlink-safe paths
inside a rootfs, the overlay rootfs itself, and masked / read-only paths."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass

from pybuild.runtime import linux as L

# option -> (clear?, flag), as runc's parseMountOptions
_FLAGS = {
    "ro": (False, L.MS_RDONLY), "rw": (True, L.MS_RDONLY),
    "nosuid": (False, L.MS_NOSUID), "suid": (True, L.MS_NOSUID),
    "nodev": (False, L.MS_NODEV), "dev": (True, L.MS_NODEV),
    "noexec": (False, L.MS_NOEXEC), "exec": (True, L.MS_NOEXEC),
    "sync": (False, L.MS_SYNCHRONOUS), "async": (True, L.MS_SYNCHRONOUS),
    "dirsync": (False, L.MS_DIRSYNC), "remount": (False, L.MS_REMOUNT),
    "mand": (False, L.MS_MANDLOCK), "nomand": (True, L.MS_MANDLOCK),
    "noatime": (False, L.MS_NOATIME), "atime": (True, L.MS_NOATIME),
    "nodiratime": (False, L.MS_NODIRATIME), "diratime": (True, L.MS_NODIRATIME),
    "bind": (False, L.MS_BIND), "rbind": (False, L.MS_BIND | L.MS_REC),
    "relatime": (False, L.MS_RELATIME), "norelatime": (True, L.MS_RELATIME),
    "strictatime": (False, L.MS_STRICTATIME), "nostrictatime": (True, L.MS_STRICTATIME),
    "nosymfollow": (False, L.MS_NOSYMFOLLOW),
}
_PROPAGATION = {
    "private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE | L.MS_REC,
    "shared": L.MS_SHARED, "rshared": L.MS_SHARED | L.MS_REC,
    "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE, "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}
# statvfs f_flag bits -> mount flags, to keep what a read-only remount must not drop
_ST_TO_MS = ((2, L.MS_NOSUID), (4, L.MS_NODEV), (8, L.MS_NOEXEC), (1024, L.MS_NOATIME),
             (2048, L.MS_NODIRATIME), (4096, L.MS_RELATIME))


@dataclass(frozen=True)
class ParsedOptions:
    flags: int
    propagation: tuple[int, ...]
    data: str


def parse_options(options: Sequence[str]) -> ParsedOptions:
    flags, prop, data = 0, [], []
    for opt in options:
        if opt in _FLAGS:
            clear, bit = _FLAGS[opt]
            flags = flags & ~bit if clear else flags | bit
        elif opt in _PROPAGATION:
            prop.append(_PROPAGATION[opt])
        else:
            data.append(opt)
    return ParsedOptions(flags, tuple(prop), ",".join(data))


def secure_join(root: str, path: str) -> str:
    """`path` inside `root`, following symlinks as if `root` were `/` (never out of it)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:
            resolved.append(part)
            continue
        hops += 1
        if hops > 40:
            raise OSError(errno.ELOOP, f"too many levels of symbolic links: {path}")
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return os.path.join(root, *resolved)


def _make_mountpoint(dest: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(dest, 0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(dest), 0o755, exist_ok=True)
    if not os.path.lexists(dest):
        os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))


def locked_flags(path: str) -> int:
    st = os.statvfs(path)
    return sum(ms for st_bit, ms in _ST_TO_MS if st.f_flag & st_bit)


def mount_entry(rootfs: str, m: dict) -> None:
    """Mount one OCI `mounts` entry under `rootfs` (before pivot_root), as runc does."""
    opts = parse_options(m.get("options") or ())
    dest = secure_join(rootfs, m["destination"])
    kind = m.get("type") or ("bind" if opts.flags & L.MS_BIND else "")
    if kind == "bind" or opts.flags & L.MS_BIND:
        source = m["source"]
        if not os.path.exists(source):
            raise OSError(errno.ENOENT, f"bind source path does not exist: {source}", source)
        _make_mountpoint(dest, os.path.isdir(source))
        flags = opts.flags | L.MS_BIND
        L.mount(source, dest, None, flags & (L.MS_BIND | L.MS_REC))
        extra = flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
        if extra:
            L.mount(None, dest, None, L.MS_BIND | L.MS_REMOUNT | extra | locked_flags(dest))
    else:
        _make_mountpoint(dest, True)
        try:
            L.mount(m.get("source") or kind, dest, kind, opts.flags, opts.data or None)
        except PermissionError:
            if kind != "sysfs":
                raise
            # sysfs cannot be mounted without a new network namespace: bind the host's.
            L.mount("/sys", dest, None, L.MS_BIND | L.MS_REC)
            L.mount(None, dest, None, L.MS_BIND | L.MS_REMOUNT | opts.flags | locked_flags(dest))
    for prop in opts.propagation:
        L.mount(None, dest, None, prop)


def mask_path(path: str) -> None:
    """Hide a file behind /dev/null, a directory behind an empty read-only tmpfs."""
    try:
        L.mount("/dev/null", path, None, L.MS_BIND)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        L.mount("tmpfs", path, "tmpfs", L.MS_RDONLY)


def readonly_path(path: str) -> None:
    try:
        L.mount(path, path, None, L.MS_BIND | L.MS_REC)
    except FileNotFoundError:
        return
    L.mount(None, path, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC | locked_flags(path))


@dataclass(frozen=True)
class Rootfs:
    """An overlay rootfs: read-only lower dirs (topmost first) + the container's own
    upper/work dirs, mounted at `target`."""

    lower_dirs: tuple[str, ...]
    upper_dir: str
    work_dir: str
    target: str

    def layers(self) -> tuple[str, ...]:
        return (self.upper_dir, *self.lower_dirs)


# Self-contained upper dirs (DESIGN.md: a build step's upper dir is its layer diff).
OVERLAY_FEATURES = "redirect_dir=off,metacopy=off,index=off"
_PAGE = 4096


def overlay_data(rootfs: Rootfs) -> tuple[str, str | None]:
    """The overlay mount data, and a directory to chdir to first when the absolute paths would
    not fit in one page (then the lower dirs are given relative to it, as Docker does)."""
    lowers = rootfs.lower_dirs
    data = (f"lowerdir={':'.join(lowers)},upperdir={rootfs.upper_dir},"
            f"workdir={rootfs.work_dir},{OVERLAY_FEATURES}")
    if len(data) < _PAGE - 1:
        return data, None
    base = os.path.commonpath(lowers)
    rel = [os.path.relpath(p, base) for p in lowers]
    data = (f"lowerdir={':'.join(rel)},upperdir={rootfs.upper_dir},"
            f"workdir={rootfs.work_dir},{OVERLAY_FEATURES}")
    if len(data) >= _PAGE - 1:
        raise OSError(errno.E2BIG, f"too many layers for one overlay mount ({len(lowers)})")
    return data, base


def mount_overlay(rootfs: Rootfs) -> None:
    if not rootfs.lower_dirs:
        raise OSError(errno.EINVAL, "an overlay needs at least one lower dir")
    data, chdir = overlay_data(rootfs)
    if chdir is None:
        L.mount("overlay", rootfs.target, "overlay", 0, data)
        return
    here = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(chdir)
        L.mount("overlay", rootfs.target, "overlay", 0, data)
    finally:
        os.fchdir(here)
        os.close(here)


def layered_exists(layers: Sequence[str], path: str) -> bool:
    """Whether `path` exists in the merged view of `layers` (topmost first)."""
    rel = path.lstrip("/")
    for layer in layers:
        try:
            st = os.lstat(os.path.join(layer, rel))
        except (FileNotFoundError, NotADirectoryError):
            continue
        return not (st.st_mode & 0o170000 == 0o020000 and st.st_rdev == 0)
    return False


def mount_stubs(spec: dict, layers: Sequence[str]) -> list[str]:
    """Mount points the container will have to create because the image lacks them."""
    wanted = [m["destination"] for m in spec.get("mounts", ())]
    return [p for p in wanted if p != "/" and not layered_exists(layers, p)]


def remove_stubs(upper_dir: str, stubs: Sequence[str]) -> None:
    """Drop empty mount points (and the empty dirs made for them) from an upper dir, so a
    build step's layer holds only what its command wrote (BuildKit does the same)."""
    for stub in sorted(stubs, key=len, reverse=True):
        path = os.path.join(upper_dir, stub.lstrip("/"))
        while path.startswith(upper_dir + "/"):
            try:
                st = os.lstat(path)
                if st.st_mode & 0o170000 == 0o100000 and st.st_size == 0:
                    os.unlink(path)
                elif st.st_mode & 0o170000 == 0o040000:
                    os.rmdir(path)
                else:
                    break
            except FileNotFoundError:
                pass
            except OSError:
                break
            path = os.path.dirname(path)


def unmount_tree(path: str) -> None:
    """Detach every mount at or below `path`, deepest first."""
    prefix = path.rstrip("/")
    targets = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                targets.append(point)
    for point in sorted(set(targets), key=len, reverse=True):
        try:
            L.umount2(point, L.MNT_DETACH)
        except OSError:
            pass

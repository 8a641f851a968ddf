"""A build's scratch space in the store's tmp/: per-step upper/work dirs on the store's file
system (so a finished upper dir is renamed into snapshots/, never copied), overlay mounts of
a parent chain for COPY/WORKDIR, read-only views of other stages for COPY --from, and the
clean-up that leaves no mount and no stray dir behind whatever happened."""

from __future__ import annotations

import itertools
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pybuild.image.store import Store


@dataclass(frozen=True)
class StepDirs:
    upper: str
    work: str
    scratch: str
    merged: str


@dataclass(frozen=True)
class Committed:
    chain_id: str | None  # None: the step changed nothing (an empty layer)
    diff_id: str | None


def _owner(pid: int) -> str | None:
    """`pid starttime`: names a process even after its pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f"{pid} {f.read().rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return None


def reap_stale(store: Store) -> int:
    """Unmount and remove the workspaces of builds whose process is gone (kill -9)."""
    reaped = 0
    for name in os.listdir(store.tmp_dir):
        if not name.startswith("build-"):
            continue
        path = os.path.join(store.tmp_dir, name)
        try:
            with open(os.path.join(path, "owner")) as f:
                owner = f.read().strip()
        except OSError:
            continue  # being created right now, or not ours
        pid = int(owner.split()[0]) if owner.split() and owner.split()[0].isdigit() else 0
        if pid and _owner(pid) == owner:
            continue  # that build is still running
        from pybuild.image.snapshots import remove_tree
        from pybuild.runtime.mounts import unmount_tree

        unmount_tree(path)
        remove_tree(path)
        reaped += 1
    return reaped



def _mirror_dirs(src_root: str, dst_root: str, rel: str, only_attrs: bool = False) -> None:
    """Make dst_root/rel (and its parents) with the owner, mode and times of src_root's; with
    `only_attrs`, copy those onto every dir already under dst_root instead."""
    if only_attrs:
        for dirpath, _, _ in os.walk(dst_root):
            inner = os.path.relpath(dirpath, dst_root)
            st = os.lstat(os.path.join(src_root, inner))
            os.chown(dirpath, st.st_uid, st.st_gid)
            os.chmod(dirpath, stat.S_IMODE(st.st_mode))
            os.utime(dirpath, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    current = ""
    for part in rel.split("/"):
        current = os.path.join(current, part)
        if not os.path.isdir(os.path.join(dst_root, current)):
            os.mkdir(os.path.join(dst_root, current), 0o755)


class Workspace:
    """tmp/build-XXXX for one build; close() unmounts and removes everything under it."""

    def __init__(self, store: Store):
        self.store = store
        reap_stale(store)
        self.root = os.path.join(store.tmp_dir, f"build-{os.urandom(8).hex()}")
        os.mkdir(self.root, 0o700)
        with open(os.path.join(self.root, "owner"), "w") as f:
            f.write(_owner(os.getpid()) or "")
        self.empty = os.path.join(self.root, "empty")  # the lower dir of FROM scratch
        os.mkdir(self.empty, 0o755)
        self.cache_mounts = os.path.join(store.root, "buildcache", "mounts")
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._mounted = False  # nothing to unmount: a cached build never imports the runtime

    def step_dirs(self) -> StepDirs:
        with self._lock:
            n = next(self._counter)
        base = os.path.join(self.root, f"step-{n}")
        dirs = StepDirs(*(os.path.join(base, d) for d in ("upper", "work", "scratch", "merged")))
        for d in (dirs.upper, dirs.work, dirs.scratch, dirs.merged):
            os.makedirs(d, 0o755)
        return dirs

    def lowers(self, lower_dirs: Sequence[str]) -> list[str]:
        return list(lower_dirs) if lower_dirs else [self.empty]

    @contextmanager
    def mounted(self, dirs: StepDirs, lower_dirs: Sequence[str]) -> Iterator[str]:
        """The parent chain with the step's upper dir on top, mounted at dirs.merged."""
        from pybuild.runtime.mounts import Rootfs, mount_overlay, unmount_tree

        self._mounted = True
        mount_overlay(Rootfs(tuple(self.lowers(lower_dirs)), dirs.upper, dirs.work, dirs.merged))
        try:
            yield dirs.merged
        finally:
            unmount_tree(dirs.merged)

    @contextmanager
    def read_only_view(self, lower_dirs: Sequence[str]) -> Iterator[str]:
        """A merged read-only view of a layer chain (another stage, an image)."""
        if len(lower_dirs) <= 1:  # one layer is its own view; no mount needed
            yield lower_dirs[0] if lower_dirs else self.empty
            return
        from pybuild.runtime import linux as L
        from pybuild.runtime.mounts import unmount_tree

        with self._lock:
            n = next(self._counter)
        target = os.path.join(self.root, f"view-{n}")
        os.mkdir(target, 0o755)
        data = "lowerdir=" + ":".join(lower_dirs)
        self._mounted = True
        L.mount("overlay", target, "overlay", L.MS_RDONLY, data)
        try:
            yield target
        finally:
            unmount_tree(target)

    def context_view(self, context) -> str:
        """The build context as it is sent (a BuildContext: ignored files hidden), for RUN
        --mount=type=bind, mounted until close(): the context bound at a plain path (an
        overlay option cannot hold the `,` or `:` a user's path may have), and when
        something is ignored, a read-only overlay of it under a layer of whiteouts."""
        from pybuild.runtime import linux as L

        with self._lock:
            n = next(self._counter)
        base = os.path.join(self.root, f"context-{n}")
        source = os.path.join(base, "source")
        os.makedirs(source, 0o755)
        self._mounted = True
        L.mount(context.root, source, None, L.MS_BIND | L.MS_REC)
        hidden = context.unsent()
        if not hidden:
            return source
        whiteouts, target = os.path.join(base, "whiteouts"), os.path.join(base, "view")
        os.mkdir(target, 0o755)
        os.mkdir(whiteouts, 0o755)
        for rel in hidden:
            parent = os.path.dirname(rel)
            if parent and not os.path.isdir(os.path.join(whiteouts, parent)):
                _mirror_dirs(context.root, whiteouts, parent)
            os.mknod(os.path.join(whiteouts, rel), 0o600 | stat.S_IFCHR, 0)
        # the dirs made above take their owner and mode from the context: in an overlay the
        # top layer's copy of a dir is what shows
        _mirror_dirs(context.root, whiteouts, "", only_attrs=True)
        L.mount("overlay", target, "overlay", L.MS_RDONLY, f"lowerdir={whiteouts}:{source}")
        return target

    def commit(self, dirs: StepDirs, parent: str | None,
               source_date_epoch: int | None) -> Committed:
        """The step's upper dir -> a snapshot (or nothing, if the step wrote nothing)."""
        from pybuild.image import layers as layer_ops
        from pybuild.image.snapshots import remove_tree

        remove_tree(dirs.work)  # overlay's work dir holds root-only leftovers
        if not os.listdir(dirs.upper):
            return Committed(None, None)
        layer = layer_ops.commit_dir(self.store, dirs.upper, parent, source_date_epoch)
        return Committed(layer.chain_id, layer.diff_id)

    def close(self) -> None:
        from pybuild.image.snapshots import remove_tree

        if self._mounted:
            from pybuild.runtime.mounts import unmount_tree

            unmount_tree(self.root)
        remove_tree(self.root)

"""A container's merged file system, for code that reads or writes it from the host (cp,
export, volume copy-up): a running container's own view through /proc/<pid>/root, else its
overlay (lower dirs + upper dir) mounted in a private mount namespace of a forked child, so
no mount is ever visible on the host and none outlives the child, even on a crash."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pybuild.errors import ContainerError, PybuildError
from pybuild.runtime.mounts import Rootfs, layered_exists


@dataclass(frozen=True)
class ContainerView:
    rootfs: Rootfs                     # lower dirs, upper and work dirs, mount target
    mounts: tuple[dict, ...] = ()      # OCI bind entries (volumes) to show inside the view
    pid: int | None = None             # a running container's pid: use its own mounts

    def call(self, fn: Callable[[str], object], write: bool = False) -> object:
        """fn(root) with `root` the merged view; its result must pickle. Errors come back as
        ContainerError with the child's message and exit code. Reads see the layers (and the
        volumes, where their mount points exist) through a read-only overlay; writes go
        through a running container's own mounts, else into the upper dir."""
        if write and self.pid is not None and os.path.isdir(f"/proc/{self.pid}/root/"):
            return fn(f"/proc/{self.pid}/root")
        return _in_child(lambda: fn(self._mount(write)))

    def _mount(self, write: bool) -> str:
        from pybuild.runtime import linux as L
        from pybuild.runtime.mounts import mount_entry, mount_overlay

        L.unshare(L.CLONE_NEWNS)
        L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
        target = self.rootfs.target
        os.makedirs(target, 0o755, exist_ok=True)
        if write:
            mount_overlay(self.rootfs)
        else:  # the upper dir as the topmost lower dir: a read-only view that never writes
            _mount_readonly(self.rootfs.layers(), target)
        layers = self.rootfs.layers()
        for m in sorted(self.mounts, key=lambda m: m["destination"].count("/")):
            # only where the mount point exists already: a view must not add stubs
            if m.get("type") == "bind" and layered_exists(layers, m["destination"]) \
                    and os.path.exists(m["source"]):
                mount_entry(target, {**m, "options": [*m.get("options", ()), "ro"]}
                            if not write else m)
        return target


def _mount_readonly(layers: Sequence[str], target: str) -> None:
    from pybuild.runtime import linux as L
    from pybuild.runtime.mounts import OVERLAY_FEATURES

    base = os.path.commonpath(layers)
    rel = [os.path.relpath(p, base) for p in layers]
    here = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(base)  # relative lower dirs: many layers still fit in one page
        L.mount("overlay", target, "overlay", L.MS_RDONLY,
                f"lowerdir={':'.join(rel)},{OVERLAY_FEATURES}")
    finally:
        os.fchdir(here)
        os.close(here)


def _in_child(fn: Callable[[], object]) -> object:
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            try:
                payload = pickle.dumps(("ok", fn()))
            except PybuildError as e:
                payload = pickle.dumps(("err", str(e), e.exit_code))
            except OSError as e:
                payload = pickle.dumps(("err", _os_message(e), 1))
            except BaseException as e:  # noqa: BLE001 - everything must reach the parent
                payload = pickle.dumps(("err", f"{type(e).__name__}: {e}", 125))
            try:
                sys.stdout.flush()
            except OSError:
                pass
            view = memoryview(payload)
            while view:
                view = view[os.write(w, view):]
        except BaseException:  # noqa: BLE001
            code = 125
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    try:
        while chunk := os.read(r, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if not chunks:
        raise ContainerError(f"the file system helper died (status {status})")
    kind, *rest = pickle.loads(b"".join(chunks))
    if kind == "ok":
        return rest[0]
    err = ContainerError(rest[0])
    err.exit_code = rest[1]
    raise err


def _os_message(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{(e.strerror or str(e)).lower()}"


def view_of_lowers(lower_dirs: Sequence[str], scratch: str) -> ContainerView:
    """An image's file system alone (a fresh, empty upper dir under `scratch`)."""
    for d in ("upper", "work", "merged"):
        os.makedirs(os.path.join(scratch, d), 0o755, exist_ok=True)
    return ContainerView(Rootfs(tuple(lower_dirs), os.path.join(scratch, "upper"),
                                os.path.join(scratch, "work"), os.path.join(scratch, "merged")))

"""A new container's mounts: MountRequests (-v, --mount, --tmpfs), --volumes-from and the
image's VOLUMEs become OCI mount entries and Docker's inspect `Mounts` records. Named
volumes are created on first use, anonymous ones get a 64-hex name, and an empty volume
receives the image's content at its path (Docker's copy-up, owners and modes kept)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from pybuild.errors import ContainerError
from pybuild.runtime.mountspec import MountRequest, tmpfs_entry
from pybuild.runtime.volumes import Volume, Volumes


@dataclass(frozen=True)
class ResolvedMounts:
    entries: tuple[dict, ...] = ()          # OCI mount entries, parents before children
    records: tuple[dict, ...] = ()          # Docker's Mounts, for state.json "mounts"
    tmpfs: dict = field(default_factory=dict)  # HostConfig.Tmpfs: path -> options text
    anonymous: tuple[str, ...] = ()         # volumes made for this container

    def state(self) -> dict:
        """The container state.json keys these mounts add."""
        return {"mounts": list(self.records), "tmpfs": dict(self.tmpfs),
                "anonymous_volumes": list(self.anonymous)}


def _bind_entry(dest: str, source: str, readonly: bool, propagation: str) -> dict:
    return {"destination": dest, "type": "bind", "source": source,
            "options": ["rbind", propagation or "rprivate", *(["ro"] if readonly else [])]}


def _volume_record(vol: Volume, dest: str, readonly: bool, mode: str) -> dict:
    return {"Type": "volume", "Name": vol.name, "Source": vol.mountpoint,
            "Destination": dest, "Driver": vol.driver, "Mode": mode, "RW": not readonly,
            "Propagation": ""}


def _entry_of_record(volumes: Volumes, rec: dict) -> dict:
    ro = not rec.get("RW", True)
    if rec["Type"] == "volume":
        return volumes.get(rec["Name"]).mount_entry(rec["Destination"], ro)
    if rec["Type"] == "bind":
        return _bind_entry(rec["Destination"], rec["Source"], ro, rec.get("Propagation", ""))
    return {"destination": rec["Destination"], "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", *(["ro"] if ro else [])]}


def _from_container(containers_dir: str, ref: str) -> dict:
    from pybuild.runtime.containerref import find_container

    cid = find_container(containers_dir, ref)
    with open(os.path.join(containers_dir, cid, "state.json")) as f:
        return json.load(f)


def resolve(root: str, requests: Sequence[MountRequest], *, image_volumes: Sequence[str] = (),
            volumes_from: Sequence[tuple[str, bool | None]] = (),
            lower_dirs: Sequence[str] = ()) -> ResolvedMounts:
    """Create what the mounts need and describe them. On failure, volumes made for this
    container are removed again."""
    volumes = Volumes(root)
    seen: set[str] = set()
    for req in requests:
        if req.target in seen:
            raise ContainerError(f"Duplicate mount point: {req.target}")
        seen.add(req.target)
    by_dest: dict[str, tuple[dict, dict | None]] = {}  # dest -> (entry, record or None)
    tmpfs: dict[str, str] = {}
    anonymous: list[str] = []
    copy_up: list[tuple[Volume, str]] = []
    try:
        for ref, readonly in volumes_from:
            state = _from_container(os.path.join(root, "containers"), ref)
            for rec in state.get("mounts") or ():  # binds and volumes; a tmpfs is not shared
                rec = dict(rec)
                if readonly is not None:
                    rec["RW"] = not readonly
                by_dest[rec["Destination"]] = (_entry_of_record(volumes, rec), rec)
        for req in requests:
            if req.type == "bind":
                if not os.path.exists(req.source):
                    if not req.create_source:
                        raise ContainerError('invalid mount config for type "bind": bind source '
                                             f"path does not exist: {req.source}")
                    os.makedirs(req.source, 0o755, exist_ok=True)
                rec = {"Type": "bind", "Source": req.source, "Destination": req.target,
                       "Mode": req.mode, "RW": not req.readonly, "Propagation": req.propagation}
                by_dest[req.target] = (_bind_entry(req.target, req.source, req.readonly,
                                                   req.propagation), rec)
            elif req.type == "tmpfs":
                entry = tmpfs_entry(req)
                if req.readonly and "ro" not in entry["options"]:
                    entry["options"].append("ro")
                if req.from_flag == "--tmpfs":
                    tmpfs[req.target] = req.mode
                    by_dest[req.target] = (entry, None)
                else:
                    by_dest[req.target] = (entry, {
                        "Type": "tmpfs", "Source": "", "Destination": req.target, "Mode": "",
                        "RW": not req.readonly, "Propagation": ""})
            else:
                if req.source:
                    vol = volumes.create(req.source, labels=dict(req.volume_labels),
                                         options=dict(req.volume_options))
                else:
                    vol = volumes.create(None, labels=dict(req.volume_labels),
                                         options=dict(req.volume_options), anonymous=True)
                    anonymous.append(vol.name)
                if not req.nocopy:
                    copy_up.append((vol, req.target))
                by_dest[req.target] = (vol.mount_entry(req.target, req.readonly),
                                       _volume_record(vol, req.target, req.readonly, req.mode))
        for path in image_volumes:
            dest = os.path.normpath("/" + path.lstrip("/"))
            if dest in by_dest or dest == "/":
                continue
            vol = volumes.create(None, anonymous=True)
            anonymous.append(vol.name)
            copy_up.append((vol, dest))
            by_dest[dest] = (vol.mount_entry(dest, False), _volume_record(vol, dest, False, ""))
        _copy_up(root, lower_dirs, [(v, d) for v, d in copy_up
                                    if not (v.options.get("type") or v.options.get("device"))])
    except BaseException:
        volumes.release(anonymous)
        raise
    order = sorted(by_dest, key=lambda d: (d.count("/"), d))
    return ResolvedMounts(
        entries=tuple(by_dest[d][0] for d in order),
        records=tuple(by_dest[d][1] for d in order if by_dest[d][1] is not None),
        tmpfs=tmpfs, anonymous=tuple(anonymous))


def _copy_up(root: str, lower_dirs: Sequence[str], targets: list[tuple[Volume, str]]) -> None:
    """The image's content at each destination into its (empty) volume, in one private
    mount of the image's layers."""
    first: dict[str, tuple[Volume, str]] = {}
    for vol, dest in targets:  # one volume at two paths: the first one fills it, as Docker
        first.setdefault(vol.name, (vol, dest))
    if not first or not lower_dirs:
        return
    import fcntl

    locks = []
    try:
        # volumes locked in name order (no deadlock between two runs); a racing run of the
        # same new volume waits here, then finds it filled
        for name in sorted(first):
            fd = os.open(os.path.dirname(first[name][0].mountpoint),
                         os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            locks.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        jobs = [(v.mountpoint, d) for v, d in first.values() if v.is_empty()]
        if jobs:
            _copy_image_paths(root, lower_dirs, jobs)
    finally:
        for fd in locks:
            os.close(fd)


def _copy_image_paths(root: str, lower_dirs: Sequence[str], jobs: list[tuple[str, str]]) -> None:
    from pybuild.image.snapshots import remove_tree
    from pybuild.image.store import Store
    from pybuild.runtime.rootview import view_of_lowers

    with Store(root) as store, store.hold():  # gc empties tmp/ and takes unused snapshots
        scratch = tempfile.mkdtemp(prefix="copyup-", dir=store.tmp_dir)
        try:
            view_of_lowers(lower_dirs, scratch).call(lambda merged: _copy_into(merged, jobs))
        finally:
            remove_tree(scratch)
            if os.path.isdir(scratch):  # overlay's work/work is mode 000: remove_tree copes
                shutil.rmtree(scratch, ignore_errors=True)


def _copy_into(merged: str, jobs: list[tuple[str, str]]) -> None:
    from pybuild.runtime.fscopy import copy_contents
    from pybuild.runtime.mounts import secure_join

    for mountpoint, dest in jobs:
        src = secure_join(merged, dest)
        if os.path.isdir(src) and not os.path.islink(src):
            copy_contents(src, mountpoint)

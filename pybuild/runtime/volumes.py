"""Named and anonymous volumes of the `local` driver: volumes/<name>/_data holds the data,
volumes/<name>/meta.json the driver, labels, options and creation time. A volume is in use
while a container (running or stopped) records it in its state.json "mounts"."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pybuild.errors import ContainerError

if TYPE_CHECKING:  # system df only
    from pybuild.image.store import Store
    from pybuild.image.usage import Usage

DRIVER = "local"
# Docker 23+: anonymous volumes carry this label; `volume prune` removes only those by default
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
# options the local driver understands (moby volume/local: type, device, o, size)
LOCAL_OPTIONS = ("type", "device", "o", "size")


class VolumeError(ContainerError):
    """A missing, invalid or busy volume (125 in `run`; the volume verbs exit 1)."""


class VolumeInUse(VolumeError):
    def __init__(self, name: str, users: list[str]):
        self.users = users
        super().__init__(f"remove {name}: volume is in use - [{', '.join(users)}]")


@dataclass(frozen=True)
class Volume:
    name: str
    mountpoint: str                       # the _data dir
    created: str                          # RFC 3339, seconds
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    driver: str = DRIVER

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    def inspect(self) -> dict:
        """`docker volume inspect`'s object."""
        return {"CreatedAt": self.created, "Driver": self.driver, "Labels": dict(self.labels),
                "Mountpoint": self.mountpoint, "Name": self.name,
                "Options": dict(self.options) or None, "Scope": "local"}

    def is_empty(self) -> bool:
        try:
            with os.scandir(self.mountpoint) as it:
                return next(it, None) is None
        except FileNotFoundError:
            return True

    def mount_entry(self, destination: str, readonly: bool) -> dict:
        """The OCI mount entry: a bind of _data, or the device the driver options name."""
        ro = ["ro"] if readonly else []
        if self.options.get("type") or self.options.get("device"):
            kind = self.options.get("type") or "none"
            opts = [o for o in self.options.get("o", "").split(",") if o]
            if kind == "none" or "bind" in opts or "rbind" in opts:
                return {"destination": destination, "type": "bind",
                        "source": self.options.get("device", ""),
                        "options": [*opts, "rprivate", *ro]}
            if self.options.get("size"):
                opts.append(f"size={self.options['size']}")
            return {"destination": destination, "type": kind,
                    "source": self.options.get("device") or kind, "options": [*opts, *ro]}
        return {"destination": destination, "type": "bind", "source": self.mountpoint,
                "options": ["rbind", "rprivate", *ro]}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_name(name: str) -> None:
    """moby's local driver rules (validateName)."""
    if len(name) == 1:
        raise VolumeError(f"create {name}: volume name is too short, names should be at least "
                          "two alphanumeric characters")
    if not _NAME.fullmatch(name):
        raise VolumeError(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path")


def check_options(options: Mapping[str, str]) -> None:
    """moby's local driver option checks: known keys; type and device go together."""
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise VolumeError(f"invalid option: {key!r}".replace("'", '"'))
    kind, device = options.get("type", ""), options.get("device", "")
    if (device or options.get("o")) and not kind:
        raise VolumeError('missing required option: "type"')
    if kind and not device:
        raise VolumeError('missing required option: "device"')
    if options.get("size") and kind != "tmpfs":
        raise VolumeError('invalid option: "size" is only valid with type=tmpfs')


class Volumes:
    """The volumes of one store root."""

    def __init__(self, root: str):
        self.root = root
        self.dir = os.path.join(root, "volumes")

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def get(self, name: str) -> Volume:
        if not _NAME.fullmatch(name):
            raise VolumeError(f"get {name}: no such volume")
        try:
            with open(os.path.join(self._path(name), "meta.json")) as f:
                meta = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            raise VolumeError(f"get {name}: no such volume") from None
        except ValueError:
            raise VolumeError(f"volume {name}: unreadable metadata") from None
        return Volume(name=name, mountpoint=os.path.join(self._path(name), "_data"),
                      created=meta.get("created", ""), labels=meta.get("labels") or {},
                      options=meta.get("options") or {}, driver=meta.get("driver", DRIVER))

    def exists(self, name: str) -> bool:
        return os.path.exists(os.path.join(self._path(name), "meta.json"))

    def create(self, name: str | None = None, labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None, driver: str = DRIVER,
               anonymous: bool = False) -> Volume:
        """A new volume (a random 64-hex name if `name` is None); an existing one of that
        name is returned as it is, as Docker does."""
        if driver != DRIVER:
            raise VolumeError(f'create {name or ""}: error looking up volume plugin {driver}: '
                              f'plugin "{driver}" not found')
        options = dict(options or {})
        check_options(options)
        labels = dict(labels or {})
        if anonymous:
            labels[ANONYMOUS_LABEL] = ""
        if name is None:
            name = os.urandom(32).hex()
        check_name(name)
        if self.exists(name):
            return self.get(name)
        os.makedirs(self.dir, 0o701, exist_ok=True)
        stage = tempfile.mkdtemp(prefix=".new-", dir=self.dir)
        try:
            os.mkdir(os.path.join(stage, "_data"), 0o755)
            meta = {"driver": driver, "labels": labels, "options": options, "created": _now()}
            tmp = os.path.join(stage, "meta.json.tmp")
            with open(tmp, "w") as f:
                json.dump(meta, f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, os.path.join(stage, "meta.json"))
            try:
                os.rename(stage, self._path(name))  # atomic: a racing create of the name wins
            except OSError:
                if not self.exists(name):
                    raise
        finally:
            if os.path.isdir(stage):
                _remove_tree(stage)
        return self.get(name)

    def list(self) -> list[Volume]:
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.startswith("."):
                continue
            try:
                out.append(self.get(name))
            except VolumeError:
                continue
        return out

    def users(self, name: str) -> list[str]:
        """Ids of the containers (running or not) whose mounts name this volume."""
        return [cid for cid, state in _container_states(self.root)
                if any(m.get("Type") == "volume" and m.get("Name") == name
                       for m in state.get("mounts") or ())]

    def remove(self, name: str, force: bool = False) -> None:
        """`volume rm`: refused while a container uses it; `force` only hides a missing one."""
        try:
            self.get(name)
        except VolumeError:
            if force:
                return
            raise
        users = self.users(name)
        if users:
            raise VolumeInUse(name, users)
        self._delete(name)

    def _delete(self, name: str) -> int:
        """Rename out of the way (a crash leaves no half volume under its name), then delete.
        Returns the bytes freed."""
        trash = tempfile.mkdtemp(prefix=".trash-", dir=self.dir)
        os.rename(self._path(name), os.path.join(trash, "v"))
        size = tree_size(os.path.join(trash, "v", "_data"))
        _remove_tree(trash)
        return size

    def prune(self, all_volumes: bool = False,
              labels: tuple[tuple[str, str | None, bool], ...] = ()) -> tuple[list[str], int]:
        """Remove unused volumes: anonymous ones, or every one with `all_volumes` (Docker 23+).
        `labels`: (key, value or None, negated) filters. Returns names and bytes freed."""
        used = set()
        for _cid, state in _container_states(self.root):
            used.update(m.get("Name") for m in state.get("mounts") or ()
                        if m.get("Type") == "volume")
        removed, freed = [], 0
        for vol in self.list():
            if vol.name in used or not (all_volumes or vol.anonymous):
                continue
            if not all(_label_matches(vol.labels, k, v) != neg for k, v, neg in labels):
                continue
            freed += self._delete(vol.name)
            removed.append(vol.name)
        return removed, freed

    def release(self, names: list[str]) -> list[str]:
        """Remove the given (anonymous) volumes of a removed container; one still used by
        another container (--volumes-from) stays, as in Docker. Returns those removed."""
        gone = []
        for name in names:
            try:
                self.remove(name)
                gone.append(name)
            except VolumeError:
                continue
        return gone


def _label_matches(labels: Mapping[str, str], key: str, value: str | None) -> bool:
    return key in labels and (value is None or labels[key] == value)


def _container_states(root: str):
    base = os.path.join(root, "containers")
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        return
    for entry in sorted(entries):
        if len(entry) != 64:
            continue
        try:
            with open(os.path.join(base, entry, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(state, dict):
            yield entry, state


def tree_size(path: str) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not (st.st_mode & 0o170000 == 0o040000):
                total += st.st_size
    return total


def _remove_tree(path: str) -> None:
    from pybuild.image.snapshots import remove_tree

    remove_tree(path)


def volume_usage(store: Store) -> Usage:
    """`system df`'s "Local Volumes" row: volumes in use by a container are active; the
    others' data is reclaimable."""
    from pybuild.image.usage import Usage

    vols = Volumes(store.root)
    used = {m.get("Name") for _cid, state in _container_states(store.root)
            for m in state.get("mounts") or () if m.get("Type") == "volume"}
    listed = vols.list()
    sizes = {v.name: tree_size(v.mountpoint) for v in listed}
    return Usage("Local Volumes", len(listed), sum(1 for v in listed if v.name in used),
                 sum(sizes.values()), sum(n for name, n in sizes.items() if name not in used))

"""Docker's mount flags as values: `-v [SRC:]DST[:MODE]`, `--mount type=...,k=v` (the CLI's
csv syntax and errors), `--tmpfs DST[:OPTS]` and `--volumes-from CTR[:ro|rw]` become
MountRequests; nothing is created here (see runtime/attach.py)."""

from __future__ import annotations

import csv
import os
import posixpath
from dataclasses import dataclass

from pybuild.errors import ContainerError

_RW = ("rw", "ro")
_LABEL = ("z", "Z")
_PROPAGATION = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
_CONSISTENCY = ("consistent", "cached", "delegated")
# tmpfs options moby's ParseTmpfsOptions lets through: flags and size/mode/ids/inodes
_TMPFS_FLAGS = ("ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync",
                "async", "dirsync", "atime", "noatime", "diratime", "nodiratime", "relatime",
                "norelatime", "strictatime", "nostrictatime", "mand", "nomand")
_TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol", "huge")
TMPFS_DEFAULTS = ("nosuid", "nodev", "noexec")


@dataclass(frozen=True)
class MountRequest:
    type: str                       # bind | volume | tmpfs
    target: str
    source: str = ""                # bind: host path; volume: name ("" = anonymous)
    readonly: bool = False
    mode: str = ""                  # Docker's "Mode" in inspect (the -v mode text)
    propagation: str = ""           # bind only; "" = rprivate
    nocopy: bool = False            # volume: no copy-up of image content
    volume_options: tuple[tuple[str, str], ...] = ()
    volume_labels: tuple[tuple[str, str], ...] = ()
    tmpfs_options: tuple[str, ...] = ()  # mount options (size=, mode=, exec, ...)
    from_flag: str = "-v"           # -v | --mount | --tmpfs: what the errors name
    create_source: bool = False     # -v makes a missing host dir; --mount refuses


def _check_target(kind: str, target: str, spec: str) -> str:
    if not target:
        raise ContainerError(f"invalid volume specification: '{spec}'")
    if not target.startswith("/"):
        raise ContainerError(f'invalid mount config for type "{kind}": invalid mount path: '
                             f"'{target}' mount path must be absolute")
    target = posixpath.normpath(target)
    if target.startswith("//"):
        target = "/" + target.lstrip("/")
    if target == "/":
        raise ContainerError(f'invalid mount config for type "{kind}": invalid specification: '
                             "destination can't be '/'")
    return target


def _host_path(source: str) -> str:
    """Relative host paths (".", "./x", "../x") are taken from the current dir, as the CLI."""
    if source == "." or source.startswith(("./", "../")) or source == "..":
        return os.path.abspath(source)
    return source


def _parse_mode(mode: str, spec: str) -> tuple[bool, str, bool]:
    """-v's third field -> (readonly, propagation, nocopy); Docker's "invalid mode"."""
    seen: dict[str, str] = {}
    for part in mode.split(","):
        for group, values in (("rw", _RW), ("label", _LABEL), ("prop", _PROPAGATION),
                              ("cons", _CONSISTENCY), ("copy", ("nocopy",))):
            if part in values:
                if group in seen:
                    raise ContainerError(f"invalid mode: {mode}")
                seen[group] = part
                break
        else:
            raise ContainerError(f"invalid mode: {mode}")
    return seen.get("rw") == "ro", seen.get("prop", ""), "copy" in seen


def parse_volume(spec: str) -> MountRequest:
    """`-v`: /ctr (anonymous volume), name:/ctr or /host:/ctr, with an optional :mode."""
    if not spec:
        raise ContainerError("invalid empty volume spec")
    parts = spec.split(":")
    if len(parts) > 3 or any(p == "" for p in parts):
        raise ContainerError(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        return MountRequest("volume", _check_target("volume", parts[0], spec))
    if len(parts) == 2 and _is_mode(parts[1]):
        raise ContainerError(f"invalid volume specification: '{spec}'")
    source, target = _host_path(parts[0]), parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    readonly, propagation, nocopy = _parse_mode(mode, spec) if mode else (False, "", False)
    if source.startswith("/"):
        if nocopy:
            raise ContainerError(f"invalid mode: {mode}")
        return MountRequest("bind", _check_target("bind", target, spec), os.path.normpath(source),
                            readonly=readonly, mode=mode, propagation=propagation or "rprivate",
                            create_source=True)
    if propagation:
        raise ContainerError(f'invalid mount config for type "volume": propagation mode '
                             f"'{propagation}' is only valid for bind mounts")
    return MountRequest("volume", _check_target("volume", target, spec), source,
                        readonly=readonly, mode=mode or "z", nocopy=nocopy)


def _is_mode(text: str) -> bool:
    try:
        _parse_mode(text, text)
    except ContainerError:
        return False
    return True


def _bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise ContainerError(f"invalid value for {key}: {value}")


def _mount_error(text: str, reason: str) -> ContainerError:
    return ContainerError(f'invalid argument "{text}" for "--mount" flag: {reason}')


def parse_mount(text: str) -> MountRequest:
    """`--mount type=bind|volume|tmpfs,source=,target=,readonly,...` (docker/cli opts/mount.go
    then the engine's validation)."""
    try:
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise _mount_error(text, "invalid csv") from None
    kind = source = target = ""
    readonly = nocopy = False
    propagation = ""
    vopts: list[tuple[str, str]] = []
    vlabels: list[tuple[str, str]] = []
    tmpfs: list[str] = []
    groups: set[str] = set()
    for f in fields:
        key, eq, value = f.partition("=")
        key = key.lower().strip()
        if not eq:
            if key in ("readonly", "ro"):
                readonly = True
                continue
            if key == "volume-nocopy":
                nocopy = True
                groups.add("volume")
                continue
            raise _mount_error(text, f"invalid field '{f}' must be a key=value pair")
        try:
            if key == "type":
                kind = value.lower()
            elif key in ("source", "src"):
                source = _host_path(value)
            elif key in ("target", "dst", "destination"):
                target = value
            elif key in ("readonly", "ro"):
                readonly = _bool(key, value)
            elif key == "consistency":
                if value not in (*_CONSISTENCY, "default"):
                    raise ContainerError(f"invalid value for {key}: {value}")
            elif key == "bind-propagation":
                if value.lower() not in _PROPAGATION:
                    raise ContainerError(f"invalid value for {key}: {value}")
                propagation = value.lower()
                groups.add("bind")
            elif key == "volume-nocopy":
                nocopy = _bool(key, value)
                groups.add("volume")
            elif key in ("volume-opt", "volume-label"):
                k, _, v = value.partition("=")
                (vopts if key == "volume-opt" else vlabels).append((k, v))
                groups.add("volume")
            elif key == "volume-driver":
                if value != "local":
                    raise ContainerError(f"invalid value for {key}: {value} (only local)")
                groups.add("volume")
            elif key == "tmpfs-size":
                from pybuild.runtime.cgroups import parse_bytes

                try:
                    size = parse_bytes(value)
                except ContainerError:
                    raise ContainerError(f"invalid value for {key}: {value}") from None
                tmpfs.append(f"size={size}")
                groups.add("tmpfs")
            elif key == "tmpfs-mode":
                try:
                    mode = int(value, 8)
                except ValueError:
                    raise ContainerError(f"invalid value for {key}: {value}") from None
                tmpfs.append(f"mode={mode:o}")
                groups.add("tmpfs")
            else:
                raise ContainerError(f"unexpected key '{key}' in '{f}'")
        except ContainerError as e:
            if str(e).startswith("invalid argument"):
                raise
            raise _mount_error(text, str(e)) from None
    if not kind:
        raise _mount_error(text, "type is required")
    if not target:
        raise _mount_error(text, "target is required")
    for group in sorted(groups):
        if group != kind:
            raise _mount_error(text, f"cannot mix '{group}-*' options with mount type '{kind}'")
    if kind not in ("bind", "volume", "tmpfs"):
        raise ContainerError(f'invalid mount config for type "{kind}": mount type unknown')
    target = _check_target(kind, target, text)
    if kind == "bind":
        if not source:
            raise ContainerError('invalid mount config for type "bind": field Source must not '
                                 "be empty")
        if not source.startswith("/"):
            raise ContainerError(f'invalid mount config for type "bind": invalid mount path: '
                                 f"'{source}' mount path must be absolute")
        return MountRequest("bind", target, os.path.normpath(source), readonly=readonly,
                            propagation=propagation or "rprivate", from_flag="--mount")
    if kind == "tmpfs":
        if source:
            raise ContainerError('invalid mount config for type "tmpfs": field Source must not '
                                 "be specified")
        return MountRequest("tmpfs", target, readonly=readonly, tmpfs_options=tuple(tmpfs),
                            from_flag="--mount")
    return MountRequest("volume", target, source, readonly=readonly, nocopy=nocopy,
                        volume_options=tuple(vopts), volume_labels=tuple(vlabels),
                        from_flag="--mount")


def parse_tmpfs(text: str) -> MountRequest:
    """`--tmpfs /run[:size=64m,mode=1777,exec]` (HostConfig.Tmpfs)."""
    target, _, opts = text.partition(":")
    target = _check_target("tmpfs", target, text)
    options = []
    for opt in (o for o in opts.split(",") if o):
        key, eq, value = opt.partition("=")
        if (eq and key not in _TMPFS_DATA) or (not eq and opt not in _TMPFS_FLAGS):
            raise ContainerError(f'invalid tmpfs option ["{opt}"]')
        if key == "size":
            from pybuild.runtime.cgroups import parse_bytes

            opt = f"size={parse_bytes(value)}"
        options.append(opt)
    return MountRequest("tmpfs", target, tmpfs_options=tuple(options), from_flag="--tmpfs",
                        mode=opts, readonly="ro" in options)


def parse_volumes_from(text: str) -> tuple[str, bool | None]:
    """`CTR[:ro|rw]` -> (container, readonly or None to keep each mount's own)."""
    ref, sep, mode = text.partition(":")
    if not ref:
        raise ContainerError(f"invalid volumes-from specification: '{text}'")
    if not sep:
        return ref, None
    readonly = None
    for part in mode.split(","):
        if part in _RW:
            readonly = part == "ro"
        elif part not in (*_LABEL, "nocopy"):
            raise ContainerError(f"invalid mode: {mode}")
    return ref, readonly


def tmpfs_entry(req: MountRequest) -> dict:
    """The OCI mount entry of a tmpfs request: Docker's default flags, then the user's."""
    return {"destination": req.target, "type": "tmpfs", "source": "tmpfs",
            "options": [*TMPFS_DEFAULTS, *req.tmpfs_options]}

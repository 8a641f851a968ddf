"""The image config (OCI image-spec config / Docker's container.image.v1): the container
defaults, the rootfs diff ids and the history, as frozen dataclasses with validation and
canonical JSON bytes. Top-level fields we do not model (Docker's `container_config`,
`docker_version`, ...) are kept in `extra` so a parsed config re-serialises without loss."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pybuild.errors import ImageError
from pybuild.image.manifest import _get, canonical_json, host_platform, load_json, sha256_digest
from pybuild.image.reference import validate_digest

EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def rfc3339(ts: float | None = None) -> str:
    """UTC time as Go's RFC3339Nano without trailing zeros; seconds when ts is integral."""
    ts = time.time() if ts is None else ts
    whole = int(ts)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    frac = f"{ts - whole:.9f}"[2:].rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def parse_time(text: str | None) -> float | None:
    """RFC3339 (with nanoseconds and offsets) -> epoch seconds; None if absent or unreadable."""
    if not text:
        return None
    from datetime import datetime

    s = text.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    # Python keeps microseconds only: trim Go's nanoseconds
    if "." in s:
        head, _, rest = s.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        s = f"{head}.{digits[:6]}{tz}"
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...] = ()
    interval: int = 0  # nanoseconds, as Docker stores them
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
            ("Retries", self.retries),
        ):
            if value:
                d[key] = value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], ref: str | None) -> Healthcheck:
        w = "healthcheck"
        return cls(
            test=tuple(_get(d, "Test", list, w, ref, default=[])),
            interval=_get(d, "Interval", int, w, ref, default=0),
            timeout=_get(d, "Timeout", int, w, ref, default=0),
            start_period=_get(d, "StartPeriod", int, w, ref, default=0),
            start_interval=_get(d, "StartInterval", int, w, ref, default=0),
            retries=_get(d, "Retries", int, w, ref, default=0),
        )


@dataclass(frozen=True)
class ContainerConfig:
    """The `config` object: what a container of this image starts with.
    None means "not set" (inherit / runtime default); an empty tuple means "set to empty"."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()  # "80/tcp"
    env: tuple[str, ...] = ()  # "KEY=value"
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    args_escaped: bool = False
    healthcheck: Healthcheck | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.user:
            d["User"] = self.user
        if self.exposed_ports:
            d["ExposedPorts"] = {p: {} for p in sorted(self.exposed_ports)}
        if self.env:
            d["Env"] = list(self.env)
        if self.entrypoint is not None:
            d["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            d["Cmd"] = list(self.cmd)
        if self.volumes:
            d["Volumes"] = {v: {} for v in sorted(self.volumes)}
        if self.working_dir:
            d["WorkingDir"] = self.working_dir
        if self.labels:
            d["Labels"] = dict(self.labels)
        if self.stop_signal:
            d["StopSignal"] = self.stop_signal
        if self.args_escaped:
            d["ArgsEscaped"] = True
        if self.healthcheck is not None:
            d["Healthcheck"] = self.healthcheck.to_dict()
        if self.on_build:
            d["OnBuild"] = list(self.on_build)
        if self.shell is not None:
            d["Shell"] = list(self.shell)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, ref: str | None = None) -> ContainerConfig:
        if not d:
            return cls()
        w = "image config"
        hc = _get(d, "Healthcheck", dict, w, ref)
        entry = _get(d, "Entrypoint", (list, str), w, ref)
        cmd = _get(d, "Cmd", (list, str), w, ref)
        shell = _get(d, "Shell", list, w, ref)
        return cls(
            user=_get(d, "User", str, w, ref, default=""),
            exposed_ports=tuple(sorted(_get(d, "ExposedPorts", dict, w, ref, default={}))),
            env=tuple(_strings(_get(d, "Env", list, w, ref, default=[]), "Env", ref)),
            entrypoint=None
            if entry is None
            else tuple(_strings(_listify(entry), "Entrypoint", ref)),
            cmd=None if cmd is None else tuple(_strings(_listify(cmd), "Cmd", ref)),
            volumes=tuple(sorted(_get(d, "Volumes", dict, w, ref, default={}))),
            working_dir=_get(d, "WorkingDir", str, w, ref, default=""),
            labels=dict(_get(d, "Labels", dict, w, ref, default={})),
            stop_signal=_get(d, "StopSignal", str, w, ref, default=""),
            args_escaped=bool(_get(d, "ArgsEscaped", bool, w, ref, default=False)),
            healthcheck=Healthcheck.from_dict(hc, ref) if hc is not None else None,
            on_build=tuple(_strings(_get(d, "OnBuild", list, w, ref, default=[]), "OnBuild", ref)),
            shell=None if shell is None else tuple(_strings(shell, "Shell", ref)),
        )

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            k, _, v = item.partition("=")
            out[k] = v
        return out


def _listify(v: Any) -> list:
    return [v] if isinstance(v, str) else v


def _strings(items: list, key: str, ref: str | None) -> list[str]:
    if not all(isinstance(i, str) for i in items):
        raise ImageError(f"invalid image config: {key} must be a list of strings", ref=ref)
    return items


@dataclass(frozen=True)
class HistoryEntry:
    created: str | None = None
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.created:
            d["created"] = self.created
        if self.created_by:
            d["created_by"] = self.created_by
        if self.author:
            d["author"] = self.author
        if self.comment:
            d["comment"] = self.comment
        if self.empty_layer:
            d["empty_layer"] = True
        return d

    @classmethod
    def from_dict(cls, d: Any, ref: str | None = None) -> HistoryEntry:
        if not isinstance(d, dict):
            raise ImageError("invalid image config: a history entry is not an object", ref=ref)
        w = "history entry"
        return cls(
            created=_get(d, "created", str, w, ref),
            created_by=_get(d, "created_by", str, w, ref, default=""),
            author=_get(d, "author", str, w, ref, default=""),
            comment=_get(d, "comment", str, w, ref, default=""),
            empty_layer=bool(_get(d, "empty_layer", bool, w, ref, default=False)),
        )


@dataclass(frozen=True)
class ImageConfig:
    architecture: str
    os: str
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    created: str | None = None
    author: str = ""
    variant: str | None = None
    os_version: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, **kw: Any) -> ImageConfig:
        """An empty config for the host platform."""
        p = host_platform()
        kw.setdefault("architecture", p.architecture)
        kw.setdefault("os", p.os)
        if p.variant and p.architecture != "arm64":
            kw.setdefault("variant", p.variant)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.extra)
        d["architecture"] = self.architecture
        d["os"] = self.os
        if self.variant:
            d["variant"] = self.variant
        if self.os_version:
            d["os.version"] = self.os_version
        if self.created:
            d["created"] = self.created
        if self.author:
            d["author"] = self.author
        d["config"] = self.config.to_dict()
        d["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        if self.history:
            d["history"] = [h.to_dict() for h in self.history]
        return d

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    def digest(self) -> str:
        """The image id."""
        return sha256_digest(self.to_bytes())

    def layer_history(self) -> list[tuple[HistoryEntry, str | None]]:
        """History entries paired with the diff id of the layer each made (None if empty)."""
        out: list[tuple[HistoryEntry, str | None]] = []
        ids = iter(self.diff_ids)
        for h in self.history:
            out.append((h, None if h.empty_layer else next(ids, None)))
        return out


_MODELLED = {
    "architecture",
    "os",
    "variant",
    "os.version",
    "created",
    "author",
    "config",
    "rootfs",
    "history",
}


def parse_config(data: bytes, ref: str | None = None) -> ImageConfig:
    """Parse an image config; a clear ImageError for corrupt JSON or a missing/invalid field."""
    obj = load_json(data, "image config", ref)
    w = "image config"
    rootfs = _get(obj, "rootfs", dict, w, ref, required=True)
    if rootfs.get("type") != "layers":
        raise ImageError(
            f"invalid image config: rootfs type is {rootfs.get('type')!r}, expected 'layers'",
            ref=ref,
        )
    diff_ids = _get(rootfs, "diff_ids", list, w, ref, default=[])
    for d in diff_ids:
        if not isinstance(d, str):
            raise ImageError("invalid image config: a diff id is not a string", ref=ref)
        validate_digest(d, ref=ref)
    history = _get(obj, "history", list, w, ref, default=[])
    cfg = _get(obj, "config", dict, w, ref)
    if cfg is None:  # very old Docker images keep it in container_config only
        cfg = _get(obj, "container_config", dict, w, ref)
    return ImageConfig(
        architecture=_get(obj, "architecture", str, w, ref, required=True),
        os=_get(obj, "os", str, w, ref, required=True),
        config=ContainerConfig.from_dict(cfg, ref),
        diff_ids=tuple(diff_ids),
        history=tuple(HistoryEntry.from_dict(h, ref) for h in history),
        created=_get(obj, "created", str, w, ref),
        author=_get(obj, "author", str, w, ref, default=""),
        variant=_get(obj, "variant", str, w, ref),
        os_version=_get(obj, "os.version", str, w, ref),
        extra={k: v for k, v in obj.items() if k not in _MODELLED},
    )

"""OCI 1.1 and Docker schema2 manifests, image indexes / manifest lists and descriptors as frozen
dataclasses: parse with validation, write canonical JSON, convert between the two formats, and
pick a platform from an index. Image configs live in pybuild.image.config."""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pybuild.errors import ImageError
from pybuild.image.reference import validate_digest

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
MT_DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
MT_DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
MT_DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
CONFIG_TYPES = (MT_OCI_CONFIG, MT_DOCKER_CONFIG)
FORMATS = ("oci", "docker")

_LAYER_COMPRESSION = {
    MT_OCI_LAYER: "none",
    MT_OCI_LAYER_GZIP: "gzip",
    MT_OCI_LAYER_ZSTD: "zstd",
    MT_DOCKER_LAYER: "none",
    MT_DOCKER_LAYER_GZIP: "gzip",
    MT_DOCKER_LAYER_ZSTD: "zstd",
    MT_DOCKER_FOREIGN_LAYER: "gzip",
    # non-distributable OCI layers (deprecated, still seen in the wild)
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
}
_LAYER_TYPES = {
    ("oci", "none"): MT_OCI_LAYER,
    ("oci", "gzip"): MT_OCI_LAYER_GZIP,
    ("oci", "zstd"): MT_OCI_LAYER_ZSTD,
    ("docker", "none"): MT_DOCKER_LAYER,
    ("docker", "gzip"): MT_DOCKER_LAYER_GZIP,
    ("docker", "zstd"): MT_DOCKER_LAYER_ZSTD,
}


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Stable bytes for a JSON value: sorted keys, no spaces, so digests are reproducible."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def layer_compression(media_type: str) -> str:
    """'none' | 'gzip' | 'zstd' for a layer media type of either format."""
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise ImageError(f"unsupported layer media type {media_type!r}") from None


def layer_media_type(compression: str, fmt: str = "oci") -> str:
    try:
        return _LAYER_TYPES[(fmt, compression)]
    except KeyError:
        raise ImageError(f"no {fmt} layer media type for compression {compression!r}") from None


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ImageError(f"unknown manifest format {fmt!r} (expected oci or docker)")
    return fmt


def load_json(data: bytes, what: str, ref: str | None = None) -> dict[str, Any]:
    """Decode a JSON object or raise a clear ImageError naming what was corrupt."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ImageError(f"corrupt {what}: invalid JSON: {e}", ref=ref) from None
    if not isinstance(obj, dict):
        raise ImageError(f"corrupt {what}: expected a JSON object", ref=ref)
    return obj


def _get(
    obj: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    what: str,
    ref,
    default=None,
    required: bool = False,
):
    if key not in obj or obj[key] is None:
        if required:
            raise ImageError(f"invalid {what}: missing field {key!r}", ref=ref)
        return default
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ImageError(f"invalid {what}: field {key!r} has the wrong type", ref=ref)
    return value


@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        if self.os_version:
            d["os.version"] = self.os_version
        if self.os_features:
            d["os.features"] = list(self.os_features)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], ref: str | None = None) -> Platform:
        what = "platform"
        return cls(
            architecture=_get(d, "architecture", str, what, ref, required=True),
            os=_get(d, "os", str, what, ref, required=True),
            variant=_get(d, "variant", str, what, ref),
            os_version=_get(d, "os.version", str, what, ref),
            os_features=tuple(_get(d, "os.features", list, what, ref, default=[])),
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform() -> Platform:
    machine = _platform.machine().lower()
    arch, variant = {
        "x86_64": ("amd64", None),
        "amd64": ("amd64", None),
        "aarch64": ("arm64", "v8"),
        "arm64": ("arm64", "v8"),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i386": ("386", None),
        "i686": ("386", None),
        "ppc64le": ("ppc64le", None),
        "s390x": ("s390x", None),
        "riscv64": ("riscv64", None),
    }.get(machine, (machine, None))
    return Platform(architecture=arch, os="linux", variant=variant)


def parse_platform(text: str) -> Platform:
    """`linux/arm64/v8`, `linux/amd64` -> Platform."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageError(f"invalid platform {text!r}: expected os/arch[/variant]")
    return Platform(
        os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else None
    )


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        return d

    @classmethod
    def from_dict(cls, d: Any, ref: str | None = None) -> Descriptor:
        what = "descriptor"
        if not isinstance(d, dict):
            raise ImageError("invalid descriptor: expected a JSON object", ref=ref)
        digest = _get(d, "digest", str, what, ref, required=True)
        validate_digest(digest, ref=ref)
        size = _get(d, "size", int, what, ref, required=True)
        if size < 0:
            raise ImageError(f"invalid descriptor: negative size for {digest}", ref=ref)
        plat = _get(d, "platform", dict, what, ref)
        return cls(
            media_type=_get(d, "mediaType", str, what, ref, required=True),
            digest=digest,
            size=size,
            urls=tuple(_get(d, "urls", list, what, ref, default=[])),
            annotations=dict(_get(d, "annotations", dict, what, ref, default={})),
            platform=Platform.from_dict(plat, ref) if plat is not None else None,
            artifact_type=_get(d, "artifactType", str, what, ref),
        )


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker schema2; `media_type` says which)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = MT_OCI_MANIFEST
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    schema_version: int = 2

    @property
    def format(self) -> str:
        return "docker" if self.media_type == MT_DOCKER_MANIFEST else "oci"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.subject is not None:
            d["subject"] = self.subject.to_dict()
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        return d

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    def digest(self) -> str:
        return sha256_digest(self.to_bytes())

    def converted(self, fmt: str) -> Manifest:
        """The same image in the other format: media types of manifest, config and layers."""
        check_format(fmt)
        if fmt == self.format:
            return self
        layers = tuple(
            replace(layer, media_type=layer_media_type(layer_compression(layer.media_type), fmt))
            for layer in self.layers
        )
        return replace(
            self,
            media_type=MT_DOCKER_MANIFEST if fmt == "docker" else MT_OCI_MANIFEST,
            config=replace(
                self.config, media_type=MT_DOCKER_CONFIG if fmt == "docker" else MT_OCI_CONFIG
            ),
            layers=layers,
            # Docker schema2 has no subject or artifactType
            subject=None if fmt == "docker" else self.subject,
            artifact_type=None if fmt == "docker" else self.artifact_type,
        )


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    manifests: tuple[Descriptor, ...]
    media_type: str = MT_OCI_INDEX
    annotations: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = 2

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "manifests": [m.to_dict() for m in self.manifests],
        }
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    def select(self, want: Platform | None = None, ref: str | None = None) -> Descriptor:
        """The manifest for a platform (the host's by default), as containerd matches them."""
        want = want or host_platform()
        images = [
            m
            for m in self.manifests
            if m.media_type in MANIFEST_TYPES or m.media_type in INDEX_TYPES
        ]
        if len(images) == 1 and images[0].platform is None:
            return images[0]
        exact = loose = None
        for m in images:
            p = m.platform
            if p is None or p.os != want.os or p.architecture != want.architecture:
                continue
            if _variant(p) == _variant(want):
                exact = exact or m
            elif not p.variant or not want.variant:
                loose = loose or m
        chosen = exact or loose
        if chosen is None:
            have = ", ".join(str(m.platform) for m in images if m.platform) or "none"
            raise ImageError(f"no image for platform {want} in the index (have: {have})", ref=ref)
        return chosen


def _variant(p: Platform) -> str | None:
    # arm64 means v8 and arm means v7 unless said otherwise (containerd's normalisation)
    if p.variant:
        return p.variant
    return {"arm64": "v8", "arm": "v7"}.get(p.architecture)


def parse_manifest(
    data: bytes, ref: str | None = None, media_type: str | None = None
) -> Manifest | Index:
    """Parse a manifest or an index; raise ImageError for anything corrupt or unsupported."""
    obj = load_json(data, "manifest", ref)
    version = obj.get("schemaVersion")
    mt = obj.get("mediaType") or media_type
    if version == 1 or mt in (MT_DOCKER_SCHEMA1, MT_DOCKER_SCHEMA1_SIGNED):
        raise ImageError("unsupported manifest: Docker schema 1 is deprecated", ref=ref)
    if version != 2:
        raise ImageError(f"invalid manifest: schemaVersion is {version!r}, expected 2", ref=ref)
    if mt is None:  # OCI makes mediaType optional: guess from the shape
        mt = MT_OCI_INDEX if "manifests" in obj else MT_OCI_MANIFEST
    if not isinstance(mt, str):
        raise ImageError("invalid manifest: mediaType is not a string", ref=ref)
    what = "manifest"
    if mt in INDEX_TYPES:
        entries = _get(obj, "manifests", list, "index", ref, required=True)
        return Index(
            manifests=tuple(Descriptor.from_dict(m, ref) for m in entries),
            media_type=mt,
            annotations=dict(_get(obj, "annotations", dict, what, ref, default={})),
        )
    if mt not in MANIFEST_TYPES:
        raise ImageError(f"unsupported manifest media type {mt!r}", ref=ref)
    config = Descriptor.from_dict(_get(obj, "config", dict, what, ref, required=True), ref)
    layers = _get(obj, "layers", list, what, ref, required=True)
    subject = _get(obj, "subject", dict, what, ref)
    return Manifest(
        config=config,
        layers=tuple(Descriptor.from_dict(layer, ref) for layer in layers),
        media_type=mt,
        annotations=dict(_get(obj, "annotations", dict, what, ref, default={})),
        subject=Descriptor.from_dict(subject, ref) if subject is not None else None,
        artifact_type=_get(obj, "artifactType", str, what, ref),
    )


def parse_image_manifest(data: bytes, ref: str | None = None) -> Manifest:
    m = parse_manifest(data, ref)
    if not isinstance(m, Manifest):
        raise ImageError("expected an image manifest, got an index", ref=ref)
    return m

"""Values of the store: digests, chain ids, and the frozen records Store returns."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pybuild.errors import ImageError

CHUNK = 1 << 20
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise ImageError(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """OCI chain ids: the first is the diff id, then sha256("<parent chain id> <diff id>")."""
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out


def chain_id(parent: str | None, diff_id: str) -> str:
    return diff_id if parent is None else sha256_digest(f"{parent} {diff_id}".encode())


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class ImageRecord:
    id: str                      # config digest
    config_media_type: str
    created: float
    size: int
    parent: str | None
    diff_ids: tuple[str, ...]

    @property
    def chain_ids(self) -> list[str]:
        return chain_ids(self.diff_ids)


@dataclass(frozen=True)
class ManifestRecord:
    image_id: str
    digest: str
    media_type: str


@dataclass(frozen=True)
class TagRecord:
    reference: str
    image_id: str
    created: float


@dataclass(frozen=True)
class LayerBlob:
    diff_id: str
    digest: str
    compression: str             # none | gzip | zstd
    size: int
    uncompressed_size: int
    media_type: str | None = None


@dataclass(frozen=True)
class SnapshotRecord:
    chain_id: str
    n: int
    parent: str | None
    diff_id: str
    size: int
    created: float

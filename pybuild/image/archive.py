"""Image archives: write `docker save`'s format (manifest.json, repositories, <config>.json,
layer tars) and OCI image layouts (oci-layout, index.json, blobs/sha256) as a tar; read
both back, plain or gzip/zstd-compressed, verifying every digest on the way in."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from pybuild.errors import ImageError
from pybuild.image import reference as refs
from pybuild.image.compress import DecompressReader
from pybuild.image.config import parse_config
from pybuild.image.images import Images
from pybuild.image.manifest import (
    INDEX_TYPES,
    MT_DOCKER_CONFIG,
    MT_OCI_INDEX,
    Descriptor,
    Index,
    Manifest,
    layer_compression,
    parse_manifest,
    sha256_digest,
)

OCI_REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    tar.addfile(info)


def _add_stream(tar: tarfile.TarFile, name: str, src: BinaryIO, tmp_dir: str) -> None:
    """A member whose size is not known up front: spool it, then add it."""
    with tempfile.TemporaryFile(dir=tmp_dir) as spool:
        shutil.copyfileobj(src, spool, 1 << 20)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = spool.tell(), 0o644, 0
        spool.seek(0)
        tar.addfile(info, spool)


def save(images: Images, names: list[str], out: BinaryIO, fmt: str = "docker-archive") -> None:
    """Write the images `names` (references or ids) to `out` as a docker or OCI archive."""
    if fmt not in ("docker-archive", "oci-archive"):
        raise ImageError(f"unknown archive format {fmt!r} (docker-archive or oci-archive)")
    chosen: dict[str, list[str]] = {}  # image id -> full refs to record
    for text in names:
        image_id = images.resolve(text)
        tags = chosen.setdefault(image_id, [])
        try:
            ref = refs.parse_normalized(text)
        except ImageError:
            ref = None  # an id prefix: Docker records no tag
        if ref is not None and not ref.digest:
            full = str(ref.with_default_tag())
            have = images.get(image_id).tags
            if full in have:
                tags.append(full)
            elif ref.tag is None:  # `save busybox` saves every busybox tag
                tags.extend(t for t in have if refs.parse(t).name == ref.name)
    write_archive(images, chosen, out, fmt)


def write_archive(images: Images, chosen: dict[str, list[str]], out: BinaryIO,
                  fmt: str = "docker-archive") -> None:
    """Write images (id -> the full references to record for it, tagged in the store or
    not: `pybuild --output type=oci,name=...`) to `out` as a docker or OCI archive."""
    if fmt not in ("docker-archive", "oci-archive"):
        raise ImageError(f"unknown archive format {fmt!r} (docker-archive or oci-archive)")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if fmt == "docker-archive":
            _write_docker(images, chosen, tar)
        else:
            _write_oci(images, chosen, tar)


def _write_docker(images: Images, chosen: dict[str, list[str]], tar: tarfile.TarFile) -> None:
    entries, repositories, written = [], {}, set()
    for image_id, tags in chosen.items():
        image = images.get(image_id)
        hexid = image_id.split(":", 1)[1]
        _add_bytes(tar, f"{hexid}.json", image.config_bytes)
        layer_paths = []
        for diff_id in image.config.diff_ids:
            lhex = diff_id.split(":", 1)[1]
            path = f"{lhex}/layer.tar"
            if lhex not in written:
                _add_dir(tar, lhex)
                _add_bytes(tar, f"{lhex}/VERSION", b"1.0")
                with images.open_layer_tar(diff_id) as src:
                    _add_stream(tar, path, src, images.store.tmp_dir)
                written.add(lhex)
            layer_paths.append(path)
        familiar = [refs.familiar(t) for t in tags]
        entries.append({"Config": f"{hexid}.json", "RepoTags": familiar or None, "Layers": layer_paths})
        for t in tags:
            r = refs.parse(t)
            repositories.setdefault(refs.familiar(r.name), {})[r.tag] = hexid
    _add_bytes(tar, "manifest.json", json.dumps(entries).encode())
    if repositories:
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())


def _write_oci(images: Images, chosen: dict[str, list[str]], tar: tarfile.TarFile) -> None:
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    _add_dir(tar, "blobs")
    _add_dir(tar, "blobs/sha256")
    written: set[str] = set()

    def blob_from_store(digest: str) -> None:
        if digest in written:
            return
        with images.store.open_blob(digest) as f:
            info = tarfile.TarInfo(f"blobs/sha256/{digest.split(':', 1)[1]}")
            info.size, info.mode, info.mtime = os.fstat(f.fileno()).st_size, 0o644, 0
            tar.addfile(info, f)
        written.add(digest)

    descriptors = []
    for image_id, tags in chosen.items():
        manifest = images.manifest(image_id, "oci")
        data = manifest.to_bytes()
        digest = sha256_digest(data)
        blob_from_store(image_id)
        for layer in manifest.layers:
            blob_from_store(layer.digest)
        if digest not in written:
            _add_bytes(tar, f"blobs/sha256/{digest.split(':', 1)[1]}", data)
            written.add(digest)
        for t in tags or [None]:
            ann = {}
            if t:
                ann = {CONTAINERD_NAME: t, OCI_REF_NAME: refs.parse(t).tag or "latest"}
            descriptors.append(Descriptor(manifest.media_type, digest, len(data), annotations=ann))
    _add_bytes(tar, "index.json", Index(manifests=tuple(descriptors), media_type=MT_OCI_INDEX).to_bytes())


@dataclass(frozen=True)
class Loaded:
    image_id: str
    tags: tuple[str, ...]


class _Staging:
    """An unpacked archive in the store's tmp dir, read by member name, never followed out."""

    def __init__(self, src: BinaryIO, tmp_dir: str):
        self.dir = tempfile.mkdtemp(dir=tmp_dir, prefix="load-")
        self.links: dict[str, str] = {}
        try:
            stream = DecompressReader(src)  # plain, gzip or zstd, by magic
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for m in tar:
                    self._extract(tar, m)
        except (tarfile.TarError, EOFError, OSError, zlib.error, ImageError) as e:
            self.close()
            raise ImageError(f"corrupt or truncated archive: {e}") from None
        except BaseException:
            self.close()
            raise

    def _extract(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = os.path.normpath(m.name.lstrip("/"))
        if name.startswith("..") or name == ".":
            return
        dest = os.path.join(self.dir, name)
        if m.isdir():
            os.makedirs(dest, exist_ok=True)
        elif m.isfile():
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            f = tar.extractfile(m)
            assert f is not None
            with open(dest, "wb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
            if os.path.getsize(dest) != m.size:
                raise ImageError(f"corrupt or truncated archive: member {m.name} is short")
        elif m.issym() or m.islnk():
            # skopeo writes legacy <id>/layer.tar as links to <digest>.tar: keep them as names
            target = m.linkname if m.islnk() else os.path.normpath(
                os.path.join(os.path.dirname(name), m.linkname))
            self.links[name] = os.path.normpath(target.lstrip("/"))

    def path(self, name: str) -> str:
        name = os.path.normpath(name.lstrip("/"))
        for _ in range(8):
            if name not in self.links:
                break
            name = self.links[name]
        if name.startswith(".."):
            raise ImageError(f"archive member {name!r} points outside the archive")
        p = os.path.join(self.dir, name)
        if not os.path.isfile(p):
            raise ImageError(f"archive is missing {name!r}")
        return p

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read()

    def exists(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.dir, name)) or name in self.links

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def load(images: Images, src: BinaryIO) -> list[Loaded]:
    """Load every image of a docker or OCI archive; verify digests and diff ids."""
    # hold the store: gc must not collect staged files or new layers before the image
    # naming them is recorded
    with images.store.hold():
        stage = _Staging(src, images.store.tmp_dir)
        try:
            if stage.exists("manifest.json"):
                return _load_docker(images, stage)
            if stage.exists("index.json"):
                return _load_oci(images, stage)
            raise ImageError("not an image archive: neither manifest.json nor index.json found")
        finally:
            stage.close()


def _unpack_layers(images: Images, config_bytes: bytes, layers: list[tuple[str, Descriptor | None]],
                   what: str) -> None:
    """Unpack each layer onto its parent's chain, checking it against the config's diff ids."""
    config = parse_config(config_bytes, ref=what)
    if len(config.diff_ids) != len(layers):
        raise ImageError(
            f"{what}: the config lists {len(config.diff_ids)} layers but the manifest {len(layers)}")
    parent = None
    for want, (path, desc) in zip(config.diff_ids, layers, strict=True):
        with open(path, "rb") as f:
            layer = images.unpack_layer(
                parent, f, expected_diff_id=want,
                expected_digest=desc.digest if desc else None, size=desc.size if desc else None,
                media_type=desc.media_type if desc else None)
        parent = layer.chain_id


def _load_docker(images: Images, stage: _Staging) -> list[Loaded]:
    try:
        entries = json.loads(stage.read("manifest.json"))
    except json.JSONDecodeError as e:
        raise ImageError(f"corrupt manifest.json in archive: {e}") from None
    if not isinstance(entries, list):
        raise ImageError("corrupt manifest.json in archive: expected a list")
    out = []
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("Config"), str) or not isinstance(e.get("Layers"), list):
            raise ImageError("corrupt manifest.json in archive: an entry lacks Config or Layers")
        config_bytes = stage.read(e["Config"])
        base = os.path.basename(e["Config"]).removesuffix(".json")
        if len(base) == 64 and sha256_digest(config_bytes) != f"sha256:{base}":
            raise ImageError(f"digest mismatch: config {e['Config']} does not hash to its name")
        _unpack_layers(images, config_bytes, [(stage.path(p), None) for p in e["Layers"]], e["Config"])
        tags = [str(refs.parse_tagged(t)) for t in (e.get("RepoTags") or [])]
        image_id = images.put(config_bytes, tags=tags, config_media_type=MT_DOCKER_CONFIG)
        out.append(Loaded(image_id, tuple(tags)))
    return out


def _verified_blob(stage: _Staging, d: Descriptor) -> str:
    path = stage.path(f"blobs/{d.digest.replace(':', '/', 1)}")
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    size = os.path.getsize(path)
    if size != d.size:
        raise ImageError(f"blob {d.digest}: size {size} but the descriptor says {d.size} (truncated?)")
    if f"sha256:{h.hexdigest()}" != d.digest:
        raise ImageError(f"blob {d.digest}: digest mismatch (content hashes to sha256:{h.hexdigest()})")
    return path


def _load_oci(images: Images, stage: _Staging) -> list[Loaded]:
    index = parse_manifest(stage.read("index.json"), ref="index.json", media_type=MT_OCI_INDEX)
    if not isinstance(index, Index):
        raise ImageError("index.json is not an image index")
    out = []
    for desc in index.manifests:
        if desc.media_type in INDEX_TYPES:  # a nested multi-platform index: take ours
            with open(_verified_blob(stage, desc), "rb") as f:
                nested = parse_manifest(f.read(), ref=desc.digest)
            assert isinstance(nested, Index)
            target = nested.select(ref=desc.digest)
        else:
            target = desc
        with open(_verified_blob(stage, target), "rb") as f:
            manifest = parse_manifest(f.read(), ref=target.digest)
        if not isinstance(manifest, Manifest):
            raise ImageError(f"{target.digest}: expected an image manifest")
        with open(_verified_blob(stage, manifest.config), "rb") as f:
            config_bytes = f.read()
        for layer in manifest.layers:
            layer_compression(layer.media_type)  # refuse unknown layer types clearly
        paths = [(_verified_blob(stage, layer), layer) for layer in manifest.layers]
        _unpack_layers(images, config_bytes, paths, target.digest)
        tags = []
        # a full name from containerd's annotation, or a ref.name that is more than a tag
        name = desc.annotations.get(CONTAINERD_NAME) or desc.annotations.get(OCI_REF_NAME, "")
        if "/" in name:
            with contextlib.suppress(ImageError):
                tags.append(str(refs.parse_tagged(name)))
        image_id = images.put(config_bytes, tags=tags, config_media_type=manifest.config.media_type)
        out.append(Loaded(image_id, tuple(tags)))
    return out

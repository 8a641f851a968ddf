"""Push a tagged image from the store: layer blobs in bounded parallel threads (HEAD
first; a blob the registry holds in another repository is mounted, not sent), then the
config, then the manifest under the tag. The manifest a pull brought is pushed as it was,
so the digest stays the same; otherwise one is written for the blobs the store holds."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

from pybuild.errors import ImageError, PybuildError
from pybuild.image import reference as refs
from pybuild.image.manifest import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_MANIFEST,
    MT_OCI_MANIFEST,
    Descriptor,
    Manifest,
    layer_media_type,
    parse_manifest,
)
from pybuild.image.store import LayerBlob, Store
from pybuild.registry import events as ev
from pybuild.registry.client import RegistryClient
from pybuild.registry.endpoints import endpoint
from pybuild.registry.options import RegistryOptions

_PREFERENCE = {"gzip": 0, "zstd": 1, "none": 2}


@dataclasses.dataclass(frozen=True)
class PushResult:
    ref: str
    digest: str   # of the manifest pushed
    size: int     # of the manifest pushed


def layer_blob(store: Store, diff_id: str, chain: str, ref: str | None = None) -> LayerBlob:
    """The stored blob to send for a layer: gzip if there is one (what every client reads);
    a built layer's blob is compressed now, the first time something needs it."""
    blobs = sorted(store.layer_blobs(diff_id), key=lambda b: _PREFERENCE.get(b.compression, 9))
    if blobs:
        return blobs[0]
    if store.snapshot(chain) is None:
        raise ImageError(f"layer {diff_id} has neither a blob nor a snapshot in the store", ref=ref)
    from pybuild.image.layers import ensure_blob

    return ensure_blob(store, chain, "gzip")


def image_manifest(store: Store, image_id: str, ref: str | None = None) -> tuple[bytes, str]:
    """(manifest bytes, media type) to push for an image."""
    for rec in store.manifests(image_id):
        if not store.has_blob(rec.digest):
            continue
        raw = store.read_blob(rec.digest)
        parsed = parse_manifest(raw, ref, rec.media_type)
        if isinstance(parsed, Manifest) and all(store.has_blob(d.digest) for d in parsed.layers):
            return raw, parsed.media_type
    record = store.image(image_id)
    if record is None:
        raise ImageError(f"No such image: {image_id}", ref=ref)
    docker = record.config_media_type == MT_DOCKER_CONFIG
    fmt = "docker" if docker else "oci"
    layers = []
    for diff_id, chain in zip(record.diff_ids, record.chain_ids, strict=True):
        blob = layer_blob(store, diff_id, chain, ref)
        layers.append(Descriptor(blob.media_type or layer_media_type(blob.compression, fmt),
                                 blob.digest, blob.size))
    config = Descriptor(record.config_media_type, image_id, store.blob_size(image_id))
    manifest = Manifest(config=config, layers=tuple(layers),
                        media_type=MT_DOCKER_MANIFEST if docker else MT_OCI_MANIFEST)
    return manifest.to_bytes(), manifest.media_type


def push(store: Store, text: str, options: RegistryOptions | None = None,
         events: ev.Events = ev.ignore) -> PushResult:
    ref = refs.parse_normalized(text)
    if ref.digest:
        raise ImageError("cannot push a digest reference", ref=text)
    ref = ref.with_default_tag()
    image_id = store.tag(str(ref))
    if image_id is None:
        raise ImageError(f"An image does not exist locally with the tag: {ref.familiar_name}")
    options = options or RegistryOptions()
    with store.hold():
        raw, media_type = image_manifest(store, image_id, str(ref))
        manifest = parse_manifest(raw, str(ref), media_type)
        assert isinstance(manifest, Manifest)
        with RegistryClient(endpoint(ref.domain), options, ref=str(ref)) as client:
            events(ev.Progress("", f"The push refers to repository [{ref.name}]"))
            sources = _mount_sources(store, ref)
            layers = list(reversed(manifest.layers))  # Docker lists the top layer first
            for d in layers:
                events(ev.Progress(ev.short_id(d.digest), ev.PREPARING))
            for n, d in enumerate(layers):
                if n >= options.parallel:
                    events(ev.Progress(ev.short_id(d.digest), ev.WAITING))
            jobs = [(d, True) for d in layers] + [(manifest.config, False)]
            with ThreadPoolExecutor(max_workers=max(1, options.parallel)) as pool:
                futures = [pool.submit(_push_blob, store, client, ref, d, sources, events, shown)
                           for d, shown in jobs]
                errors = []
                for f in futures:
                    try:
                        f.result()
                    except BaseException as e:  # noqa: BLE001 - reported below, first first
                        errors.append(e)
                if errors:
                    raise next((e for e in errors if isinstance(e, PybuildError)), errors[0])
            digest = client.put_manifest(ref.path, ref.tag, raw, manifest.media_type)
        store.put_blob(raw, expected=digest)
        store.add_manifest(image_id, digest, manifest.media_type)
        store.add_repo_digest(ref.name, digest, image_id)
    events(ev.Progress("", f"{ref.tag}: digest: {digest} size: {len(raw)}"))
    return PushResult(str(ref), digest, len(raw))


def _mount_sources(store: Store, ref: refs.Reference) -> dict[str, str]:
    """blob digest -> another repository of the same registry known to hold it (from the
    repo digests of earlier pulls and pushes)."""
    out: dict[str, str] = {}
    for repository, _digest, image_id in store.repo_digests():
        try:
            other = refs.parse(repository)
        except ImageError:
            continue
        if other.domain != ref.domain or other.path == ref.path:
            continue
        record = store.image(image_id)
        if record is None:
            continue
        out.setdefault(image_id, other.path)
        for diff_id in record.diff_ids:
            for blob in store.layer_blobs(diff_id):
                out.setdefault(blob.digest, other.path)
    return out


def _push_blob(store: Store, client: RegistryClient, ref: refs.Reference, desc: Descriptor,
               sources: dict[str, str], events: ev.Events, shown: bool) -> None:
    sid = ev.short_id(desc.digest)

    def say(status: str, current: int = 0) -> None:
        if shown:
            events(ev.Progress(sid, status, current, desc.size))

    if not store.has_blob(desc.digest):
        raise ImageError(f"blob {desc.digest} is missing from the store", ref=str(ref))
    if client.blob_size(ref.path, desc.digest) is not None:
        say(ev.LAYER_EXISTS)
        return
    location = None
    source = sources.get(desc.digest)
    if source:
        location = client.start_upload(ref.path, desc.digest, mount_from=source)
        if location is None:
            say(f"{ev.MOUNTED_FROM} {source}")
            return
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        say(ev.PUSHING, done)

    client.upload_blob(ref.path, desc.digest, store.blob_size(desc.digest),
                       lambda: store.open_blob(desc.digest), location=location,
                       chunk_size=client.options.chunk_size, progress=progress)
    say(ev.PUSHED)

"""Pull an image into the store. Each missing layer goes through one streaming pass in
two threads: download -> blob file (digest checked) in one, decompress -> unpack into a
staged snapshot (diff id checked) in the other; layers go in bounded parallel, and their
snapshots are installed in chain order. A layer whose snapshot exists is neither downloaded nor unpacked again. Nothing that
fails a check is recorded: the staged blob and snapshot are discarded."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

from pybuild.errors import ImageError, PybuildError
from pybuild.image import reference as refs
from pybuild.image import snapshots
from pybuild.image.config import parse_config
from pybuild.image.manifest import (
    Descriptor,
    Index,
    Manifest,
    Platform,
    layer_compression,
    parse_manifest,
)
from pybuild.image.store import LayerBlob, Store, chain_ids
from pybuild.registry import events as ev
from pybuild.registry.client import RegistryClient
from pybuild.registry.endpoints import endpoint
from pybuild.registry.options import RegistryOptions
from pybuild.registry.streams import ChunkReader, PrefetchReader


@dataclasses.dataclass(frozen=True)
class PullResult:
    ref: str            # the full reference pulled (docker.io/library/busybox:latest)
    image_id: str       # config digest
    digest: str         # manifest (or index) digest: the repo digest
    updated: bool       # False: the tag already named this image ("Image is up to date")


class _Cancelled(Exception):
    pass


def pull(store: Store, text: str, options: RegistryOptions | None = None,
         platform: Platform | None = None, events: ev.Events = ev.ignore) -> PullResult:
    """Pull `text` (a Docker reference) for `platform` (default: the host's)."""
    ref = refs.parse_normalized(text).with_default_tag()
    options = options or RegistryOptions()
    with RegistryClient(endpoint(ref.domain), options, ref=str(ref)) as client, store.hold():
        return _Pull(store, client, ref, options, platform, events).run()


class _Pull:
    def __init__(self, store: Store, client: RegistryClient, ref: refs.Reference,
                 options: RegistryOptions, platform: Platform | None, events: ev.Events):
        self.store, self.client, self.ref = store, client, ref
        self.options, self.platform, self.events = options, platform, events
        self.repo = ref.path
        self.cancelled = threading.Event()

    def run(self) -> PullResult:
        ref = self.ref
        raw, media_type, top_digest = self.client.get_manifest(self.repo, ref.digest or ref.tag)
        self.events(ev.Progress(ref.tag or ref.digest or "", f"Pulling from {ref.path}"))
        parsed = parse_manifest(raw, str(ref), media_type)
        index_raw = None
        if isinstance(parsed, Index):
            index_raw = (raw, parsed.media_type)
            chosen = parsed.select(self.platform, str(ref))
            raw, media_type, _ = self.client.get_manifest(self.repo, chosen.digest)
            parsed = parse_manifest(raw, str(ref), media_type)
            if not isinstance(parsed, Manifest):
                raise ImageError("an index inside an index is not supported", ref=str(ref))
        manifest = parsed
        # get_manifest checked each digest: the top one, and the chosen one (pinned)
        manifest_digest = top_digest if index_raw is None else chosen.digest
        config_bytes = self._config(manifest.config)
        config = parse_config(config_bytes, ref=str(ref))
        self._check_platform(config_bytes)
        diff_ids = list(config.diff_ids)
        if len(diff_ids) != len(manifest.layers):
            raise ImageError(f"manifest has {len(manifest.layers)} layers but the config "
                             f"{len(diff_ids)} diff ids", ref=str(ref))
        self._layers(manifest.layers, diff_ids)
        before = self.store.tag(str(ref)) if ref.tag else None
        record = self.store.add_image(config_bytes, manifest.config.media_type)
        self.store.put_blob(raw, expected=manifest_digest)
        self.store.add_manifest(record.id, manifest_digest, manifest.media_type)
        if index_raw is not None:
            self.store.put_blob(index_raw[0], expected=top_digest)
        self.store.add_repo_digest(ref.name, top_digest, record.id)
        if ref.tag:
            self.store.set_tag(str(ref), record.id)
        return PullResult(str(ref), record.id, top_digest, before != record.id)

    def _config(self, desc: Descriptor) -> bytes:
        if self.store.has_blob(desc.digest):
            return self.store.read_blob(desc.digest)
        data = self.client.get_blob(self.repo, desc.digest, desc.size)
        self.store.put_blob(data, expected=desc.digest)
        return data

    def _check_platform(self, config_bytes: bytes) -> None:
        if self.platform is None:
            return
        import json

        cfg = json.loads(config_bytes)
        got = Platform(cfg.get("architecture", ""), cfg.get("os", ""), cfg.get("variant"))
        want = self.platform
        if (got.os, got.architecture) != (want.os, want.architecture) or (
                want.variant and got.variant and want.variant != got.variant):
            raise ImageError(f"image was found but does not match the specified platform: "
                             f"wanted {want}, actual: {got}", ref=str(self.ref))

    # -- layers

    def _layers(self, layers: tuple[Descriptor, ...], diff_ids: list[str]) -> None:
        chains = chain_ids(diff_ids)
        installed = [threading.Event() for _ in layers]
        todo = []
        for i, desc in enumerate(layers):
            sid = ev.short_id(desc.digest)
            if self.store.snapshot(chains[i]) is not None:
                self.events(ev.Progress(sid, ev.ALREADY_EXISTS))
                installed[i].set()
            else:
                self.events(ev.Progress(sid, ev.PULLING_FS_LAYER))
                todo.append(i)
        for n, i in enumerate(todo):
            if n >= self.options.parallel:
                self.events(ev.Progress(ev.short_id(layers[i].digest), ev.WAITING))
        if not todo:
            return
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=max(1, self.options.parallel)) as pool:
            futures = [pool.submit(self._layer, i, layers[i], diff_ids[i], chains, installed)
                       for i in todo]
            for f in futures:
                try:
                    f.result()
                except BaseException as e:  # noqa: BLE001 - the first real error wins below
                    self.cancelled.set()
                    errors.append(e)
        real = [e for e in errors if not isinstance(e, _Cancelled)]
        if real:
            first = next((e for e in real if isinstance(e, PybuildError)), real[0])
            raise first
        if errors:
            raise errors[0]

    def _layer(self, i: int, desc: Descriptor, diff_id: str, chains: list[str],
               installed: list[threading.Event]) -> None:
        from pybuild.image.compress import DecompressReader
        from pybuild.image.tarstream import LayerStream
        from pybuild.image.unpack import unpack

        sid = ev.short_id(desc.digest)
        try:
            if self.cancelled.is_set():
                raise _Cancelled()
            layer_compression(desc.media_type)  # refuse unknown media types early
            stage = snapshots.staging_dir(self.store)
            writer = None
            try:
                if self.store.has_blob(desc.digest):
                    raw = ChunkReader(_file_chunks(self.store.open_blob(desc.digest),
                                                   self._counter(sid, ev.EXTRACTING, desc.size)))
                else:
                    writer = self.store.blob_writer(expected=desc.digest, size=desc.size)
                    # download, sha256 and blob file in one thread, decompress, diff id
                    # and unpack in this one; the blob writer hashes (not the client)
                    raw = PrefetchReader(self.client.blob_chunks(
                        self.repo, desc.digest, desc.size,
                        self._counter(sid, ev.DOWNLOADING, desc.size), verify=False),
                        sink=writer.write, name=f"fetch-{sid}")
                with raw:
                    try:
                        reader = DecompressReader(raw, hash_raw=False)
                        tar = LayerStream(reader.chunk)
                        unpack(tar, f"{stage}/fs")  # reads to the end: all of the diff id
                    except ImageError:
                        # a bad download says so more precisely than a broken gzip stream
                        raw.drain()
                        self._check_download(writer, desc.digest)
                        raise
                    raw.drain()  # the blob's end: the client's size check runs there
                self._check_download(writer, desc.digest)
                if tar.digest() != diff_id:
                    raise ImageError(f"layer {desc.digest} unpacks to {tar.digest()}, but the "
                                     f"image config says {diff_id}", ref=str(self.ref))
                # one flush makes both the blob file and the staged snapshot durable (both
                # live in the store's tmp/): neither needs an fsync of its own after this
                snapshots.syncfs(stage)
                if writer is not None:
                    self.events(ev.Progress(sid, ev.VERIFYING))
                    writer.commit(synced=True)
                    self.events(ev.Progress(sid, ev.DOWNLOAD_COMPLETE))
                if i > 0:
                    installed[i - 1].wait()
                    if self.store.snapshot(chains[i - 1]) is None:
                        raise _Cancelled()
                snapshots.install(self.store, f"{stage}/fs", chains[i - 1] if i else None,
                                  diff_id, tar.size, synced=True)
                self.store.add_layer_blob(LayerBlob(diff_id, desc.digest, reader.compression,
                                                    desc.size, tar.size, desc.media_type))
            finally:
                if writer is not None and writer.blob is None:
                    writer.abort()
                snapshots.remove_tree(stage)
            self.events(ev.Progress(sid, ev.PULL_COMPLETE))
        finally:
            installed[i].set()

    def _check_download(self, writer, digest: str) -> None:
        """The digest of what came over the network (hashed once, by the blob writer)."""
        if writer is not None and writer.digest() != digest:
            raise self.client.digest_mismatch(digest, writer.digest())

    def _counter(self, sid: str, status: str, total: int):
        done = 0
        cancelled = self.cancelled

        def progress(n: int) -> None:
            nonlocal done
            if cancelled.is_set():
                raise _Cancelled()
            done += n
            self.events(ev.Progress(sid, status, done, total))

        return progress


def _file_chunks(f, progress, block: int = 1 << 20):
    with f:
        while data := f.read(block):
            progress(len(data))
            yield data

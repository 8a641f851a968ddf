"""The pull pipeline under faults, in process: each layer's download runs in a fetch thread
of its own feeding the thread that decompresses and unpacks. A connection dropped for good,
a corrupt byte early in a multi-megabyte layer, a hostile tar inside a blob whose digest is
right: the pull fails, stores nothing, and leaves no fetch thread running."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading

import pytest

from pybuild.errors import ImageError, PybuildError, RegistryError
from pybuild.image.store import Store
from pybuild.registry.client import RegistryClient
from pybuild.registry.puller import pull
from tests.integration.test_registry_client import FAST, push_blob
from tests.plugins.registry_faults import Fault

BIG = {"data/random.bin": os.urandom(5 << 20), "data/text.txt": b"pipeline line\n" * 200_000}


def tar_of(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def push(host: str, repo: str, tars: list[bytes], diff_ids: list[str] | None = None) -> list[str]:
    """Push an image of these plain tars (gzipped), with their diff ids unless others are
    given; returns the layer blob digests."""
    layers = []
    if diff_ids is None:
        diff_ids = ["sha256:" + hashlib.sha256(plain).hexdigest() for plain in tars]
    with RegistryClient(host, FAST) as c:
        for plain in tars:
            blob = gzip.compress(plain, compresslevel=1, mtime=0)
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": push_blob(c, repo, blob), "size": len(blob)})
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": push_blob(c, repo, config), "size": len(config)},
            "layers": layers}).encode()
        c.put_manifest(repo, "1", manifest, "application/vnd.oci.image.manifest.v1+json")
    return [d["digest"] for d in layers]


def fetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fetch-")]


def pull_fails(root, ref: str, error=PybuildError) -> PybuildError:
    with Store(str(root)) as store, pytest.raises(error) as e:
        pull(store, ref, FAST)
    assert fetch_threads() == []
    with Store(str(root)) as store:
        assert store.images() == [] and store.snapshots() == [] and store.tags() == []
        assert store.blobs() == [] or all(
            store.blob_size(d) < 4096 for d in store.blobs())  # the config at most
    assert os.listdir(root / "tmp") == []
    assert os.listdir(root / "snapshots") == []
    return e.value


def test_pipeline_pulls_big_layers(tmp_path, registry, docker_config):
    tars = [tar_of(sorted(BIG.items())), tar_of([("data/small", b"small")])]
    digests = push(registry.host, "team/pipe", tars)
    with Store(str(tmp_path / "root")) as store:
        result = pull(store, f"{registry.host}/team/pipe:1", FAST)
        assert [store.has_blob(d) for d in digests] == [True, True]
        snaps = store.snapshots()
        top = store.snapshot_dir(max(snaps, key=lambda s: s.n))
        assert len(snaps) == 2 and store.image(result.image_id) is not None
    assert fetch_threads() == []
    assert open(f"{top}/data/small", "rb").read() == b"small"
    base = store.snapshot_dir(min(snaps, key=lambda s: s.n))
    for name, data in BIG.items():
        assert open(f"{base}/{name}", "rb").read() == data


def test_connection_dropped_for_good(tmp_path, registry, fault_proxy, docker_config):
    (big,) = push(fault_proxy.host, "team/drop", [tar_of(sorted(BIG.items()))])
    fault_proxy.add(Fault("drop", path=f"/blobs/{big}", method="GET", offset=300_000,
                          times=20))
    err = pull_fails(tmp_path / "root", f"{fault_proxy.host}/team/drop:1", RegistryError)
    assert "download failed at byte" in str(err)


@pytest.mark.parametrize("offset", [40, 2_000_000])
def test_corrupt_byte_in_a_big_layer(tmp_path, registry, fault_proxy, docker_config, offset):
    (big,) = push(fault_proxy.host, "team/bad", [tar_of(sorted(BIG.items()))])
    fault_proxy.add(Fault("corrupt", path=f"/blobs/{big}", method="GET", offset=offset))
    err = pull_fails(tmp_path / "root", f"{fault_proxy.host}/team/bad:1")
    assert "does not match its digest" in str(err)


def test_hostile_tar_with_a_good_digest(tmp_path, registry, docker_config):
    outside = tmp_path / "escaped"
    hostile = tar_of([("data/first", os.urandom(3 << 20)),
                      (f"../../../../../../../..{outside}", b"pwned")])
    push(registry.host, "team/hostile", [hostile])
    err = pull_fails(tmp_path / "root", f"{registry.host}/team/hostile:1", ImageError)
    assert "escapes the layer root" in str(err)
    assert not outside.exists()


def test_wrong_diff_id_keeps_neither_blob_nor_snapshot(tmp_path, registry, docker_config):
    """The blob's digest is right but the config names another diff id: the layer's blob is
    not kept either (it lands together with its snapshot, after one syncfs for both)."""
    plain = tar_of(sorted(BIG.items()))
    push(registry.host, "team/diff", [plain], diff_ids=["sha256:" + "5" * 64])
    err = pull_fails(tmp_path / "root", f"{registry.host}/team/diff:1", ImageError)
    assert "unpacks to sha256:" + hashlib.sha256(plain).hexdigest() in str(err)

"""pyrun push against real registries; what we push is read back by skopeo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from pybuild.image.store import Store
from pybuild.registry.client import RegistryClient
from tests.integration.test_registry_client import FAST
from tests.plugins.registry import make_store_image
from tests.plugins.registry_faults import Fault

LAYERS = [{"etc/hello": b"hello\n"}, {"app/data.bin": bytes(range(256)) * 400}]


def pyrun(*args, input=None):
    return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args], input=input,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def image(pyrun_env, registry):
    ref = f"{registry.host}/team/app:1"
    with Store(str(pyrun_env)) as store:
        image_id = make_store_image(store, ref, LAYERS)
    return ref, image_id


def test_push_then_registry_has_it(image, registry, pyrun_env):
    ref, image_id = image
    r = pyrun("push", ref)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/team/app]"
    assert sum(line.endswith(": Pushed") for line in lines) == 2
    assert lines[-1].startswith("1: digest: sha256:") and " size: " in lines[-1]
    digest = lines[-1].split()[2]
    with RegistryClient(registry.host, FAST) as c:
        raw, mt, got = c.get_manifest("team/app", "1")
        assert got == digest
        m = json.loads(raw)
        assert m["config"]["digest"] == image_id
        assert len(m["layers"]) == 2
        assert "team/app" in c.catalog()
    with Store(str(pyrun_env)) as store:
        assert (f"{registry.host}/team/app", digest, image_id) in store.repo_digests(image_id)
    r = pyrun("push", ref)  # again: the registry has every layer
    assert r.returncode == 0, r.stderr
    assert sum(line.endswith(": Layer already exists") for line in r.stdout.splitlines()) == 2
    assert r.stdout.splitlines()[-1].split()[2] == digest


def test_push_to_other_repository_mounts(image, registry, pyrun_env):
    ref, image_id = image
    assert pyrun("push", ref).returncode == 0
    other = f"{registry.host}/team/copy:2"
    with Store(str(pyrun_env)) as store:
        store.set_tag(other, image_id)
    r = pyrun("push", other)
    assert r.returncode == 0, r.stderr
    assert sum(line.endswith(": Mounted from team/app") for line in r.stdout.splitlines()) == 2


def test_push_quiet_and_errors(image, registry, pyrun_env):
    ref, _ = image
    r = pyrun("push", "-q", ref)
    assert (r.returncode, r.stdout) == (0, ref + "\n")
    r = pyrun("push", f"{registry.host}/team/none:1")
    assert r.returncode == 1
    assert "An image does not exist locally with the tag: " f"{registry.host}/team/none" in r.stderr
    r = pyrun("push", f"{registry.host}/team/app@sha256:" + "a" * 64)
    assert r.returncode == 1 and "digest reference" in r.stderr
    r = pyrun("push", "Bad//Ref")
    assert r.returncode == 1 and "invalid reference format" in r.stderr


def test_push_retries_500(pyrun_env, registry, fault_proxy):
    ref = f"{fault_proxy.host}/team/flaky:1"
    with Store(str(pyrun_env)) as store:
        make_store_image(store, ref, LAYERS)
    fault_proxy.add(Fault("status", path="/blobs/uploads/", method="PUT", times=2, status=500))
    fault_proxy.add(Fault("status", path="/manifests/1", method="PUT", times=1, status=502))
    r = pyrun("push", ref)
    assert r.returncode == 0, r.stderr
    assert [s for m, p, s in fault_proxy.log if m == "PUT" and "/manifests/" in p] == [502, 201]


def test_push_token_registry_needs_login(pyrun_env, registry_token):
    ref = f"{registry_token.host}/team/secret:1"
    with Store(str(pyrun_env)) as store:
        make_store_image(store, ref, LAYERS)
    r = pyrun("push", ref)
    assert r.returncode == 1 and "HTTP 401" in r.stderr
    assert pyrun("login", "-u", registry_token.user, "-p", registry_token.password,
                 registry_token.host).returncode == 0
    r = pyrun("push", ref)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_reads_what_we_push(image, registry, pyrun_env, tmp_path):
    ref, image_id = image
    assert pyrun("push", ref).returncode == 0
    r = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert len(info["Layers"]) == 2 and info["Architecture"] == "amd64"
    r = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{ref}"],
                       capture_output=True, text=True, timeout=60)
    assert json.loads(r.stdout)["rootfs"]["diff_ids"][0].startswith("sha256:")
    r = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}",
                        f"oci:{tmp_path / 'layout'}:copied"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "copied"


def test_push_built_layer_compresses_lazily(registry, pyrun_env, tmp_path):
    """A layer committed from a dir has a snapshot and a diff id but no blob until a push
    needs one: the push makes the gzip blob, and the registry's copy unpacks to that diff id."""
    import gzip
    import hashlib
    import os

    from pybuild.image.layers import commit_dir

    ref = f"{registry.host}/team/built:1"
    with Store(str(pyrun_env)) as store:
        upper = os.path.join(store.tmp_dir, "upper")
        os.makedirs(os.path.join(upper, "etc"))
        with open(os.path.join(upper, "etc", "built"), "w") as f:
            f.write("made by a build step\n")
        layer = commit_dir(store, upper, None)
        assert store.layer_blobs(layer.diff_id) == []
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}).encode()
        store.set_tag(ref, store.add_image(config).id)
    r = pyrun("push", ref)
    assert r.returncode == 0, r.stderr
    with Store(str(pyrun_env)) as store:
        (blob,) = store.layer_blobs(layer.diff_id)
        assert blob.compression == "gzip"
    with RegistryClient(registry.host, FAST) as c:
        data = c.get_blob("team/built", blob.digest)
    assert "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest() == layer.diff_id

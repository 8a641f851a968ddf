"""pyrun pull against real registries: layers unpacked into snapshots in one pass, shared
layers fetched once, platforms chosen from indexes, faults injected by a proxy leave
nothing in the store, and images skopeo pushes pull in."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from pybuild.image.store import Store, chain_ids
from pybuild.registry.client import RegistryClient
from tests.integration.test_registry_client import FAST
from tests.plugins.registry import layer_tar_gz, make_store_image
from tests.plugins.registry_faults import Fault

BASE = {"etc/hello": b"hello\n", "bin/tool": b"#!/bin/sh\necho tool\n"}
TOP = {"app/data.bin": os.urandom(200_000)}


def pyrun(*args, root=None):
    env = dict(os.environ)
    if root is not None:
        env["PYBUILD_ROOT"] = str(root)
    return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def seed(tmp_path, host: str, repo: str, layers) -> str:
    """Push an image made in a scratch store; returns its image id."""
    root = tmp_path / f"seed-{repo.replace('/', '-')}"
    ref = f"{host}/{repo}"
    with Store(str(root)) as s:
        image_id = make_store_image(s, ref, layers)
    r = pyrun("push", ref, root=root)
    assert r.returncode == 0, r.stderr
    return image_id


def assert_clean(root: pathlib.Path) -> None:
    """After a failed pull: no image, no layer, no snapshot, nothing left in tmp/."""
    with Store(str(root)) as s:
        assert s.images() == [] and s.snapshots() == [] and s.tags() == []
        assert s.layer_blobs(layer_tar_gz(BASE)[1]) == []
    assert os.listdir(root / "tmp") == []
    assert os.listdir(root / "snapshots") == []


def test_pull_unpacks_and_records(tmp_path, registry, pyrun_env):
    image_id = seed(tmp_path, registry.host, "team/app:1", [BASE, TOP])
    ref = f"{registry.host}/team/app:1"
    r = pyrun("pull", ref)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "1: Pulling from team/app"
    assert sum(line.endswith(": Pull complete") for line in lines) == 2
    assert sum(line.endswith(": Download complete") for line in lines) == 2
    assert lines[-3].startswith("Digest: sha256:")
    assert lines[-2] == f"Status: Downloaded newer image for {ref}"
    assert lines[-1] == ref
    with Store(str(pyrun_env)) as s:
        assert s.tag(ref) == image_id
        rec = s.image(image_id)
        chains = chain_ids(rec.diff_ids)
        assert open(os.path.join(s.snapshot_dir(chains[0]), "etc/hello"), "rb").read() == b"hello\n"
        assert open(os.path.join(s.snapshot_dir(chains[1]), "app/data.bin"), "rb").read() == TOP["app/data.bin"]
        assert [b.compression for d in rec.diff_ids for b in s.layer_blobs(d)] == ["gzip", "gzip"]
        digest = lines[-3].split()[1]
        assert (f"{registry.host}/team/app", digest, image_id) in s.repo_digests(image_id)
    assert os.listdir(pyrun_env / "tmp") == []
    r = pyrun("pull", ref)  # again: nothing to fetch
    assert r.returncode == 0, r.stderr
    assert sum(line.endswith(": Already exists") for line in r.stdout.splitlines()) == 2
    assert f"Status: Image is up to date for {ref}" in r.stdout
    r = pyrun("pull", "-q", ref)
    assert (r.returncode, r.stdout) == (0, ref + "\n")


def test_shared_layer_fetched_once(tmp_path, registry, fault_proxy, pyrun_env):
    host = fault_proxy.host
    seed(tmp_path, host, "team/one:1", [BASE, TOP])
    seed(tmp_path, host, "team/two:1", [BASE, {"other": b"x" * 1000}])
    assert pyrun("pull", f"{host}/team/one:1").returncode == 0
    fault_proxy.log.clear()
    r = pyrun("pull", f"{host}/team/two:1")
    assert r.returncode == 0, r.stderr
    assert sum(line.endswith(": Already exists") for line in r.stdout.splitlines()) == 1
    blob_gets = [p for m, p, s in fault_proxy.log if m == "GET" and "/blobs/" in p]
    assert len(blob_gets) == 2  # the config and the one new layer


def push_platform_index(c: RegistryClient, repo: str) -> dict[str, str]:
    """Two single-layer images (amd64, arm64) and an index over them; arch -> config digest."""
    entries, configs = [], {}
    for arch in ("amd64", "arm64"):
        blob, diff_id = layer_tar_gz({"arch": arch.encode()})
        config = json.dumps({"architecture": arch, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        for data in (blob, config):
            d = "sha256:" + hashlib.sha256(data).hexdigest()
            c.upload_blob(repo, d, len(data), lambda data=data: __import__("io").BytesIO(data))
        cd = "sha256:" + hashlib.sha256(config).hexdigest()
        configs[arch] = cd
        m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                   "digest": cd, "size": len(config)},
                        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                    "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
                                    "size": len(blob)}]}).encode()
        md = c.put_manifest(repo, arch, m, "application/vnd.docker.distribution.manifest.v2+json")
        entries.append({"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "digest": md, "size": len(m), "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                        "manifests": entries}).encode()
    c.put_manifest(repo, "multi", index, "application/vnd.docker.distribution.manifest.list.v2+json")
    return configs


def test_pull_platform_from_index(registry, pyrun_env):
    with RegistryClient(registry.host, FAST) as c:
        configs = push_platform_index(c, "team/multi")
    ref = f"{registry.host}/team/multi:multi"
    r = pyrun("pull", "--platform", "linux/arm64", ref)
    assert r.returncode == 0, r.stderr
    with Store(str(pyrun_env)) as s:
        assert s.tag(ref) == configs["arm64"]
        index_digest = r.stdout.splitlines()[-3].split()[1]
        assert (f"{registry.host}/team/multi", index_digest, configs["arm64"]) in s.repo_digests()
    r = pyrun("pull", "--platform", "linux/s390x", ref)
    assert r.returncode == 1 and "no image for platform linux/s390x" in r.stderr
    r = pyrun("pull", "--platform", "linux/arm64", f"{registry.host}/team/multi:amd64")
    assert r.returncode == 1 and "does not match the specified platform" in r.stderr
    r = pyrun("pull", "--platform", "nonsense", ref)
    assert r.returncode == 1 and "invalid platform" in r.stderr


def test_pull_by_digest(tmp_path, registry, pyrun_env):
    image_id = seed(tmp_path, registry.host, "team/pin:1", [BASE])
    with RegistryClient(registry.host, FAST) as c:
        digest = c.head_manifest("team/pin", "1")
    ref = f"{registry.host}/team/pin@{digest}"
    r = pyrun("pull", ref)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == ref
    with Store(str(pyrun_env)) as s:
        assert s.image(image_id) is not None and s.tags() == []


# ---------------------------------------------------------------- faults


def test_dropped_layer_download_resumes(tmp_path, registry, fault_proxy, pyrun_env):
    seed(tmp_path, fault_proxy.host, "team/f:1", [BASE, TOP])
    blob, _ = layer_tar_gz(TOP)
    d = "sha256:" + hashlib.sha256(blob).hexdigest()
    fault_proxy.add(Fault("drop", path=f"/blobs/{d}", method="GET", offset=len(blob) // 2))
    r = pyrun("pull", f"{fault_proxy.host}/team/f:1")
    assert r.returncode == 0, r.stderr
    assert [s for m, p, s in fault_proxy.log if p.endswith(d) and m == "GET"] == [200, 206]


def test_500_twice_is_retried(tmp_path, registry, fault_proxy, pyrun_env):
    seed(tmp_path, fault_proxy.host, "team/f:1", [BASE])
    fault_proxy.add(Fault("status", path="/manifests/1", method="GET", times=2, status=500))
    fault_proxy.add(Fault("status", path="/blobs/", method="GET", times=2, status=503))
    r = pyrun("pull", f"{fault_proxy.host}/team/f:1")
    assert r.returncode == 0, r.stderr


def test_corrupt_byte_rejected_nothing_stored(tmp_path, registry, fault_proxy, pyrun_env):
    seed(tmp_path, fault_proxy.host, "team/f:1", [BASE, TOP])
    blob, _ = layer_tar_gz(TOP)
    d = "sha256:" + hashlib.sha256(blob).hexdigest()
    fault_proxy.add(Fault("corrupt", path=f"/blobs/{d}", method="GET", offset=len(blob) - 100))
    r = pyrun("pull", f"{fault_proxy.host}/team/f:1")
    assert r.returncode == 1
    assert "does not match its digest" in r.stderr
    with Store(str(pyrun_env)) as s:
        assert s.images() == [] and s.tags() == [] and not s.has_blob(d)
    assert os.listdir(pyrun_env / "tmp") == []


def test_manifest_naming_missing_blob(tmp_path, registry, pyrun_env):
    seed(tmp_path, registry.host, "team/gone:1", [BASE])
    blob, _ = layer_tar_gz(BASE)
    d = "sha256:" + hashlib.sha256(blob).hexdigest()
    with RegistryClient(registry.host, FAST) as c:
        c.request("DELETE", f"/v2/team/gone/blobs/{d}", ok=(202,)).close()
    r = pyrun("pull", f"{registry.host}/team/gone:1")
    assert r.returncode == 1
    assert f"blob {d}" in r.stderr and "HTTP 404" in r.stderr and "blob unknown" in r.stderr
    assert_clean(pyrun_env)


def test_bad_token_is_clear(tmp_path, registry_token, pyrun_env):
    from tests.plugins.registry_faults import FaultProxy

    assert pyrun("login", "-u", registry_token.user, "-p", registry_token.password,
                 registry_token.host).returncode == 0
    seed(tmp_path, registry_token.host, "team/t:1", [BASE])
    r = pyrun("pull", f"{registry_token.host}/team/t:1")
    assert r.returncode == 0, r.stderr
    proxy = FaultProxy(registry_token)
    try:
        proxy.add(Fault("bad_auth", path="/manifests/", times=10))
        root2 = tmp_path / "root2"
        r = pyrun("pull", f"{proxy.host}/team/t:1", root=root2)
    finally:
        proxy.stop()
    assert r.returncode == 1
    assert "unauthorized" in r.stderr and "HTTP 401" in r.stderr
    with Store(str(root2)) as s:
        assert s.images() == []


def test_anonymous_token_registry_is_clear(tmp_path, registry_token, pyrun_env):
    r = pyrun("pull", f"{registry_token.host}/team/none:1")
    assert r.returncode == 1 and "HTTP 401" in r.stderr and "pyrun login" in r.stderr


# ---------------------------------------------------------------- skopeo interop


def oci_layout(dir: pathlib.Path, files: dict[str, bytes]) -> None:
    blob, diff_id = layer_tar_gz(files)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    blobs = dir / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        d = hashlib.sha256(data).hexdigest()
        (blobs / d).write_bytes(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       **put(blob)}]}).encode()
    (dir / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (dir / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
@pytest.mark.parametrize("flags", [[], ["--format", "v2s2"], ["--dest-compress-format", "zstd"]],
                         ids=["oci", "docker-v2s2", "zstd"])
def test_pull_what_skopeo_pushed(tmp_path, registry, pyrun_env, flags):
    oci_layout(tmp_path / "layout", BASE)
    ref = f"{registry.host}/skopeo/img:1"
    r = subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", *flags,
                        f"oci:{tmp_path / 'layout'}:1", f"docker://{ref}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = pyrun("pull", ref)
    assert r.returncode == 0, r.stderr
    with Store(str(pyrun_env)) as s:
        rec = s.image(s.tag(ref))
        path = os.path.join(s.snapshot_dir(chain_ids(rec.diff_ids)[0]), "bin/tool")
        assert open(path, "rb").read() == BASE["bin/tool"]
        want = "zstd" if "zstd" in flags else "gzip"
        assert [b.compression for b in s.layer_blobs(rec.diff_ids[0])] == [want]


def test_pull_on_a_terminal_shows_bars(tmp_path, registry, pyrun_env):
    import pexpect

    seed(tmp_path, registry.host, "team/tty:1", [BASE, TOP])
    child = pexpect.spawn(sys.executable, ["-m", "pybuild.cli.pyrun", "pull", f"{registry.host}/team/tty:1"],
                          env=dict(os.environ, COLUMNS="120", TERM="xterm"), timeout=60, encoding="utf-8")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "Pull complete" in child.before and "Status: Downloaded newer image" in child.before


def test_push_and_pull_over_tls(tmp_path, registry_tls, pyrun_env):
    ref = f"{registry_tls.host}/team/tls:1"
    with Store(str(pyrun_env)) as s:
        image_id = make_store_image(s, ref, [BASE])
    r = pyrun("push", ref)
    assert r.returncode == 1 and "--ca-cert" in r.stderr
    r = pyrun("push", "--ca-cert", str(registry_tls.ca_cert), ref)
    assert r.returncode == 0, r.stderr
    fresh = tmp_path / "fresh"
    r = pyrun("pull", "--tls-verify=false", ref, root=fresh)
    assert r.returncode == 0, r.stderr
    assert "verification is disabled" in r.stderr
    r = pyrun("pull", "--ca-cert", str(registry_tls.ca_cert), ref, root=tmp_path / "fresh2")
    assert r.returncode == 0, r.stderr
    with Store(str(fresh)) as s:
        assert s.tag(ref) == image_id


def test_unreachable_registry_is_clear(pyrun_env):
    from tests.plugins.registry import free_port

    r = pyrun("pull", f"127.0.0.1:{free_port()}/team/none:1")
    assert r.returncode == 1 and "Connection refused" in r.stderr
    assert "Pulling from" not in r.stdout


def test_library_pull_and_push_callable_repeatedly(tmp_path, registry):
    """pybuild.registry.pull/push are functions, not shadowed by submodules of the same name
    once the first call imported them (the builder pulls several bases in one process)."""
    import pybuild.registry as registry_api

    seed(tmp_path, registry.host, "team/lib:1", [BASE])
    seed(tmp_path, registry.host, "team/lib:2", [BASE, TOP])
    with Store(str(tmp_path / "lib")) as s:
        first = registry_api.pull(s, f"{registry.host}/team/lib:1")
        second = registry_api.pull(s, f"{registry.host}/team/lib:2")
        assert first.image_id != second.image_id
        s.set_tag(f"{registry.host}/team/lib:3", second.image_id)
        registry_api.push(s, f"{registry.host}/team/lib:3")
        registry_api.push(s, f"{registry.host}/team/lib:3")
    assert callable(registry_api.pull) and callable(registry_api.push)

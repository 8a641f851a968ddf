"""Bad input and faults: corrupt archives and blobs give clear errors and change nothing;
processes killed at random points leave a consistent store and the next command works."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from tests.integration.test_image_cli import out, pyrun


def system_check(root, allow_leftovers: bool = False) -> None:
    """`pyrun system check` finds no problem; right after a SIGKILL, the staging leftovers of
    the interrupted operation (tmp/, an unrecorded snapshots/ dir) are the only ones allowed:
    they are what gc (prune) cleans up."""
    r = pyrun(root, "system", "check", "-q", check=False)
    problems = [line for line in r.stdout.decode().splitlines() if line.startswith("problem: ")]
    if allow_leftovers:
        problems = [p for p in problems if not (p.startswith("problem: tmp/") or
                                                 "orphan dir (no snapshot record)" in p)]
    assert not problems, r.stdout.decode()
    if not allow_leftovers:
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


@pytest.fixture
def oci_layout(tmp_path, image_store):
    """Our busybox saved as an OCI archive and unpacked into a directory to tamper with."""
    archive = tmp_path / "o.tar"
    pyrun(image_store, "save", "--format", "oci-archive", "-o", str(archive), "busybox")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(archive) as t:
        t.extractall(layout, filter="data")
    index = json.loads((layout / "index.json").read_text())
    man_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / man_digest[7:]).read_text())
    return layout, manifest


def _pack(layout, dest) -> str:
    subprocess.run(["tar", "-C", str(layout), "-cf", str(dest), "."], check=True)
    return str(dest)


def _blob(layout, digest):
    return layout / "blobs" / "sha256" / digest[7:]


def _rewrite_manifest(layout, manifest):
    data = json.dumps(manifest).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob(layout, digest).write_bytes(data)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0].update(digest=digest, size=len(data))
    (layout / "index.json").write_text(json.dumps(index))


def _load_fails(tmp_path, archive, message):
    root = tmp_path / "victim"
    r = pyrun(root, "load", "-i", archive, check=False)
    assert r.returncode == 1, r.stderr
    assert message in r.stderr.decode(), r.stderr.decode()
    assert r.stderr.decode().startswith("error: ") and b"Traceback" not in r.stderr
    assert out(root, "images", "-q") == ""
    system_check(root)


def test_truncated_blob(tmp_path, oci_layout):
    layout, manifest = oci_layout
    layer = _blob(layout, manifest["layers"][0]["digest"])
    layer.write_bytes(layer.read_bytes()[:1000])
    _load_fails(tmp_path, _pack(layout, tmp_path / "x.tar"), "truncated?")


def test_digest_mismatch(tmp_path, oci_layout):
    layout, manifest = oci_layout
    layer = _blob(layout, manifest["layers"][0]["digest"])
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    _load_fails(tmp_path, _pack(layout, tmp_path / "x.tar"), "digest mismatch")


def test_manifest_names_missing_blob(tmp_path, oci_layout):
    layout, manifest = oci_layout
    _blob(layout, manifest["config"]["digest"]).unlink()
    _load_fails(tmp_path, _pack(layout, tmp_path / "x.tar"), "archive is missing 'blobs/sha256/")


def test_corrupt_config(tmp_path, oci_layout):
    layout, manifest = oci_layout
    bad = b'{"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:zz"]}}'
    digest = "sha256:" + hashlib.sha256(bad).hexdigest()
    _blob(layout, digest).write_bytes(bad)
    manifest["config"].update(digest=digest, size=len(bad))
    _rewrite_manifest(layout, manifest)
    _load_fails(tmp_path, _pack(layout, tmp_path / "x.tar"), "invalid digest 'sha256:zz'")
    _blob(layout, digest).write_bytes(b"{" + b"x" * (len(bad) - 1))  # same name and size, wrong content
    _load_fails(tmp_path, _pack(layout, tmp_path / "y.tar"), "digest mismatch")


def test_layer_not_matching_config_diff_id(tmp_path, image_store):
    archive = tmp_path / "d.tar"
    pyrun(image_store, "save", "-o", str(archive), "busybox")
    work = tmp_path / "d"
    work.mkdir()
    with tarfile.open(archive) as t:
        t.extractall(work, filter="data")
    entry = json.loads((work / "manifest.json").read_text())[0]
    layer = work / entry["Layers"][0]
    subprocess.run(["tar", "-C", "/etc", "-cf", str(layer), "hostname"], check=True)
    _load_fails(tmp_path, _pack(work, tmp_path / "x.tar"), "layer diff id mismatch")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "corrupt or truncated archive: empty file"),
        (b"\0" * 10240, "neither manifest.json nor index.json"),  # an empty tar
        (b"this is not a tar at all" * 40, "corrupt or truncated archive"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt or truncated archive"),
    ],
)
def test_not_an_archive(tmp_path, content, message):
    p = tmp_path / "bad.tar"
    p.write_bytes(content)
    _load_fails(tmp_path, str(p), message)


def test_truncated_gzip_archive(tmp_path, image_store):
    data = pyrun(image_store, "save", "busybox").stdout
    gz = subprocess.run(["gzip", "-c"], input=data, capture_output=True, check=True).stdout
    p = tmp_path / "t.tar.gz"
    p.write_bytes(gz[: len(gz) // 2])
    _load_fails(tmp_path, str(p), "corrupt or truncated")


def test_corrupt_blob_in_store(image_store, busybox_image):
    path = os.path.join(image_store, "blobs", "sha256", busybox_image.image_id[7:])
    with open(path, "r+b") as f:
        f.write(b"X")
    r = pyrun(image_store, "image", "inspect", "busybox", check=False)
    assert r.returncode == 1 and b"is corrupt" in r.stderr


@pytest.mark.parametrize(
    "ref, message",
    [("a//b", "invalid reference format"), ("Upper", "must be lowercase"),
     ("x:-tag", "invalid reference format"), ("x@sha256:" + "1" * 34, "invalid checksum digest length"), ("x@sha256:12", "invalid reference format"),
     ("f" * 64, "cannot specify 64-byte hexadecimal strings")],
)
def test_bad_reference(image_store, ref, message):
    r = pyrun(image_store, "tag", "busybox", ref, check=False)
    assert r.returncode == 1 and message in r.stderr.decode(), r.stderr


def test_killed_at_random_points(tmp_path, image_store, busybox_image):
    """SIGKILL import/save/load/prune/rmi at random moments (20 trials): the store stays consistent
    and the next command succeeds."""
    rng = random.Random(1234)
    archive = tmp_path / "bb.tar"
    pyrun(image_store, "save", "-o", str(archive), "busybox")
    # a rootfs big enough (16 MiB of noise) that most kills land in the middle of the work
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as t:
        info = tarfile.TarInfo("noise.bin")
        info.size = 16 << 20
        t.addfile(info, io.BytesIO(rng.randbytes(info.size)))
    root = str(tmp_path / "victim")
    pyrun(root, "load", "-i", str(archive))
    # the kills land within the time the work takes on this machine (it got faster: fixed
    # delays came to find most commands finished)
    started = time.monotonic()
    pyrun(root, "import", str(rootfs), "big:1")
    big = tmp_path / "big.tar"
    pyrun(root, "save", "-o", str(big), "big:1", "busybox")
    work = (time.monotonic() - started) / 2
    env = dict(os.environ, PYBUILD_ROOT=root)
    ops = [
        ["load", "-i", str(big)],
        ["import", str(rootfs), "imp:x"],
        ["save", "-o", str(tmp_path / "out.tar"), "big:1"],
        ["save", "--format", "oci-archive", "-o", str(tmp_path / "out2.tar"), "big:1"],
        ["image", "prune", "-a", "-f"],
        ["rmi", "imp:x"],
    ]
    killed_running = 0
    for trial in range(20):
        op = ops[trial % len(ops)]
        p = subprocess.Popen([sys.executable, "-m", "pybuild.cli.pyrun", *op], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.9) * work)
        killed_running += p.poll() is None
        try:
            p.send_signal(signal.SIGKILL)
        finally:
            p.wait()
        system_check(root, allow_leftovers=True)
        # the next command works; prune's gc clears the leftovers; then the check passes
        pyrun(root, "load", "-i", str(archive))
        if trial % 2:
            pyrun(root, "image", "prune", "-f")
            system_check(root)
        if op[0] == "rmi" or trial % 3 == 0:  # keep the victims' inputs in the store
            pyrun(root, "load", "-i", str(big))
    assert killed_running >= 6  # the test did interrupt work, not just finished processes
    pyrun(root, "image", "prune", "-a", "-f")
    system_check(root)
    assert out(root, "images", "-q") == ""

"""Snapshots as overlay lower dirs, with real overlay mounts: 120 layers in one mount, and a
build-style round trip (upper dir with whiteouts/opaque dir -> layer tar -> pulled snapshot)."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import subprocess
import tarfile

import pytest

from pybuild.image import layers, snapshots
from pybuild.image.store import Store, sha256_digest

pytestmark = pytest.mark.root

PAGE = os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def overlay(store, chain_ids, upper=None, work=None, merged=None):
    """Mount lower dirs relative to snapshots/ (so the options stay short); unmount after."""
    lower = ":".join(store.lower_dirs(chain_ids, relative=True))
    opts = f"lowerdir={lower}"
    if upper:
        opts += f",upperdir={upper},workdir={work},redirect_dir=off,metacopy=off,index=off"
    assert len(opts) < PAGE
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, merged],
                   cwd=store.snapshots_dir, check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", merged], check=True)


def listing(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            out[rel] = None if os.path.isdir(p) else open(p, "rb").read()
    return out


def test_120_layer_overlay_mount(tmp_path):
    store = Store(str(tmp_path / "store"))
    parent, chain = None, []
    for i in range(120):
        def fill(d, i=i):
            with open(os.path.join(d, f"layer-{i:03d}"), "w") as f:
                f.write(str(i))
            with open(os.path.join(d, "top"), "w") as f:
                f.write(f"from {i}")
            return sha256_digest(f"layer {i}".encode()), 2
        rec = snapshots.create(store, parent, None, fill, durable=False)
        parent = rec.chain_id
        chain.append(rec.chain_id)
    # absolute paths under the default root would not fit in one page; relative ones do
    assert len(":".join(f"/var/lib/pybuild/snapshots/{i}/fs" for i in range(1, 121))) > PAGE - 200
    merged = tmp_path / "merged"
    merged.mkdir()
    with overlay(store, chain, merged=str(merged)):
        names = sorted(os.listdir(merged))
        assert names == sorted([f"layer-{i:03d}" for i in range(120)] + ["top"])
        assert (merged / "top").read_text() == "from 119"
        assert (merged / "layer-000").read_text() == "0"
    assert os.listdir(merged) == []
    store.close()


def test_upper_dir_to_layer_and_back(tmp_path):
    store = Store(str(tmp_path / "store"))
    base_tar = io.BytesIO()
    with tarfile.open(fileobj=base_tar, mode="w") as tf:
        for name, data in (("a", b"A"), ("d/x", b"X"), ("d/y", b"Y"), ("keep", b"K")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    blob = gzip.compress(base_tar.getvalue())
    base = layers.unpack_layer(store, None, io.BytesIO(blob), durable=False)

    # a "build step": an overlay over the base, changes made through the merged view
    cdir = os.path.join(store.containers_dir, "step1")
    upper, work, merged = (os.path.join(cdir, n) for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.makedirs(d)
    with overlay(store, [base.chain_id], upper, work, merged):
        os.unlink(os.path.join(merged, "a"))
        subprocess.run(["rm", "-rf", os.path.join(merged, "d")], check=True)
        os.mkdir(os.path.join(merged, "d"))
        with open(os.path.join(merged, "d", "new"), "w") as f:
            f.write("N")
        with open(os.path.join(merged, "b"), "w") as f:
            f.write("B")
        expected = listing(merged)
    assert expected == {"b": b"B", "d": None, "d/new": b"N", "keep": b"K"}

    layer = layers.commit_dir(store, upper, base.chain_id, source_date_epoch=0, durable=False)
    assert layer.blob is None and not os.path.exists(upper)
    plain = layers.ensure_blob(store, layer.chain_id, "none")
    with tarfile.open(fileobj=io.BytesIO(store.read_blob(plain.digest))) as tf:
        names = sorted(m.name for m in tf)
    assert ".wh.a" in names and "d/.wh..wh..opq" in names and "b" in names
    assert all(m.mtime == 0 for m in tarfile.open(fileobj=io.BytesIO(
        store.read_blob(plain.digest))))

    # the same layer pulled into another store: the same merged view
    other = Store(str(tmp_path / "other"))
    b2 = layers.unpack_layer(other, None, io.BytesIO(blob), durable=False)
    gz = layers.ensure_blob(store, layer.chain_id, "gzip")
    with store.open_blob(gz.digest) as f:
        top = layers.unpack_layer(other, b2.chain_id, f, expected_digest=gz.digest,
                                  expected_diff_id=layer.diff_id, durable=False)
    assert top.chain_id == layer.chain_id
    m2 = tmp_path / "m2"
    m2.mkdir()
    with overlay(other, [b2.chain_id, top.chain_id], merged=str(m2)):
        assert listing(m2) == expected
    store.close()
    other.close()

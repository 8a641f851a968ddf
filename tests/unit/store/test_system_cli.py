"""`pyrun system check` and `pyrun system df`."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from pybuild.cli.pyrun import main
from pybuild.cli.system import human_size
from pybuild.image import layers
from pybuild.image.store import Store


def pyrun(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture
def populated(tmp_path):
    root = str(tmp_path / "root")
    store = Store(root)
    upper = os.path.join(store.tmp_dir, "u")
    os.makedirs(os.path.join(upper, "etc"))
    with open(os.path.join(upper, "etc", "hello"), "w") as f:
        f.write("hello\n" * 1000)
    layer = layers.commit_dir(store, upper, None, durable=False)
    gz = layers.ensure_blob(store, layer.chain_id, "gzip")
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}).encode()
    img = store.add_image(config)
    store.set_tag("docker.io/library/hello:latest", img.id)
    store.close()
    return root, layer, gz, img


def test_check_healthy(capsys, populated):
    root = populated[0]
    rc, out, err = pyrun(capsys, "--root", root, "system", "check")
    assert rc == 0 and "store OK" in out and "1 snapshots, 1 images" in out and err == ""


def test_check_notes_garbage_without_failing(capsys, populated):
    root = populated[0]
    with Store(root) as s:
        stray = s.put_blob(b"stray").digest
    rc, out, _ = pyrun(capsys, "--root", root, "system", "check")
    assert rc == 0 and f"note: blob {stray}: unreferenced" in out
    rc, out, _ = pyrun(capsys, "--root", root, "system", "check", "-q")
    assert rc == 0 and out == ""


def test_check_finds_corruption_and_leftovers(capsys, populated):
    root, layer, gz, img = populated
    blob = os.path.join(root, "blobs", "sha256", img.id[7:])
    os.chmod(blob, 0o644)
    with open(blob, "ab") as f:
        f.write(b" ")
    os.unlink(os.path.join(root, "blobs", "sha256", gz.digest[7:]))
    with Store(root) as s:
        n = s.snapshot(layer.chain_id).n
    shutil.rmtree(os.path.join(root, "snapshots", str(n)))
    os.makedirs(os.path.join(root, "snapshots", "77", "fs"))
    open(os.path.join(root, "tmp", "blob-partial"), "wb").close()
    open(os.path.join(root, "blobs", "sha256", "junk"), "wb").close()
    rc, out, err = pyrun(capsys, "--root", root, "system", "check")
    assert rc == 1
    for text in (f"blob {img.id}: corrupt", f"blob {gz.digest} is recorded but missing",
                 f"snapshot {n}: chain {layer.chain_id}: snapshots/{n}/fs is missing",
                 "snapshots/77: orphan dir", "tmp/blob-partial: leftover",
                 "blobs/sha256/junk: orphan file",
                 f"layer {layer.diff_id} has neither a snapshot nor a blob"):
        assert f"problem: {text}" in out or text in out, text
    assert "problem(s) found" in err
    # --no-verify skips re-hashing, the rest is still found
    rc, out, _ = pyrun(capsys, "--root", root, "system", "check", "--no-verify")
    assert rc == 1 and "corrupt" not in out and "orphan dir" in out


def test_df(capsys, populated):
    root, layer, gz, img = populated
    rc, out, _ = pyrun(capsys, "--root", root, "system", "df")
    lines = out.splitlines()
    assert rc == 0 and lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    fields = lines[1].split()
    # the layer counts its content (6,000 bytes of etc/hello) as `images` and `history`
    # do, not its tar with headers and padding; plus the config blob
    size = human_size(6000 + len(json.dumps(
        {"rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}})))
    assert layer.size > 6000 + 512
    assert fields == ["Images", "1", "0", size, size, "(100%)"]


def test_human_size():
    assert [human_size(n) for n in (0, 999, 1000, 4_260_000, 125_000, 1_500_000_000)] == \
        ["0B", "999B", "1kB", "4.26MB", "125kB", "1.5GB"]


def test_system_help_lists_verbs(capsys):
    rc, out, _ = pyrun(capsys, "system", "--help")
    assert rc == 0 and "check" in out and "df" in out


def test_df_counts_images_a_gc_root_uses_as_active(capsys, populated, monkeypatch):
    from pybuild.image import meta

    root, layer, _, _ = populated
    with Store(root) as s:
        s.db.execute("CREATE TABLE fake_rootfs (chain_id TEXT)")
        s.db.execute("INSERT INTO fake_rootfs VALUES (?)", (layer.chain_id,))
    monkeypatch.setattr(meta, "GC_CHAIN_ID_ROOTS", ["SELECT chain_id FROM fake_rootfs"])
    rc, out, _ = pyrun(capsys, "--root", root, "system", "df")
    fields = out.splitlines()[1].split()
    assert rc == 0 and fields[:3] == ["Images", "1", "1"]
    assert fields[4:] == ["0B", "(0%)"]

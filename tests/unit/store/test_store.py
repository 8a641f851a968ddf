"""Store core: blobs, meta.db records, migrations, locking, gc."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import sqlite3

import pytest

from pybuild.errors import ImageError, StoreError
from pybuild.image import meta, snapshots
from pybuild.image.store import LayerBlob, Store, chain_ids, sha256_digest


def config_bytes(diff_ids, extra="x"):
    return json.dumps({"architecture": "amd64", "os": "linux", "comment": extra,
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()


def test_layout(store):
    for d in ("blobs/sha256", "snapshots", "containers", "volumes", "tmp"):
        assert os.path.isdir(os.path.join(store.root, d))
    assert os.path.isfile(os.path.join(store.root, "meta.db"))
    mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == meta.schema_version()


def test_put_and_read_blob(store):
    blob = store.put_blob(b"hello")
    assert blob.digest == sha256_digest(b"hello") and blob.size == 5
    assert store.has_blob(blob.digest)
    assert store.read_blob(blob.digest) == b"hello"
    assert store.blob_size(blob.digest) == 5
    with store.open_blob(blob.digest) as f:
        assert f.read() == b"hello"
    assert store.blobs() == [blob.digest]
    assert store.put_blob(b"hello") == blob  # idempotent
    assert os.listdir(store.tmp_dir) == []
    assert store.delete_blob(blob.digest) and not store.has_blob(blob.digest)
    assert not store.delete_blob(blob.digest)


def test_ingest_stream_verified(store):
    data = os.urandom(3 << 20)
    d = sha256_digest(data)
    blob = store.ingest(io.BytesIO(data), expected=d, size=len(data))
    assert blob.digest == d and store.read_blob(d) == data


def test_ingest_digest_mismatch_stores_nothing(store):
    wrong = sha256_digest(b"other")
    with pytest.raises(ImageError, match="digest mismatch"):
        store.ingest(io.BytesIO(b"content"), expected=wrong)
    with pytest.raises(ImageError, match="digest mismatch"):
        store.put_blob(b"content", expected=wrong)
    assert store.blobs() == [] and os.listdir(store.tmp_dir) == []


def test_ingest_size_mismatch(store):
    data = b"abc" * 1000
    with pytest.raises(ImageError, match="size"):
        store.ingest(io.BytesIO(data), expected=sha256_digest(data), size=10)
    with pytest.raises(ImageError, match="size"):
        store.ingest(io.BytesIO(data), size=len(data) + 1)
    assert store.blobs() == [] and os.listdir(store.tmp_dir) == []


def test_bad_digest_strings(store):
    for bad in ("sha256:xyz", "md5:" + "0" * 32, "sha256:" + "A" * 64, "../../etc/passwd"):
        with pytest.raises(ImageError, match="invalid digest"):
            store.blob_path(bad)
    with pytest.raises(ImageError, match="not found"):
        store.open_blob(sha256_digest(b"nope"))


def test_read_blob_detects_corruption(store):
    blob = store.put_blob(b"good")
    path = store.blob_path(blob.digest)
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(b"evil")
    with pytest.raises(StoreError, match="corrupt"):
        store.read_blob(blob.digest)


def test_blob_writer_abort_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.blob_writer() as w:
        w.write(b"partial")
        raise RuntimeError("crash")
    assert store.blobs() == [] and os.listdir(store.tmp_dir) == []


def test_images_tags_manifests(store):
    d1, d2 = sha256_digest(b"l1"), sha256_digest(b"l2")
    store.add_layer_blob(LayerBlob(d1, store.put_blob(b"gz1").digest, "gzip", 3, 100))
    img = store.add_image(config_bytes([d1, d2]))
    assert img.id == sha256_digest(config_bytes([d1, d2]))
    assert img.diff_ids == (d1, d2) and img.size == 100
    assert img.chain_ids == chain_ids([d1, d2])
    assert store.read_blob(img.id) == config_bytes([d1, d2])
    assert store.add_image(config_bytes([d1, d2])) == img
    assert store.set_tag("docker.io/library/a:latest", img.id) is None
    assert store.tag("docker.io/library/a:latest") == img.id
    img2 = store.add_image(config_bytes([d1], "y"), parent=img.id)
    assert store.set_tag("docker.io/library/a:latest", img2.id) == img.id
    assert [t.reference for t in store.tags(img2.id)] == ["docker.io/library/a:latest"]
    assert store.tags(img.id) == []
    m = store.put_blob(b'{"manifest": 1}')
    store.add_manifest(img.id, m.digest, "application/vnd.oci.image.manifest.v1+json")
    assert [r.digest for r in store.manifests(img.id)] == [m.digest]
    store.add_repo_digest("docker.io/library/a", m.digest, img.id)
    assert store.repo_digests(img.id) == [("docker.io/library/a", m.digest, img.id)]
    assert set(store.image_ids_with_prefix(img.id[7:12])) >= {img.id}
    assert store.image_ids_with_prefix("zz") == []
    assert {i.id for i in store.images()} == {img.id, img2.id}
    assert store.delete_image(img.id)
    assert store.image(img.id) is None and store.manifests(img.id) == []
    assert store.repo_digests(img.id) == []
    assert store.remove_tag("docker.io/library/a:latest")
    assert not store.remove_tag("docker.io/library/a:latest")


def test_tag_unknown_image(store):
    with pytest.raises(ImageError, match="no such image"):
        store.set_tag("x:latest", sha256_digest(b"none"))


def test_bad_config(store):
    for bad in (b"not json", b"{}", b'{"rootfs": {"diff_ids": "x"}}',
                b'{"rootfs": {"diff_ids": ["sha256:zz"]}}'):
        with pytest.raises(ImageError):
            store.add_image(bad)
    assert store.images() == []


def test_layer_blobs(store):
    diff = sha256_digest(b"plain")
    gz = store.put_blob(b"gzipped").digest
    zs = store.put_blob(b"zstded").digest
    store.add_layer_blob(LayerBlob(diff, gz, "gzip", 7, 5))
    store.add_layer_blob(LayerBlob(diff, zs, "zstd", 6, 5, "application/vnd.oci.image.layer.v1.tar+zstd"))
    assert [b.compression for b in store.layer_blobs(diff)] == ["gzip", "zstd"]
    assert store.layer_blobs(diff, "zstd")[0].digest == zs
    assert store.layer_of_blob(gz).diff_id == diff
    store.delete_blob(zs)
    assert [b.compression for b in store.layer_blobs(diff)] == ["gzip"]
    with pytest.raises(ImageError):
        store.add_layer_blob(LayerBlob(diff, gz, "bzip2", 7, 5))


def test_migrations_append(tmp_path, monkeypatch):
    root = str(tmp_path / "r")
    Store(root).close()
    extra = (meta.schema_version() + 1, "CREATE TABLE extra_area (k TEXT PRIMARY KEY);\n"
             "INSERT INTO extra_area VALUES ('a;b');")
    monkeypatch.setattr(meta, "MIGRATIONS", [*meta.MIGRATIONS, extra])
    s = Store(root)
    assert s.db.execute("SELECT k FROM extra_area").fetchall() == [("a;b",)]
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == extra[0]
    s.close()
    Store(root).close()  # re-open: nothing re-run


def test_failed_migration_rolls_back(tmp_path, monkeypatch):
    root = str(tmp_path / "r")
    Store(root).close()
    bad = (meta.schema_version() + 1, "CREATE TABLE ok1 (a);\nCREATE TABLE images (x);")
    monkeypatch.setattr(meta, "MIGRATIONS", [*meta.MIGRATIONS, bad])
    with pytest.raises(StoreError):
        Store(root)
    db = sqlite3.connect(os.path.join(root, "meta.db"))
    assert db.execute("SELECT name FROM sqlite_master WHERE name='ok1'").fetchall() == []
    assert db.execute("PRAGMA user_version").fetchone()[0] == bad[0] - 1


def test_newer_schema_refused(tmp_path):
    root = str(tmp_path / "r")
    Store(root).close()
    db = sqlite3.connect(os.path.join(root, "meta.db"))
    db.execute("PRAGMA user_version=999")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        Store(root)


def _put_tags(root, worker, n):
    s = Store(root)
    for i in range(n):
        img = s.add_image(config_bytes([], f"{worker}-{i}"))
        s.set_tag(f"r/{worker}:{i}", img.id)
    s.close()


def test_concurrent_processes(tmp_path):
    root = str(tmp_path / "r")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_put_tags, args=(root, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = Store(root)
    assert len(s.tags()) == 100 and len(s.images()) == 100
    s.close()


def test_exclusive_lock_excludes_holders(tmp_path):
    root = str(tmp_path / "r")
    a, b = Store(root), Store(root)
    with a.hold(), a.hold():  # re-entrant
        with pytest.raises(StoreError, match="in use"), b.exclusive(wait=False):
            pass
        with pytest.raises(StoreError, match="in use"):
            b.gc(wait=False)
    with b.exclusive(wait=False):
        pass
    a.close()
    b.close()


def _snap(store, parent, content: bytes):
    def fill(d):
        with open(os.path.join(d, "f"), "wb") as f:
            f.write(content)
        return sha256_digest(content), len(content)
    return snapshots.create(store, parent, None, fill, durable=False)


def test_gc(store):
    keep_layer = _snap(store, None, b"base")
    keep_top = _snap(store, keep_layer.chain_id, b"top")
    dead = _snap(store, None, b"dead")
    gz = store.put_blob(b"gz-of-base").digest
    store.add_layer_blob(LayerBlob(keep_layer.diff_id, gz, "gzip", 10, 4))
    dead_gz = store.put_blob(b"gz-of-dead").digest
    store.add_layer_blob(LayerBlob(dead.diff_id, dead_gz, "gzip", 10, 4))
    stray = store.put_blob(b"stray").digest
    img = store.add_image(config_bytes([keep_layer.diff_id, keep_top.diff_id]))
    m = store.put_blob(b"manifest").digest
    store.add_manifest(img.id, m, "application/vnd.oci.image.manifest.v1+json")
    os.mkdir(os.path.join(store.snapshots_dir, "999"))       # crash leftover
    open(os.path.join(store.tmp_dir, "blob-x"), "wb").close()  # crash leftover
    res = store.gc()
    assert set(res.blobs) == {dead_gz, stray}
    assert res.snapshots == (dead.chain_id,)
    assert res.leftovers == 2 and res.bytes_freed == 15
    assert {s.chain_id for s in store.snapshots()} == {keep_layer.chain_id, keep_top.chain_id}
    assert set(store.blobs()) == {gz, img.id, m}
    assert store.layer_blobs(dead.diff_id) == []
    assert sorted(os.listdir(store.snapshots_dir)) == sorted(
        str(s.n) for s in store.snapshots())
    # the image gone, everything goes
    store.delete_image(img.id)
    res = store.gc()
    assert store.snapshots() == [] and store.blobs() == []
    assert os.listdir(store.snapshots_dir) == []


def test_gc_roots_from_other_areas(store, monkeypatch):
    base = _snap(store, None, b"base")
    top = _snap(store, base.chain_id, b"top")
    store.db.execute("CREATE TABLE fake_containers (chain_id TEXT)")
    store.db.execute("INSERT INTO fake_containers VALUES (?)", (top.chain_id,))
    monkeypatch.setattr(meta, "GC_CHAIN_ID_ROOTS", ["SELECT chain_id FROM fake_containers"])
    assert store.gc().snapshots == ()
    assert len(store.snapshots()) == 2


def _race_snapshot(root, barrier, q):
    s = Store(root)
    barrier.wait()
    rec = _snap(s, None, b"same content")
    q.put(rec.n)
    s.close()


def test_concurrent_snapshot_creators_end_with_one(tmp_path):
    root = str(tmp_path / "r")
    Store(root).close()
    ctx = multiprocessing.get_context("fork")
    barrier, q = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_race_snapshot, args=(root, barrier, q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ns = {q.get(timeout=5) for _ in procs}
    s = Store(root)
    assert len(ns) == 1 and len(s.snapshots()) == 1
    assert os.listdir(s.snapshots_dir) == [str(ns.pop())]
    assert os.listdir(s.tmp_dir) == []
    s.close()


def test_snapshot_records_and_lower_dirs(store):
    a = _snap(store, None, b"a")
    b = _snap(store, a.chain_id, b"b")
    assert b.parent == a.chain_id and b.chain_id == chain_ids([a.diff_id, b.diff_id])[1]
    assert store.lower_dirs([a.chain_id, b.chain_id], relative=True) == [f"{b.n}/fs", f"{a.n}/fs"]
    assert store.lower_dirs([a.chain_id])[0] == os.path.join(store.root, "snapshots", str(a.n), "fs")
    with open(os.path.join(store.snapshot_dir(b.chain_id), "f"), "rb") as f:
        assert f.read() == b"b"
    with pytest.raises(ImageError, match="no snapshot"):
        store.lower_dirs([sha256_digest(b"unknown")])
    with pytest.raises(ImageError, match="parent snapshot"):
        _snap(store, sha256_digest(b"no parent"), b"c")
    # a wrong expected diff id is refused, nothing is kept
    with pytest.raises(ImageError, match="expected"):
        snapshots.create(store, None, sha256_digest(b"x"), lambda d: (sha256_digest(b"y"), 1),
                         durable=False)
    assert len(store.snapshots()) == 2 and os.listdir(store.tmp_dir) == []


def test_snapshot_number_left_by_crash_is_reused_safely(store):
    # a crash between rename and commit leaves snapshots/<n> without a record
    os.makedirs(os.path.join(store.snapshots_dir, "1", "fs", "junk"))
    rec = _snap(store, None, b"fresh")
    assert rec.n == 1
    assert os.listdir(store.snapshot_dir(rec)) == ["f"]
    assert os.listdir(store.tmp_dir) == []


def _crash_mid_write(root):
    s = Store(root)
    w = s.blob_writer()
    w.write(os.urandom(1 << 20))
    stage = snapshots.staging_dir(s)
    with open(os.path.join(stage, "fs", "half"), "wb") as f:
        f.write(b"half a layer")
    os._exit(3)  # killed: no commit, no clean-up, locks die with the process


def test_crash_mid_write_leaves_old_state_and_garbage_only(tmp_path):
    from pybuild.image.check import check_store

    root = str(tmp_path / "r")
    s = Store(root)
    img = s.add_image(config_bytes([], "before"))
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_crash_mid_write, args=(root,))
    p.start()
    p.join(30)
    assert p.exitcode == 3
    assert s.blobs() == [img.id] and s.snapshots() == []  # the old state
    problems = [f for f in check_store(s) if f.problem]
    assert len(problems) == 2 and all(f.subject.startswith("tmp/") for f in problems)
    res = s.gc()  # the dead process's lock is gone: gc gets the store
    assert res.leftovers == 2 and os.listdir(s.tmp_dir) == []
    assert [f for f in check_store(s) if f.problem] == []
    assert s.image(img.id) is not None
    s.close()

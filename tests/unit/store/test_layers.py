"""Layer tars: deterministic writing, one-pass compression and hashing, unpacking in overlay
form, lazy blobs, pulled layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile

import pytest
import zstandard

from pybuild.errors import ImageError, StoreError
from pybuild.image import layers
from pybuild.image.compress import DecompressReader, detect
from pybuild.image.store import chain_id
from pybuild.image.tarwriter import write_layer_tar
from pybuild.image.unpack import unpack

CAP = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw+ep


def make_tree(root, devices=True):
    """Every kind of entry a layer can hold, in overlay form."""
    os.makedirs(root)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    os.makedirs(j("d", "e"))
    os.makedirs(j("ro"))
    with open(j("a"), "w") as f:
        f.write("hi\n")
    os.chmod(j("a"), 0o4755)
    os.link(j("a"), j("d", "hard"))
    os.symlink("../a", j("d", "sym"))
    os.symlink("/etc/passwd", j("abs-sym"))
    os.mkfifo(j("fifo"))
    with open(j("d", "e", "f"), "w") as f:
        f.write("x")
    os.chown(j("d", "e", "f"), 1234, 5678)
    os.setxattr(j("d", "e", "f"), "security.capability", CAP)
    os.setxattr(j("a"), "user.note", b"\xff\x00binary")
    long_dir = j(*(["x" * 50] * 5))
    os.makedirs(long_dir)
    with open(os.path.join(long_dir, "y" * 200), "w") as f:
        f.write("long")
    with open(j("big"), "wb") as f:
        f.write(os.urandom(3 << 20))
    with open(j("sparse"), "wb") as f:
        f.truncate(5 << 20)
        f.seek(2 << 20)
        f.write(b"middle")
    with open(j("ro", "inner"), "w") as f:
        f.write("in a read-only dir")
    os.chmod(j("ro"), 0o555)
    if devices:
        os.mknod(j("null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(j("d", "gone"), stat.S_IFCHR, 0)             # whiteout
        os.setxattr(j("d", "e"), "trusted.overlay.opaque", b"y")  # opaque dir
    return root


def snapshot_of(root):
    """Everything a layer keeps, per path, for comparing trees."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            xattrs = {}
            for x in sorted(os.listxattr(p, follow_symlinks=False)):
                xattrs[x] = os.getxattr(p, x, follow_symlinks=False)
            rec = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                   int(st.st_mtime), st.st_rdev if not stat.S_ISREG(st.st_mode) else 0, xattrs)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    rec += (hashlib.sha256(f.read()).hexdigest(), st.st_nlink)
            elif stat.S_ISLNK(st.st_mode):
                rec += (os.readlink(p),)
            out[os.path.relpath(p, root)] = rec
    return out


def tar_bytes(root, epoch=None):
    buf = io.BytesIO()
    write_layer_tar(root, buf, epoch)
    return buf.getvalue()


def test_tar_is_readable_by_tarfile_and_gnu_tar(tmp_path):
    src = make_tree(str(tmp_path / "src"), devices=False)
    data = tar_bytes(src, epoch=1000)
    assert len(data) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf}
    assert members["a"].mode == 0o4755 and members["a"].mtime == 1000
    assert members["d/hard"].islnk() and members["d/hard"].linkname == "a"
    assert members["d/sym"].issym() and members["d/sym"].linkname == "../a"
    assert members["fifo"].isfifo()
    f = members["d/e/f"]
    assert (f.uid, f.gid, f.uname, f.gname) == (1234, 5678, "", "")
    assert f.pax_headers["SCHILY.xattr.security.capability"].encode(
        "utf-8", "surrogateescape") == CAP
    assert any(n.endswith("y" * 200) for n in members)
    assert members["sparse"].size == 5 << 20
    names = list(members)
    assert names.index("d/e/f") < names.index("d/hard")  # depth-first, sorted per dir
    (tmp_path / "l.tar").write_bytes(data)
    out = subprocess.run(["tar", "-tvf", str(tmp_path / "l.tar"), "--numeric-owner"],
                         capture_output=True, text=True, check=True).stdout
    assert "1234/5678" in out and "d/hard link to a" in out


def test_tar_is_deterministic(tmp_path):
    src = make_tree(str(tmp_path / "src"), devices=False)
    one = tar_bytes(src, epoch=1000)
    os.utime(os.path.join(src, "a"))  # touched now: clamped back to the epoch
    os.stat(os.path.join(src, "a"))  # atime changes must not matter either
    assert tar_bytes(src, epoch=1000) == one
    assert tar_bytes(src) != one  # without the epoch the real mtimes show


def test_tar_excludes_overlay_bookkeeping_xattrs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    os.setxattr(src / "f", "trusted.overlay.origin", b"\x00\x01")
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(str(src)))) as tf:
        assert [m.pax_headers for m in tf] == [{}]


@pytest.mark.root
def test_roundtrip_overlay_form(tmp_path):
    src = make_tree(str(tmp_path / "src"))
    data = tar_bytes(src)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = [m.name for m in tf]
    assert "d/.wh.gone" in names and "d/e/.wh..wh..opq" in names
    assert "d/gone" not in names and "null" in names
    dst = str(tmp_path / "dst")
    os.mkdir(dst)
    unpack(io.BytesIO(data), dst)
    assert snapshot_of(dst) == snapshot_of(src)
    gone = os.lstat(os.path.join(dst, "d", "gone"))
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(os.path.join(dst, "d", "e"), "trusted.overlay.opaque") == b"y"
    assert os.stat(os.path.join(dst, "a")).st_ino == os.stat(os.path.join(dst, "d", "hard")).st_ino
    assert tar_bytes(dst) == data  # the snapshot re-tars to the same diff id


def test_compress_dir_one_pass(store, tmp_path):
    src = make_tree(str(tmp_path / "src"), devices=False)
    plain = tar_bytes(src, epoch=5)
    diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    for comp, decode in (("gzip", gzip.decompress),
                         ("zstd", lambda b: zstandard.ZstdDecompressor().decompressobj()
                          .decompress(b)),
                         ("none", lambda b: b)):
        lb = layers.compress_dir(store, src, comp, source_date_epoch=5)
        blob = store.read_blob(lb.digest)
        assert lb.diff_id == diff_id and lb.uncompressed_size == len(plain)
        assert lb.size == len(blob) and decode(blob) == plain
        assert detect(blob) == comp
        assert store.layer_blobs(diff_id, comp) == [lb]
    assert os.listdir(store.tmp_dir) == []


def test_lazy_commit_then_blob_on_demand(store, tmp_path):
    upper = make_tree(str(store.tmp_dir) + "/upper", devices=False)
    expected = snapshot_of(upper)
    layer = layers.commit_dir(store, upper, None, source_date_epoch=100, durable=False)
    assert layer.blob is None and not os.path.exists(upper)
    assert store.layer_blobs(layer.diff_id) == []           # nothing compressed yet
    snapdir = store.snapshot_dir(layer.chain_id)
    got = snapshot_of(snapdir)
    assert {k: v[:4] + v[5:] for k, v in got.items()} == \
        {k: v[:4] + v[5:] for k, v in expected.items()}  # all but the clamped mtimes
    assert all(v[4] <= 100 for v in got.values())
    lb = layers.ensure_blob(store, layer.chain_id, "gzip")
    assert lb.diff_id == layer.diff_id and layers.ensure_blob(store, layer.chain_id) == lb
    assert hashlib.sha256(gzip.decompress(store.read_blob(lb.digest))).hexdigest() == \
        layer.diff_id[7:]
    zs = layers.ensure_blob(store, layer.chain_id, "zstd")  # transcoded from the gzip blob
    assert zs.diff_id == layer.diff_id
    assert {b.compression for b in store.layer_blobs(layer.diff_id)} == {"gzip", "zstd"}
    # a second identical upper dir ends in the same snapshot
    again = make_tree(str(store.tmp_dir) + "/upper2", devices=False)
    os.unlink(os.path.join(again, "big"))
    os.link(os.path.join(snapdir, "big"), os.path.join(again, "big"))
    l2 = layers.commit_dir(store, again, None, source_date_epoch=100, durable=False)
    assert l2.chain_id == layer.chain_id and not os.path.exists(again)
    assert len(store.snapshots()) == 1


def test_ensure_blob_detects_a_changed_snapshot(store, tmp_path):
    upper = os.path.join(store.tmp_dir, "u")
    os.mkdir(upper)
    with open(os.path.join(upper, "f"), "w") as f:
        f.write("one")
    layer = layers.commit_dir(store, upper, None, durable=False)
    with open(os.path.join(store.snapshot_dir(layer.chain_id), "f"), "w") as f:
        f.write("two")
    with pytest.raises(StoreError, match="changed"):
        layers.ensure_blob(store, layer.chain_id, "gzip")
    assert store.layer_blobs(layer.diff_id) == []
    with pytest.raises(ImageError, match="no snapshot"):
        layers.ensure_blob(store, "sha256:" + "0" * 64)


@pytest.mark.parametrize("comp", ["gzip", "zstd", "none"])
def test_unpack_pulled_layer(store, tmp_path, comp):
    src = make_tree(str(tmp_path / "src"), devices=False)
    plain = tar_bytes(src)
    diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    blob = {"gzip": lambda: gzip.compress(plain, 1),
            "zstd": lambda: zstandard.ZstdCompressor().compress(plain),
            "none": lambda: plain}[comp]()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    layer = layers.unpack_layer(store, None, io.BytesIO(blob), expected_digest=digest,
                                expected_diff_id=diff_id, size=len(blob))  # synced
    assert layer.diff_id == diff_id and layer.blob.digest == digest
    assert layer.blob.compression == comp and layer.size == len(plain)
    assert store.read_blob(digest) == blob
    assert snapshot_of(store.snapshot_dir(layer.chain_id)) == snapshot_of(src)
    # known already: nothing is read
    again = layers.unpack_layer(store, None, io.BytesIO(b""), expected_digest=digest,
                                expected_diff_id=diff_id)
    assert again.snapshot == layer.snapshot
    # a child layer on top
    child_tar = tar_bytes(str(tmp_path / "src" / "d"))
    child = layers.unpack_layer(store, layer.chain_id, io.BytesIO(child_tar), durable=False)
    assert child.chain_id == chain_id(layer.chain_id, child.diff_id)
    assert store.snapshot(child.chain_id).parent == layer.chain_id


def test_unpack_layer_bad_digest_keeps_nothing(store, tmp_path):
    src = make_tree(str(tmp_path / "src"), devices=False)
    blob = gzip.compress(tar_bytes(src))
    with pytest.raises(ImageError, match="digest mismatch"):
        layers.unpack_layer(store, None, io.BytesIO(blob), expected_digest="sha256:" + "1" * 64)
    with pytest.raises(ImageError, match="diff id mismatch"):
        layers.unpack_layer(store, None, io.BytesIO(blob), expected_diff_id="sha256:" + "1" * 64)
    with pytest.raises(ImageError, match="truncated|corrupt|invalid"):
        layers.unpack_layer(store, None, io.BytesIO(blob[: len(blob) // 2]))
    with pytest.raises(ImageError, match="corrupt"):
        layers.unpack_layer(store, None, io.BytesIO(blob[:20] + b"\x00" * 100 + blob[120:]))
    assert store.blobs() == [] and store.snapshots() == []
    assert os.listdir(store.tmp_dir) == [] and os.listdir(store.snapshots_dir) == []


def test_decompress_reader_concatenated_members():
    data = gzip.compress(b"one ") + gzip.compress(b"two")
    r = DecompressReader(io.BytesIO(data))
    assert r.compression == "gzip" and r.read() == b"one two"
    cz = zstandard.ZstdCompressor()
    r = DecompressReader(io.BytesIO(cz.compress(b"a" * 100) + cz.compress(b"b")))
    assert r.read() == b"a" * 100 + b"b"
    assert r.raw_size == len(cz.compress(b"a" * 100) + cz.compress(b"b"))


def test_unpack_later_entries_replace_earlier(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, mode in (("d", tarfile.DIRTYPE, 0o700), ("d", tarfile.DIRTYPE, 0o750),
                                 ("f", tarfile.SYMTYPE, 0o777), ("f", tarfile.REGTYPE, 0o640),
                                 ("ro", tarfile.DIRTYPE, 0o555), ("ro/in", tarfile.REGTYPE, 0o600)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = kind, mode, 1234
            if kind == tarfile.SYMTYPE:
                ti.linkname = "/etc/passwd"
            tf.addfile(ti, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    dst = tmp_path / "dst"
    dst.mkdir()
    unpack(io.BytesIO(buf.getvalue()), str(dst))
    assert stat.S_IMODE(os.stat(dst / "d").st_mode) == 0o750
    assert not (dst / "f").is_symlink() and stat.S_IMODE(os.stat(dst / "f").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(dst / "ro").st_mode) == 0o555 and (dst / "ro" / "in").exists()
    assert os.stat(dst / "ro").st_mtime == 1234

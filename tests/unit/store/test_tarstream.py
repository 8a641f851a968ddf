"""LayerStream, the unpacker's forward-only view of a layer's plain tar: reads, forward
seeks and straight-to-file copies across chunk boundaries, the diff id over every byte, and
unpacking through it matching what tarfile itself extracts (GNU and PAX long names, links,
empty and sparse files), with truncated and backward-seeking tars refused."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import tarfile

import pytest

from pybuild.errors import ImageError
from pybuild.image.compress import DecompressReader
from pybuild.image.tarstream import LayerStream
from pybuild.image.unpack import unpack


def pieces(data: bytes, seed: int = 1, most: int = 7000):
    """A chunk source handing out `data` in random sizes (1..most bytes)."""
    rnd = random.Random(seed)
    pos = 0

    def next_chunk() -> bytes:
        nonlocal pos
        n = rnd.randint(1, most)
        out = data[pos:pos + n]
        pos += len(out)
        return out

    return next_chunk


def test_read_seek_copy_across_chunks(tmp_path):
    data = os.urandom(100_000)
    s = LayerStream(pieces(data))
    assert s.read(10) == data[:10] and s.tell() == 10
    assert s.seek(5000) == 5000
    assert s.read(20_000) == data[5000:25_000]
    with open(tmp_path / "out", "wb") as f:
        assert s.copy_to(f.fileno(), 30_000) == 30_000
    assert (tmp_path / "out").read_bytes() == data[25_000:55_000]
    assert s.seek(1000, io.SEEK_CUR) == 56_000
    with pytest.raises(io.UnsupportedOperation):
        s.seek(100)
    assert s.read(-1) == data[56_000:]
    assert s.read(1) == b"" and s.tell() == len(data)
    assert s.digest() == "sha256:" + hashlib.sha256(data).hexdigest()


def test_copy_past_the_end_and_drain_hash_everything(tmp_path):
    data = os.urandom(9000)
    s = LayerStream(pieces(data, seed=2))
    with open(tmp_path / "out", "wb") as f:
        assert s.copy_to(f.fileno(), 20_000) == 9000  # fewer only at the end
    s2 = LayerStream(pieces(data, seed=3))
    s2.read(100)
    s2.drain()
    assert s2.size == 9000 and s2.digest() == "sha256:" + hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError):
        LayerStream(pieces(data), hash=False).digest()


def sample_tar(fmt: int) -> bytes:
    buf = io.BytesIO()
    long_dir = "d" * 120 + "/" + "e" * 90
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        def add(name, kind=tarfile.REGTYPE, data=b"", **kw):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mtime, ti.mode = kind, 1_700_000_000, kw.pop("mode", 0o644)
            for k, v in kw.items():
                setattr(ti, k, v)
            if kind == tarfile.REGTYPE:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
        add("top", tarfile.DIRTYPE, mode=0o755)
        add("top/empty")
        add("top/big.bin", data=os.urandom(3 << 20) + b"tail")
        add("top/odd.txt", data=b"x" * 1537)
        add(long_dir, tarfile.DIRTYPE, mode=0o755)
        add(long_dir + "/" + "f" * 150 + ".txt", data=b"long name\n")
        add("top/link", tarfile.SYMTYPE, linkname="big.bin")
        add("top/hard", tarfile.LNKTYPE, linkname="top/odd.txt")
        add("top/last", data=b"after the links")
    return buf.getvalue()


def tree(root) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", os.stat(p).st_mode & 0o7777)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", hashlib.sha256(f.read()).hexdigest(),
                                os.stat(p).st_mode & 0o7777)
    return out


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_unpack_matches_tarfile(tmp_path, fmt):
    raw = sample_tar(fmt)
    ref = tmp_path / "ref"
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        tf.extractall(ref, filter="tar")
    mine = tmp_path / "mine"
    mine.mkdir()
    s = LayerStream(pieces(raw, seed=fmt, most=70_000))
    unpack(s, str(mine))
    assert tree(mine) == tree(ref)
    assert os.stat(mine / "top/hard").st_ino == os.stat(mine / "top/odd.txt").st_ino
    assert s.size == len(raw) and s.digest() == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_unpack_from_gzip_through_the_decompressor(tmp_path):
    import gzip

    raw = sample_tar(tarfile.PAX_FORMAT)
    reader = DecompressReader(io.BytesIO(gzip.compress(raw)), hash_raw=False)
    s = LayerStream(reader.chunk)
    unpack(s, str(tmp_path))
    assert (tmp_path / "top/last").read_bytes() == b"after the links"
    assert s.digest() == "sha256:" + hashlib.sha256(raw).hexdigest()
    with pytest.raises(ValueError):
        reader.raw_digest()


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_file_is_rebuilt(tmp_path, fmt):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(3 << 20)
        f.write(b"middle")
        f.seek(9 << 20)
        f.write(b"end")
    (src / "after").write_bytes(b"next entry")
    tar_path = tmp_path / "s.tar"
    subprocess.run(["tar", "--sparse", f"--format={fmt}", "-cf", str(tar_path), "-C", str(src),
                    "sparse", "after"], check=True)
    out = tmp_path / "out"
    out.mkdir()
    with open(tar_path, "rb") as f:
        unpack(f, str(out))  # a plain reader: wrapped in a LayerStream without hashing
    assert (out / "sparse").read_bytes() == (src / "sparse").read_bytes()
    assert (out / "after").read_bytes() == b"next entry"


def test_truncated_file_data_is_refused(tmp_path):
    raw = sample_tar(tarfile.PAX_FORMAT)
    cut = raw[: raw.index(b"tail") - 1000]  # inside big.bin's data
    with pytest.raises(ImageError, match="truncated|invalid layer tar"):
        unpack(LayerStream(pieces(cut)), str(tmp_path))


def test_negative_size_header_is_refused(tmp_path):
    """A base-256 negative size would send tarfile backwards: refused, never followed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name in ("a", "b", "c"):
            ti = tarfile.TarInfo(name)
            ti.size = 2000
            tf.addfile(ti, io.BytesIO(os.urandom(2000)))
    raw = bytearray(buf.getvalue())
    off = 512 + 2048  # the header of b
    raw[off + 124:off + 136] = b"\xff" * 8 + (-5000).to_bytes(4, "big", signed=True)
    raw[off + 148:off + 156] = b" " * 8
    raw[off + 148:off + 156] = b"%06o\0 " % sum(raw[off:off + 512])
    with pytest.raises(ImageError):
        unpack(LayerStream(pieces(bytes(raw))), str(tmp_path))
    assert not (tmp_path / "c").exists()


def test_capped_gzip_output_across_members_and_truncation():
    """Highly compressible members: each decompress call hands out at most OUT_MAX bytes and
    the rest of the input waits inside the decompressor; every byte still comes out once,
    across concatenated members, and a stream cut short says so."""
    import gzip

    from pybuild.image.compress import OUT_MAX

    one, two = b"a" * (5 * OUT_MAX + 17), os.urandom(3000) + b"b" * (2 * OUT_MAX)
    blob = gzip.compress(one, mtime=0) + gzip.compress(two, mtime=0)
    r = DecompressReader(io.BytesIO(blob), hash_raw=False)
    sizes, out = [], []
    while chunk := r.chunk():
        sizes.append(len(chunk))
        out.append(chunk)
    assert b"".join(out) == one + two and max(sizes) <= OUT_MAX
    cut = DecompressReader(io.BytesIO(gzip.compress(one, mtime=0)[:-12]))
    with pytest.raises(ImageError, match="truncated|corrupt"):
        cut.read()

"""Hostile layer tars: each is refused with a clear error or confined to the layer root, and
nothing outside the root changes."""

from __future__ import annotations

import io
import os
import pathlib
import shutil
import tarfile
import tempfile

import pytest

from pybuild.errors import ImageError
from pybuild.image.unpack import unpack


def build_tar(*entries):
    """entries: (name, kind, arg) with kind file/dir/sym/hard/chr and arg content/target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                data = arg.encode()
                ti.size = len(data)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "xattr":
                ti.size = 0
                ti.pax_headers = {"SCHILY.xattr." + arg: "steer"}
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def state(path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            content = open(p, "rb").read() if os.path.isfile(p) and not os.path.islink(p) else None
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns, content)
    return out


@pytest.fixture
def arena(tmp_path):
    """tmp_path/outside/victim (must never change) and an empty tmp_path/root."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim").write_text("precious")
    (tmp_path / "root").mkdir()
    before = {k: v for k, v in state(tmp_path).items() if not k.startswith("root")}
    yield tmp_path
    after = {k: v for k, v in state(tmp_path).items() if not k.startswith("root")}
    assert after == before, "something outside the layer root changed"


REFUSED = {
    "dotdot": ([("../outside/victim", "file", "pwned")], "escapes"),
    "dotdot-deep": ([("a/../../outside/victim", "file", "pwned")], "escapes"),
    "symlink-then-write": ([("link", "sym", "../outside"), ("link/victim", "file", "pwned")],
                           "symlink"),
    "symlink-abs-then-write": ([("link", "sym", "/"), ("link/tmp/x", "file", "pwned")],
                               "symlink"),
    "symlink-chain": ([("a", "sym", "b"), ("b", "sym", "../outside"), ("a/victim", "file", "x")],
                      "symlink"),
    "symlink-dir-then-dir": ([("d", "sym", "../outside"), ("d/", "dir", None),
                              ("d/victim", "file", "x")], None),
    "hardlink-outside": ([("h", "hard", "../outside/victim")], "escapes"),
    "hardlink-abs": ([("h", "hard", "/etc/passwd")], "does not exist in this layer"),
    "hardlink-missing": ([("h", "hard", "nothere")], "not in this layer"),
    "hardlink-through-symlink": ([("s", "sym", "../outside"), ("h", "hard", "s/victim")],
                                 "symlink"),
    "overlong-component": ([("a" * 300, "file", "x")], "too long"),
    "overlong-path": ([("/".join(["d" * 200] * 30), "file", "x")], "too long"),
    "file-as-dir": ([("f", "file", "x"), ("f/g", "file", "y")], "not a directory"),
    "bad-whiteout": ([("d/.wh...", "file", "")], "escapes|invalid whiteout"),
    "whiteout-escape": ([("../.wh.victim", "file", "")], "escapes"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_tar_refused_or_confined(arena, case):
    entries, message = REFUSED[case]
    data = build_tar(*entries)
    if message is None:  # confined: allowed, but it must land inside the root
        unpack(io.BytesIO(data), str(arena / "root"))
        assert (arena / "root" / "d" / "victim").read_text() == "x"
        assert not (arena / "root" / "d").is_symlink()
        return
    with pytest.raises(ImageError, match=message) as exc:
        unpack(io.BytesIO(data), str(arena / "root"))
    assert "layer" in str(exc.value)


def test_absolute_names_are_confined(arena):
    data = build_tar(("/abs/file", "file", "inside"), ("./rel", "file", "x"),
                     ("/outside/victim", "file", "confined"))
    unpack(io.BytesIO(data), str(arena / "root"))
    assert (arena / "root" / "abs" / "file").read_text() == "inside"
    assert (arena / "root" / "outside" / "victim").read_text() == "confined"


def test_symlinks_are_created_not_followed(arena):
    data = build_tar(("esc", "sym", "../../../../outside/victim"), ("abs", "sym", "/etc/shadow"),
                     ("esc", "file", "replaces the symlink, not its target"))
    unpack(io.BytesIO(data), str(arena / "root"))
    assert not (arena / "root" / "esc").is_symlink()
    assert os.readlink(arena / "root" / "abs") == "/etc/shadow"


def test_overlay_xattrs_in_tar_are_ignored(arena):
    data = build_tar(("f", "xattr", "trusted.overlay.redirect"), ("g", "xattr", "user.overlay.x"))
    unpack(io.BytesIO(data), str(arena / "root"))
    assert os.listxattr(arena / "root" / "f") == []


def test_garbage_is_not_a_tar(arena):
    with pytest.raises(ImageError, match="invalid layer tar"):
        unpack(io.BytesIO(b"\x01" * 1024), str(arena / "root"))


@pytest.mark.root
def test_device_node_where_forbidden(tmp_path):
    """An unprivileged unpacker (here: uid 65534) gets a clear error for a device node."""
    data = build_tar(("dev/null", "chr", None))
    # pytest's tmp dirs are 0700 root: the unprivileged child needs a path it can reach
    top = tempfile.mkdtemp(prefix="pybuild-dev-test-", dir="/tmp")
    os.chmod(top, 0o755)
    root = pathlib.Path(top) / "root"
    root.mkdir()
    os.chown(root, 65534, 65534)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, try, report the error text
        os.close(r)
        try:
            os.setgid(65534)
            os.setuid(65534)
            unpack(io.BytesIO(data), str(root))
            msg = b"no error"
        except ImageError as e:
            msg = str(e).encode()
        except BaseException as e:  # noqa: BLE001
            msg = repr(e).encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    msg = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    try:
        assert "device node is not permitted" in msg
        assert not (root / "dev" / "null").exists()
    finally:
        shutil.rmtree(top)

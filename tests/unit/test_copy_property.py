"""Property: COPY of a random directory tree reproduces it (names, types, modes, bytes,
link targets, mtimes) below the destination, and two trees that differ only in mtimes
have the same cache content."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybuild.builder.context import BuildContext
from pybuild.builder.steps.copy import CopyRequest, prepare_copy

NAMES = st.text(alphabet="abcxyz-_.é\n ", min_size=1, max_size=6).filter(
    lambda n: n not in (".", "..") and "/" not in n)
MODES = st.sampled_from([0o644, 0o600, 0o755, 0o700, 0o444, 0o750])


@st.composite
def trees(draw, depth=0):
    entries = {}
    for name in draw(st.lists(NAMES, max_size=5, unique=True)):
        kind = draw(st.sampled_from(["file", "link"] + (["dir"] if depth < 2 else [])))
        if kind == "file":
            entries[name] = ("file", draw(st.binary(max_size=64)), draw(MODES))
        elif kind == "link":
            entries[name] = ("link", draw(st.sampled_from(["x", "../y", "/abs/z"])), 0)
        else:
            entries[name] = ("dir", draw(trees(depth + 1)), draw(st.sampled_from([0o755, 0o750])))
    return entries


def materialize(root: str, tree: dict, mtime: int) -> None:
    for name, (kind, payload, mode) in tree.items():
        path = os.path.join(root, name)
        if kind == "file":
            with open(path, "wb") as f:
                f.write(payload)
            os.chmod(path, mode)
        elif kind == "link":
            os.symlink(payload, path)
        else:
            os.mkdir(path)
            materialize(path, payload, mtime)
            os.chmod(path, mode)
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def snapshot(root: str) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st_ = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", os.readlink(path), st_.st_mtime_ns)
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st_.st_mode), st_.st_mtime_ns)
            else:
                with open(path, "rb") as f:
                    out[rel] = ("file", f.read(), stat.S_IMODE(st_.st_mode), st_.st_mtime_ns)
    return out


def prepare(ctx: str):
    request = CopyRequest(add=False, sources=("src",), dest="/out", workdir="/")
    return prepare_copy(request, context=BuildContext(ctx), source_root=None, memo=None,
                        scratch_dir=ctx)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_copy_reproduces_a_tree(tree):
    with tempfile.TemporaryDirectory() as tmp:
        ctx, dest = os.path.join(tmp, "ctx"), os.path.join(tmp, "dest")
        os.makedirs(os.path.join(ctx, "src"))
        os.mkdir(dest)
        materialize(os.path.join(ctx, "src"), tree, 1_600_000_000)
        prepared = prepare(ctx)
        prepared.apply(dest)
        assert snapshot(os.path.join(dest, "out")) == snapshot(os.path.join(ctx, "src"))
        # the same tree with other mtimes: the same cache content
        shutil.rmtree(os.path.join(ctx, "src"))
        os.mkdir(os.path.join(ctx, "src"))
        materialize(os.path.join(ctx, "src"), tree, 1_700_000_000)
        assert prepare(ctx).content == prepared.content

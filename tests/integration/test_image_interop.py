"""Interop with the real tools from Debian: skopeo and umoci read what we save, and what they
write loads into our store and unpacks to the same files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from pybuild.image.images import Images
from pybuild.image.manifest import host_platform
from tests.integration.test_image_cli import out, pyrun

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed (make debs)")
needs_umoci = pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci not installed (make debs)")


def tree(root: str) -> dict[str, tuple]:
    """path -> (kind, mode, content hash or link target): what an unpacked image looks like."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(f.read()).hexdigest())
    return out


def unpack_ours(root: str, ref: str, dest) -> dict[str, tuple]:
    """Apply the image's layers with tar (the store's snapshots are another area's job)."""
    dest.mkdir()
    images = Images(root)
    try:
        image = images.get(images.resolve(ref))
        for diff_id in image.config.diff_ids:
            with images.open_layer_tar(diff_id) as src:
                subprocess.run(["tar", "-x", "-p", "--numeric-owner", "-C", str(dest)], stdin=None,
                               input=src.read(), check=True)
    finally:
        images.close()
    return tree(str(dest))


def skopeo(*args) -> str:
    return subprocess.run(["skopeo", "--insecure-policy", *args], check=True, capture_output=True,
                          text=True).stdout


@needs_skopeo
def test_skopeo_reads_our_archives(tmp_path, image_store, busybox_image):
    diff_ids = json.loads(out(image_store, "image", "inspect", "busybox"))[0]["RootFS"]["Layers"]
    dock, oci = tmp_path / "d.tar", tmp_path / "o.tar"
    pyrun(image_store, "save", "-o", str(dock), "busybox")
    pyrun(image_store, "save", "--format", "oci-archive", "-o", str(oci), "busybox")
    info = json.loads(skopeo("inspect", f"docker-archive:{dock}"))
    assert info["Layers"] == diff_ids
    assert info["Architecture"] == host_platform().architecture and info["Os"] == "linux"
    info = json.loads(skopeo("inspect", f"oci-archive:{oci}"))
    assert len(info["Layers"]) == 1
    raw = json.loads(skopeo("inspect", "--config", f"oci-archive:{oci}"))
    assert raw["rootfs"]["diff_ids"] == diff_ids
    # skopeo copies them into its own formats, and we load those back
    skopeo("copy", f"docker-archive:{dock}", f"oci:{tmp_path / 'layout'}:v1")
    skopeo("copy", f"oci-archive:{oci}", f"docker-archive:{tmp_path / 'sk.tar'}:skopeo/made:2")
    subprocess.run(["tar", "-C", str(tmp_path / "layout"), "-cf", str(tmp_path / "layout.tar"), "."], check=True)
    root = tmp_path / "back"
    assert out(root, "load", "-i", str(tmp_path / "sk.tar")) == "Loaded image: skopeo/made:2\n"
    loaded = out(root, "load", "-i", str(tmp_path / "layout.tar"))
    assert loaded.startswith("Loaded image ID: sha256:")  # ref.name "v1" is only a tag
    want = unpack_ours(image_store, "busybox", tmp_path / "u0")
    assert unpack_ours(str(root), "skopeo/made:2", tmp_path / "u1") == want
    assert unpack_ours(str(root), loaded.split()[-1], tmp_path / "u2") == want
    assert "bin/busybox" in want and want["bin/sh"] == ("link", "/bin/busybox")


@needs_umoci
@pytest.mark.root
def test_umoci_unpacks_our_layout(tmp_path, image_store):
    oci = tmp_path / "o.tar"
    pyrun(image_store, "save", "--format", "oci-archive", "-o", str(oci), "busybox")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(oci) as t:
        t.extractall(layout, filter="fully_trusted")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(tmp_path / "bundle")],
                   check=True, capture_output=True)
    theirs = tree(str(tmp_path / "bundle" / "rootfs"))
    assert theirs == unpack_ours(image_store, "busybox", tmp_path / "ours")
    assert theirs["tmp"] == ("dir", 0o1777)


@needs_umoci
@pytest.mark.root
def test_umoci_made_image_loads(tmp_path, busybox_image):
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:t"], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:t", str(bundle)], check=True, capture_output=True)
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir()
    shutil.copy2("/bin/busybox" if os.path.exists("/bin/busybox") else shutil.which("busybox"), rootfs / "bin" / "busybox")
    os.symlink("busybox", rootfs / "bin" / "sh")
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "motd").write_text("made by umoci\n")
    (rootfs / "tmp").mkdir(mode=0o1777)
    os.chmod(rootfs / "tmp", 0o1777)
    subprocess.run(["umoci", "repack", "--image", f"{layout}:t", str(bundle)], check=True, capture_output=True)
    subprocess.run(["umoci", "config", "--image", f"{layout}:t", "--config.cmd", "sh"], check=True)
    archive = tmp_path / "umoci.tar"
    subprocess.run(["tar", "-C", str(layout), "-czf", str(archive), "."], check=True)
    root = tmp_path / "store"
    loaded = out(root, "load", "-i", str(archive))
    assert loaded.startswith("Loaded image ID: sha256:")
    image_id = loaded.split()[-1]
    cfg = json.loads(out(root, "image", "inspect", image_id))[0]["Config"]
    assert cfg["Cmd"] == ["sh"]
    got = unpack_ours(str(root), image_id, tmp_path / "ours")
    want = tree(str(rootfs))
    assert got == want

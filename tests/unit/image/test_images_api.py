"""The image-level API on a real store in tmp_path: put, resolve, tag, remove, prune, history."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from pybuild.errors import ImageError
from pybuild.image.config import ContainerConfig, HistoryEntry, ImageConfig
from pybuild.image.images import Images, _users, register_image_users
from pybuild.image.store import chain_ids


def _layer(tmp_path, name: str, content: bytes) -> str:
    path = tmp_path / f"{name}.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return str(path)


def _image(images, tmp_path, name, parent=None, tags=(), base=()):
    parent_chain = chain_ids(base)[-1] if base else None
    with open(_layer(tmp_path, name, name.encode() * 100), "rb") as f:
        layer = images.unpack_layer(parent_chain, f)
    diff_ids = (*base, layer.diff_id)
    cfg = ImageConfig(
        architecture="amd64", os="linux", created="2024-01-01T00:00:00Z",
        config=ContainerConfig(cmd=("sh",)), diff_ids=diff_ids,
        history=tuple(HistoryEntry(created_by=f"step {i}") for i in range(len(diff_ids)))
        + (HistoryEntry(created_by="CMD", empty_layer=True),),
    )
    return images.put(cfg.to_bytes(), tags=tags, parent=parent), diff_ids


@pytest.fixture
def images(tmp_path):
    im = Images(str(tmp_path / "root"))
    yield im
    im.close()


def test_put_and_resolve(images, tmp_path):
    image_id, _ = _image(images, tmp_path, "a", tags=["busybox"])
    hexid = image_id.split(":")[1]
    for text in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", image_id, hexid,
                 hexid[:12], hexid[:3], "sha256:" + hexid[:5]):
        assert images.resolve(text) == image_id, text
    img = images.get(image_id)
    assert img.tags == ("docker.io/library/busybox:latest",)
    assert img.size == images.layer_size(img.config.diff_ids[0]) > 0
    for missing in ("nope", "busybox:other", "ffffff", "sha256:" + "f" * 64):
        with pytest.raises(ImageError, match="No such image"):
            images.resolve(missing)
    with pytest.raises(ImageError, match="must be lowercase"):
        images.resolve("BusyBox")


def test_put_refuses_config_naming_missing_layer(images):
    cfg = ImageConfig(architecture="amd64", os="linux", diff_ids=("sha256:" + "e" * 64,))
    with pytest.raises(ImageError, match="not in the store"):
        images.put(cfg.to_bytes())


def test_tag_and_rmi_semantics(images, tmp_path):
    image_id, _ = _image(images, tmp_path, "a", tags=["one"])
    images.tag(image_id, "two:1")
    with pytest.raises(ImageError, match="referenced in multiple repositories"):
        images.remove(image_id)
    assert images.remove("two:1") == [("Untagged", "two:1")]
    assert images.remove("one") == [("Untagged", "one:latest"), ("Deleted", image_id)]
    assert images.ids() == []
    with pytest.raises(ImageError, match="No such image"):
        images.tag(image_id, "x")  # the image is gone: no dangling tag rows
    other, _ = _image(images, tmp_path, "b", tags=["one", "two"])
    events = images.remove(other, force=True)
    assert events == [("Untagged", "one:latest"), ("Untagged", "two:latest"), ("Deleted", other)]


def test_rmi_refuses_parent_and_keeps_intermediate(images, tmp_path):
    parent, base = _image(images, tmp_path, "p", tags=["base"])
    child, _ = _image(images, tmp_path, "c", parent=parent, tags=["child"], base=base)
    with pytest.raises(ImageError, match="dependent child images"):
        images.remove(parent, force=True)
    assert images.remove("base") == [("Untagged", "base:latest")]  # untagged, kept for the child
    assert parent in images.ids() and parent not in images.dangling()
    # removing the child also deletes its now-unused untagged parent, as Docker does
    assert images.remove("child") == [("Untagged", "child:latest"), ("Deleted", child), ("Deleted", parent)]


def test_rmi_in_use_by_container(images, tmp_path):
    image_id, _ = _image(images, tmp_path, "a", tags=["app"])

    def users(i):
        return (["c0ffee" * 5], []) if i == image_id else ([], [])

    register_image_users(users)
    try:
        with pytest.raises(ImageError, match="is using its referenced image"):
            images.remove("app")
        with pytest.raises(ImageError, match="cannot be forced"):
            images.remove(image_id, force=True)
        assert images.remove("app", force=True) == [("Untagged", "app:latest")]
        assert image_id in images.ids()
    finally:
        _users.remove(users)


def test_prune_dangling_and_gc(images, tmp_path):
    keep, _ = _image(images, tmp_path, "k", tags=["keep"])
    gone, _ = _image(images, tmp_path, "g")
    events, freed = images.prune()
    assert events == [("deleted", gone)]
    assert freed > 0
    assert images.ids() == [keep]
    assert images.get(keep).config_bytes  # blobs of kept images survive gc
    with images.open_layer_tar(images.get(keep).config.diff_ids[0]) as f:
        assert tarfile.open(fileobj=f, mode="r|").next().name == "k"
    events, _ = images.prune(all_images=True)
    assert events == [("untagged", "keep:latest"), ("deleted", keep)]


def test_history_rows(images, tmp_path):
    parent, base = _image(images, tmp_path, "p", tags=["base"])
    child, _ = _image(images, tmp_path, "c", parent=parent, tags=["child"], base=base)
    rows = images.history(child)
    assert [r[0] for r in rows] == [child, parent, "<missing>"]
    assert [r[1].created_by for r in rows] == ["CMD", "step 1", "step 0"]
    assert rows[0][2] == 0 and rows[1][2] > 0


def test_manifest_for_both_formats(images, tmp_path):
    image_id, diff_ids = _image(images, tmp_path, "a")
    oci = images.manifest(image_id, "oci")
    docker = images.manifest(image_id, "docker")
    assert oci.config.digest == docker.config.digest == image_id
    assert oci.layers[0].media_type.endswith("tar+gzip")
    assert docker.layers[0].media_type.endswith("diff.tar.gzip")


def test_rmi_of_last_tag_drops_that_repositorys_digests(images, tmp_path):
    """As Docker: after a pull (tag + repo digest), `rmi repo:tag` deletes the image instead
    of leaving a `<none>` entry held by the digest; another repository's digest keeps it."""
    d1, d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    pulled, _ = _image(images, tmp_path, "a", tags=["registry.test/app:1"])
    images.store.add_repo_digest("registry.test/app", d1, pulled)
    assert images.remove("registry.test/app:1") == [
        ("Untagged", "registry.test/app:1"), ("Untagged", f"registry.test/app@{d1}"),
        ("Deleted", pulled)]
    kept, _ = _image(images, tmp_path, "b", tags=["registry.test/app:2", "registry.test/app:3"])
    images.store.add_repo_digest("registry.test/app", d1, kept)
    images.store.add_repo_digest("registry.test/other", d2, kept)
    # another tag of the same repository remains: only the tag goes
    assert images.remove("registry.test/app:2") == [("Untagged", "registry.test/app:2")]
    # the last tag of app goes with app's digest; other's digest keeps the image
    assert images.remove("registry.test/app:3") == [
        ("Untagged", "registry.test/app:3"), ("Untagged", f"registry.test/app@{d1}")]
    assert list(images.get(kept).digests) == [f"registry.test/other@{d2}"]


def test_history_sizes_are_content_sizes_as_docker(images, tmp_path):
    """`docker history` SIZE is what the layer holds (files, link targets, hard links once),
    not its tar with headers and padding: a 100-byte file is 100B."""
    from pybuild.image.images import content_size

    image_id, _ = _image(images, tmp_path, "h", tags=["h"])
    rows = images.history(image_id)
    assert [size for _, _, size in rows] == [0, 100]  # CMD (empty layer), then "h" * 100
    tree = tmp_path / "tree"
    (tree / "d" / "e").mkdir(parents=True)
    (tree / "d" / "f").write_bytes(b"x" * 10)
    os.link(tree / "d" / "f", tree / "d" / "e" / "hard")
    os.symlink("abc", tree / "link")
    assert content_size(str(tree)) == 10 + 3


def test_image_size_is_the_content_size_as_docker_images(images, tmp_path):
    """`docker images` SIZE (and inspect's Size) sum the layers' content sizes, as history
    shows them: two layers of 100-byte files are 200B, whatever their tars weigh."""
    import json
    import subprocess
    import sys

    base, diff_ids = _image(images, tmp_path, "a", tags=["base"])
    image_id, _ = _image(images, tmp_path, "b", parent=base, tags=["app:1"], base=diff_ids)
    image = images.get(image_id)
    assert images.content_size(image) == 200 == sum(s for _, _, s in images.history(image_id))
    assert image.size > 200  # the tars, with headers and padding
    snapshot = images.store.snapshot(chain_ids(image.config.diff_ids)[-1])
    memo = os.path.join(os.path.dirname(images.store.snapshot_dir(snapshot)), "content-size")
    assert open(memo).read() == "100"  # walked once, kept next to the snapshot's fs/
    env = {**os.environ, "PYBUILD_ROOT": images.store.root}

    def pyrun(*args):
        return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args], env=env,
                              capture_output=True, text=True, check=True).stdout

    assert pyrun("images", "--format", "{{.Repository}} {{.Size}}").split("\n")[:2] == [
        "app 200B", "base 100B"]
    table = pyrun("images", "app").splitlines()
    assert table[0].split()[-1] == "SIZE" and table[1].split()[-1] == "200B"
    assert json.loads(pyrun("image", "inspect", "app:1"))[0]["Size"] == 200

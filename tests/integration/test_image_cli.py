"""The image verbs end to end through `pyrun`, on a private store root per test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile

import pytest


def pyrun(root, *args, input=None, check=True):
    env = dict(os.environ, PYBUILD_ROOT=str(root))
    r = subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args], env=env, input=input,
                       capture_output=True)
    if check and r.returncode != 0:
        raise AssertionError(f"pyrun {' '.join(args)} -> {r.returncode}\n{r.stderr.decode()}")
    return r


def out(root, *args, **kw) -> str:
    return pyrun(root, *args, **kw).stdout.decode()


def test_images_table_and_quiet(image_store, busybox_image):
    text = out(image_store, "images")
    lines = text.splitlines()
    assert re.match(r"REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$", lines[0])
    assert re.match(r"busybox +latest +[0-9a-f]{12} +\S.* ago +\d+(\.\d+)?MB$", lines[1])
    # columns line up like tabwriter's
    assert lines[0].index("IMAGE ID") == lines[1].index(busybox_image.image_id[7:19])
    assert out(image_store, "images", "-q").split() == [busybox_image.image_id[7:19]]
    assert out(image_store, "images", "-q", "--no-trunc").split() == [busybox_image.image_id]
    assert "DIGEST" in out(image_store, "images", "--digests").splitlines()[0]
    assert out(image_store, "images", "--format", "{{.Repository}}:{{.Tag}}").strip() == "busybox:latest"
    assert out(image_store, "image", "ls", "nosuch").splitlines()[1:] == []
    assert out(image_store, "images", "busybox").count("busybox") == 1
    r = pyrun(image_store, "images", "--format", "{{.Nope}}", check=False)
    assert r.returncode == 125 and b"can't evaluate field Nope" in r.stderr


def test_tag_rmi_output(image_store, busybox_image):
    pyrun(image_store, "tag", "busybox", "localhost:5000/me/bb:1")
    assert "localhost:5000/me/bb" in out(image_store, "images")
    r = pyrun(image_store, "rmi", busybox_image.image_id[7:19], check=False)
    assert r.returncode == 1
    assert b"image is referenced in multiple repositories" in r.stderr
    assert out(image_store, "rmi", "localhost:5000/me/bb:1") == "Untagged: localhost:5000/me/bb:1\n"
    assert out(image_store, "rmi", "busybox") == f"Untagged: busybox:latest\nDeleted: {busybox_image.image_id}\n"
    r = pyrun(image_store, "rmi", "busybox", check=False)
    assert r.returncode == 1 and b"No such image: busybox" in r.stderr
    r = pyrun(image_store, "tag", "nosuch", "x", check=False)
    assert r.returncode == 1 and b"No such image: nosuch" in r.stderr
    r = pyrun(image_store, "tag", "Bad:Ref", "x", check=False)
    assert r.returncode == 1 and b"must be lowercase" in r.stderr


def test_history_and_inspect(image_store, busybox_image):
    lines = out(image_store, "history", "busybox").splitlines()
    assert re.match(r"IMAGE +CREATED +CREATED BY +SIZE +COMMENT$", lines[0])
    assert lines[1].startswith(busybox_image.image_id[7:19]) and 'CMD ["sh"]' in lines[1]
    assert lines[2].startswith("<missing>") and "…" in lines[2]
    assert "…" not in out(image_store, "history", "--no-trunc", "busybox")
    assert out(image_store, "history", "-q", "busybox").split() == [busybox_image.image_id[7:19], "<missing>"]
    raw = out(image_store, "history", "-H=false", "busybox")
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", raw) and re.search(r" \d{6,} ", raw)
    data = json.loads(out(image_store, "image", "inspect", "busybox"))
    assert data[0]["Id"] == busybox_image.image_id
    assert data[0]["RepoTags"] == ["busybox:latest"]
    assert data[0]["Config"]["Cmd"] == ["sh"] and data[0]["Config"]["Env"][0].startswith("PATH=")
    assert data[0]["RootFS"]["Type"] == "layers" and len(data[0]["RootFS"]["Layers"]) == 1
    assert data[0]["Size"] > 1_000_000
    assert out(image_store, "image", "inspect", "-f", "{{.Id}}", "busybox").strip() == busybox_image.image_id
    r = pyrun(image_store, "image", "inspect", "busybox", "nosuch", check=False)
    assert r.returncode == 1 and len(json.loads(r.stdout)) == 1 and b"No such image: nosuch" in r.stderr


def test_bootstrap_is_deterministic_and_complete(tmp_path, busybox_image):
    image_id = out(tmp_path / "r2", "bootstrap", "busybox", "mybox:1").strip()
    assert image_id == busybox_image.image_id  # same host busybox -> same image id
    save = tmp_path / "bb.tar"
    pyrun(tmp_path / "r2", "save", "-o", str(save), "mybox:1")
    with tarfile.open(save) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        layer = tarfile.open(fileobj=outer.extractfile(manifest[0]["Layers"][0]))
        members = {m.name: m for m in layer.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["tmp"].mode == 0o1777
    assert {"etc/passwd", "etc/group", "root", "usr/bin/env"} <= set(members)
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    names = [m.name for m in layer.getmembers()]
    assert names == sorted(names)
    r = pyrun(tmp_path / "r2", "bootstrap", "alpine", check=False)
    assert r.returncode == 1 and b"use busybox or debian:SUITE" in r.stderr


def test_bootstrap_debian_unreachable_mirror(tmp_path):
    """The clear error path only: a real debootstrap is slow and needs the network."""
    import socket

    with socket.socket() as s:  # a free port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = pyrun(tmp_path / "r", "bootstrap", "debian:bookworm", "--mirror", f"http://127.0.0.1:{port}/debian",
              check=False)
    assert r.returncode == 1
    assert b"the Debian archive at http://127.0.0.1:" in r.stderr and b"is not reachable" in r.stderr
    r = pyrun(tmp_path / "r", "bootstrap", "debian:Bad_Suite", check=False)
    assert r.returncode == 1 and b"invalid Debian suite" in r.stderr


def test_import_with_changes(tmp_path, busybox_image):
    root = tmp_path / "r"
    src = tmp_path / "rootfs.tar"
    d = tmp_path / "rootfs"
    (d / "etc").mkdir(parents=True)
    (d / "etc" / "hello").write_text("hi\n")
    subprocess.run(["tar", "-C", str(d), "-czf", str(src), "."], check=True)
    image_id = out(root, "import", "-c", 'CMD ["/bin/hello"]', "-c", "ENV A=1 B=2", "-c", "EXPOSE 80",
                   "-c", "WORKDIR /srv", "-c", "USER nobody", "-c", "LABEL k=v", "-c", "VOLUME /data",
                   "-m", "my import", str(src), "imp:1").strip()
    assert image_id.startswith("sha256:")
    data = json.loads(out(root, "image", "inspect", "imp:1"))[0]
    cfg = data["Config"]
    assert cfg["Cmd"] == ["/bin/hello"] and cfg["Env"] == ["A=1", "B=2"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}} and cfg["WorkingDir"] == "/srv"
    assert cfg["User"] == "nobody" and cfg["Labels"] == {"k": "v"} and cfg["Volumes"] == {"/data": {}}
    assert data["Comment"] == "my import"
    # from stdin, untagged: shows as <none>
    with open(src, "rb") as f:
        image2 = pyrun(root, "import", "-", input=f.read()).stdout.decode().strip()
    assert image2 != image_id  # a different creation time and comment
    assert "<none>" in out(root, "images")
    assert "Imported from -" in out(root, "history", "--no-trunc", image2)
    for bad, msg in ((["-c", "RUN true", str(src)], b"not a valid change instruction"),
                     ([str(tmp_path / "missing.tar")], b"No such file"),
                     ([str(src), "Bad"], b"must be lowercase")):
        r = pyrun(root, "import", *bad, check=False)
        assert r.returncode == 1 and msg in r.stderr, r.stderr
    notatar = tmp_path / "x.txt"
    notatar.write_bytes(b"hello" * 300)
    r = pyrun(root, "import", str(notatar), check=False)
    assert r.returncode == 1 and b"not a valid tar archive" in r.stderr


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_load_round_trip(tmp_path, image_store, busybox_image, fmt):
    pyrun(image_store, "tag", "busybox", "other/name:2")
    archive = tmp_path / "a.tar"
    pyrun(image_store, "save", "--format", fmt, "-o", str(archive), "busybox", "other/name:2")
    root = tmp_path / "fresh"
    text = out(root, "load", "-i", str(archive))
    assert sorted(text.splitlines()) == ["Loaded image: busybox:latest", "Loaded image: other/name:2"]
    assert out(root, "images", "-q", "--no-trunc").split() == [busybox_image.image_id]
    # gzip-compressed archive from stdin
    gz = subprocess.run(["gzip", "-c", str(archive)], capture_output=True, check=True).stdout
    root2 = tmp_path / "fresh2"
    assert "Loaded image: busybox:latest" in pyrun(root2, "load", input=gz).stdout.decode()
    # saving by id records no tag
    pyrun(image_store, "save", "--format", fmt, "-o", str(archive), busybox_image.image_id[7:19])
    assert out(tmp_path / "fresh3", "load", "-i", str(archive)) == f"Loaded image ID: {busybox_image.image_id}\n"


def test_save_to_stdout_and_prune(tmp_path, image_store, busybox_image):
    data = pyrun(image_store, "save", "busybox").stdout
    assert data[257:262] == b"ustar"
    pyrun(image_store, "rmi", "busybox")
    blobs = os.path.join(image_store, "blobs", "sha256")
    assert len(os.listdir(blobs)) == 2  # rmi alone leaves the blobs to garbage collection
    text = out(image_store, "image", "prune", "-f")
    assert re.fullmatch(r"Total reclaimed space: \d+(\.\d+)?MB\n", text)
    assert os.listdir(blobs) == []
    root = tmp_path / "p"
    pyrun(root, "load", input=data)
    pyrun(root, "tag", "busybox", "keep:me")
    pyrun(root, "rmi", "busybox")
    text = out(root, "image", "prune", "-f")
    assert text == "Total reclaimed space: 0B\n"  # still tagged keep:me
    pyrun(root, "tag", "keep:me", "dangling:no")
    text = out(root, "image", "prune", "-a", "-f")  # -a: every image no container uses
    assert text.startswith("Deleted Images:\nuntagged: dangling:no\nuntagged: keep:me\ndeleted: sha256:")
    assert re.search(r"Total reclaimed space: \d+(\.\d+)?MB\n$", text)
    assert out(root, "images", "-q") == ""


@pytest.mark.root
def test_rmi_refuses_image_of_a_container(image_store, busybox_image):
    run = pyrun(image_store, "run", "busybox", "true", check=False)
    if run.returncode != 0:
        pytest.skip(f"pyrun run does not work here: {run.stderr.decode()[-200:]}")
    r = pyrun(image_store, "rmi", "busybox", check=False)
    assert r.returncode == 1 and b"is using its referenced image" in r.stderr
    r = pyrun(image_store, "rmi", busybox_image.image_id[7:19], check=False)
    assert r.returncode == 1 and b"image is being used by stopped container" in r.stderr
    assert "Deleted Images" not in out(image_store, "image", "prune", "-a", "-f")
    # -f on the tag untags; the image stays for the container
    assert out(image_store, "rmi", "-f", "busybox") == "Untagged: busybox:latest\n"
    assert out(image_store, "images", "-q", "--no-trunc").split() == [busybox_image.image_id]

"""`pyrun run IMAGE` on images in the store: the image's config (Env, ENTRYPOINT, CMD,
WORKDIR, USER) and its layers as the container's lower dirs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.plugins.runtime import child_pids, mount_points

pytestmark = pytest.mark.root


def pyrun(root, *args, input=None):
    return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args],
                          env={**os.environ, "PYBUILD_ROOT": root}, capture_output=True,
                          text=True, input=input, timeout=120,
                          stdin=None if input is not None else subprocess.DEVNULL)


def test_run_busybox_from_the_store(image_store, tmp_path):
    before = mount_points(tmp_path.parent), child_pids()
    res = pyrun(image_store, "run", "--rm", "busybox", "sh", "-c", "echo hi; echo $PATH; ls /bin/sh")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["hi", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                  "/bin/sh"]
    assert (mount_points(tmp_path.parent), child_pids()) == before
    assert [e for e in os.listdir(os.path.join(image_store, "containers")) if len(e) == 64] == []


def test_default_cmd_and_exit_code(image_store):
    res = pyrun(image_store, "run", "--rm", "-i", "busybox:latest", input="echo from-cmd; exit 7\n")
    assert res.returncode == 7 and res.stdout == "from-cmd\n"  # the image's CMD is ["sh"]


def test_image_config_entrypoint_cmd_env_workdir_user(image_store, tmp_path):
    # busybox's files, exported by a container, imported again with a full config
    save = subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", "run", "--rm", "busybox",
                           "tar", "-cf", "-", "-C", "/", "bin", "etc", "usr", "sbin"],
                          env={**os.environ, "PYBUILD_ROOT": image_store}, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert save.returncode == 0, save.stderr
    (tmp_path / "bb.tar").write_bytes(save.stdout)
    changes = ["ENV GREETING=hello", 'ENTRYPOINT ["/bin/echo", "ep"]', 'CMD ["default"]',
               "WORKDIR /srv/app", "USER nobody"]
    args = ["import"]
    for c in changes:
        args += ["-c", c]
    res = pyrun(image_store, *args, str(tmp_path / "bb.tar"), "configured:1")
    assert res.returncode == 0, res.stderr
    assert pyrun(image_store, "run", "--rm", "configured:1").stdout == "ep default\n"
    assert pyrun(image_store, "run", "--rm", "configured:1", "a", "b").stdout == "ep a b\n"
    res = pyrun(image_store, "run", "--rm", "--entrypoint", "sh", "configured:1", "-c",
                "id -u; pwd; echo $GREETING $HOME")
    assert res.stdout.split("\n")[:3] == ["65534", "/srv/app", "hello /home"]
    res = pyrun(image_store, "run", "--rm", "-u", "0", "-e", "GREETING=hi", "--entrypoint", "",
                "configured:1", "sh", "-c", "id -u; echo $GREETING")
    assert res.stdout.split() == ["0", "hi"]


def test_missing_image_is_125(image_store):
    res = pyrun(image_store, "run", "--rm", "no-such-image", "true")
    assert res.returncode == 125 and "No such image" in res.stderr
    containers = os.path.join(image_store, "containers")
    assert not os.path.isdir(containers) or not [e for e in os.listdir(containers) if len(e) == 64]


def test_layers_come_from_store_snapshots_shared_by_containers(tmp_path):
    from pybuild.image.store import Store

    root = str(tmp_path / "store")
    Store(root).close()  # a store made by the store code: its snapshots are usable
    res = pyrun(root, "bootstrap", "busybox")
    assert res.returncode == 0, res.stderr
    for _ in range(2):
        res = pyrun(root, "run", "--rm", "busybox", "sh", "-c", "head -1 /proc/self/mountinfo")
        assert res.returncode == 0, res.stderr
        assert f"lowerdir={root}/snapshots/1/fs," in res.stdout
    assert os.listdir(os.path.join(root, "snapshots")) == ["1"]

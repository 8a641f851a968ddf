"""Volumes on real containers over busybox: binds (rw and :ro), named volumes that outlive
their containers, copy-up of image content, anonymous volumes (-v /path and the image's
VOLUME), --volumes-from, --tmpfs, --mount, and the `pyrun volume` verbs."""

from __future__ import annotations

import json
import os

import pytest

from tests.plugins.runtime import child_pids, mount_points
from tests.plugins.volumes import container_ids, tag_with_volumes, volume_names

pytestmark = pytest.mark.root


@pytest.fixture
def clean(tmp_path):
    """Nothing mounted below the test's dirs and no process left afterwards."""
    before = mount_points(tmp_path.parent), child_pids()
    yield
    assert (mount_points(tmp_path.parent), child_pids()) == before


def _state(root: str, cid: str) -> dict:
    with open(os.path.join(root, "containers", cid, "state.json")) as f:
        return json.load(f)


def test_bind_mount_sees_writes_and_ro_refuses(pyrun, tmp_path, clean):
    host = tmp_path / "shared"
    res = pyrun("run", "--rm", "-v", f"{host}:/w", "busybox", "sh", "-c",
                "echo from-ctr > /w/out; mkdir /w/d; chown 5:6 /w/d")
    assert res.returncode == 0, res.stderr
    assert (host / "out").read_text() == "from-ctr\n"  # -v made the missing host dir
    assert ((host / "d").stat().st_uid, (host / "d").stat().st_gid) == (5, 6)
    res = pyrun("run", "--rm", "-v", f"{host}:/w:ro", "busybox", "sh", "-c",
                "cat /w/out; echo x > /w/new")
    assert res.returncode == 1 and res.stdout == "from-ctr\n"
    assert "Read-only file system" in res.stderr and not (host / "new").exists()
    res = pyrun("run", "--rm", "--mount", f"type=bind,src={host},dst=/w,readonly", "busybox",
                "sh", "-c", "grep ' /w ' /proc/mounts")
    assert res.returncode == 0 and " ro," in res.stdout


def test_named_volume_outlives_containers_with_copy_up(pyrun, image_store, clean):
    res = pyrun("run", "--rm", "-v", "etcvol:/etc", "busybox", "sh", "-c",
                "stat -c '%a %u' /etc/shadow; rm /etc/hostname; echo kept > /etc/new")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "640 0\n"  # the image's /etc copied in, modes kept
    data = os.path.join(image_store, "volumes", "etcvol", "_data")
    assert sorted(os.listdir(data)) == ["group", "hosts", "new", "nsswitch.conf", "os-release",
                                        "passwd", "resolv.conf", "shadow"]
    # the volume outlived its --rm container; it is not empty now: no second copy-up
    res = pyrun("run", "--rm", "-v", "etcvol:/etc", "busybox", "sh", "-c",
                "cat /etc/new; ls /etc/hostname")
    assert res.stdout == "kept\n" and res.returncode == 1
    assert volume_names(image_store) == ["etcvol"] and container_ids(image_store) == []
    # nocopy: an empty named volume stays empty
    res = pyrun("run", "--rm", "-v", "bare:/etc:nocopy", "busybox", "ls", "-A", "/etc")
    assert res.returncode == 0 and res.stdout == ""


def test_anonymous_volumes_and_image_volume(pyrun, image_store, clean):
    # -v /path with --rm: the anonymous volume goes with the container
    res = pyrun("run", "--rm", "-v", "/etc", "busybox", "sh", "-c",
                "grep -c root /etc/passwd; grep ' /etc ' /proc/mounts | wc -l")
    assert res.stdout.split() == ["1", "1"], res.stderr
    assert volume_names(image_store) == []
    tag_with_volumes(image_store, "busybox", "withvol:1", ["/etc", "/srv/data"])
    res = pyrun("run", "--name", "keeper", "withvol:1", "sh", "-c",
                "cat /etc/hostname; echo v > /srv/data/f")
    assert res.returncode == 0 and res.stdout == "busybox\n", res.stderr
    (cid,) = container_ids(image_store)
    mounts = _state(image_store, cid)["mounts"]
    assert [(m["Type"], m["Destination"], m["RW"]) for m in mounts] == \
        [("volume", "/etc", True), ("volume", "/srv/data", True)]
    anon = sorted(m["Name"] for m in mounts)
    assert volume_names(image_store) == anon and all(len(n) == 64 for n in anon)
    res = pyrun("volume", "rm", anon[0])
    assert res.returncode == 1
    assert res.stderr.strip() == f"error: remove {anon[0]}: volume is in use - [{cid}]"
    res = pyrun("volume", "prune", "-f")  # in use: kept
    assert res.stdout == "Total reclaimed space: 0B\n" and volume_names(image_store) == anon
    # --volumes-from shares them; :ro makes them read-only there
    res = pyrun("run", "--rm", "--volumes-from", "keeper:ro", "busybox", "sh", "-c",
                "cat /srv/data/f; touch /srv/data/g")
    assert res.stdout == "v\n" and "Read-only file system" in res.stderr
    res = pyrun("run", "--rm", "--volumes-from", cid[:12], "busybox", "sh", "-c",
                "touch /srv/data/g && ls /srv/data")
    assert res.stdout.split() == ["f", "g"], res.stderr
    assert volume_names(image_store) == anon  # borrowed volumes stay with their owner
    res = pyrun("rm", "keeper")  # without -v the anonymous volumes stay, as in Docker
    assert res.returncode == 0 and volume_names(image_store) == anon
    res = pyrun("volume", "prune", "-f")  # now unused: prune takes anonymous volumes
    assert res.stdout.splitlines()[:3] == ["Deleted Volumes:", *anon]
    assert volume_names(image_store) == []
    res = pyrun("run", "--name", "keeper2", "withvol:1", "true")
    assert res.returncode == 0 and len(volume_names(image_store)) == 2
    assert pyrun("rm", "-v", "keeper2").returncode == 0
    assert volume_names(image_store) == []


def test_tmpfs_and_mount_volume_options(pyrun, image_store, clean):
    res = pyrun("run", "--rm", "--tmpfs", "/run:size=64k,mode=1777", "--mount",
                "type=tmpfs,dst=/scratch,tmpfs-size=128k,readonly", "--mount",
                "type=volume,src=memvol,dst=/mem,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
                "volume-opt=o=size=256k", "busybox", "sh", "-c",
                "grep -E ' /(run|scratch|mem) ' /proc/mounts | sort; stat -c %a /run; "
                "echo x > /mem/f && cat /mem/f")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("tmpfs /mem tmpfs rw,") and "size=256k" in lines[0]
    assert lines[1].startswith("tmpfs /run tmpfs rw,nosuid,nodev,noexec,") and "size=64k" in lines[1]
    assert lines[2].startswith("tmpfs /scratch tmpfs ro,") and "size=128k" in lines[2]
    assert lines[3:] == ["1777", "x"]
    assert not os.listdir(os.path.join(image_store, "volumes", "memvol", "_data"))
    res = pyrun("volume", "inspect", "memvol")
    assert json.loads(res.stdout)[0]["Options"] == {"type": "tmpfs", "device": "tmpfs",
                                                    "o": "size=256k"}


@pytest.mark.parametrize("args,message", [
    (["--mount", "type=bind,src=/nonexistent-pybuild,dst=/x"],
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent-pybuild'),
    (["--mount", "type=volume,dst=/x,bogus=1"],
     'invalid argument "type=volume,dst=/x,bogus=1" for "--mount" flag: unexpected key'),
    (["--mount", "dst=/x"], "type is required"),
    (["-v", "v1:/x", "-v", "v2:/x"], "Duplicate mount point: /x"),
    (["-v", "a:/x:bogus"], "invalid mode: bogus"),
    (["-v", "a:/x"], "volume name is too short"),
    (["--tmpfs", "/x:nope"], 'invalid tmpfs option ["nope"]'),
    (["--volumes-from", "no-such-ctr"], "No such container: no-such-ctr"),
    (["-v", "xx:/y", "--mount", "type=volume,src=v,dst=/z,volume-opt=bogus=1"], 'invalid option: "bogus"'),
])
def test_mount_errors_exit_125_and_leave_nothing(pyrun, image_store, args, message):
    res = pyrun("run", "--rm", *args, "busybox", "true")
    assert res.returncode == 125 and message in res.stderr, res.stderr
    assert container_ids(image_store) == []
    assert [n for n in volume_names(image_store) if len(n) == 64] == []


def test_volume_verbs(pyrun, image_store, clean):
    assert pyrun("volume", "create", "--label", "team=a", "alpha").stdout == "alpha\n"
    assert pyrun("volume", "create", "beta").stdout == "beta\n"
    gen = pyrun("volume", "create").stdout.strip()
    assert len(gen) == 64
    res = pyrun("volume", "ls")
    assert res.stdout.splitlines() == ["DRIVER    VOLUME NAME", *sorted(
        f"local     {n}" for n in ("alpha", "beta", gen))]
    assert pyrun("volume", "ls", "-q", "-f", "label=team=a").stdout == "alpha\n"
    assert pyrun("volume", "ls", "-q", "-f", "name=bet").stdout == "beta\n"
    assert pyrun("volume", "ls", "--format", "{{.Name}}:{{.Driver}}", "-f",
                 "name=alpha").stdout == "alpha:local\n"
    res = pyrun("run", "--name", "user", "-v", "beta:/b", "busybox", "true")
    assert res.returncode == 0, res.stderr
    assert pyrun("volume", "ls", "-q", "-f", "dangling=true").stdout.split() == sorted(["alpha", gen])
    assert pyrun("volume", "ls", "-q", "-f", "dangling=false").stdout.split() == ["beta"]
    with open(os.path.join(image_store, "volumes", "alpha", "_data", "f"), "wb") as f:
        f.write(b"x" * 1500)
    df = [ln.split() for ln in pyrun("system", "df").stdout.splitlines()]
    assert ["Local", "Volumes", "3", "1", "1.5kB", "1.5kB", "(100%)"] in df
    obj = json.loads(pyrun("volume", "inspect", "alpha").stdout)[0]
    assert obj["Name"] == "alpha" and obj["Driver"] == "local" and obj["Scope"] == "local"
    assert obj["Labels"] == {"team": "a"} and obj["CreatedAt"].endswith("Z")
    assert obj["Mountpoint"] == os.path.join(image_store, "volumes", "alpha", "_data")
    assert pyrun("volume", "inspect", "-f", "{{.Name}} {{.Scope}}", "alpha").stdout == "alpha local\n"
    res = pyrun("volume", "inspect", "nope")
    assert res.returncode == 1 and "No such volume: nope" in res.stderr
    res = pyrun("volume", "rm", "nope")
    assert res.returncode == 1 and "no such volume" in res.stderr
    assert pyrun("volume", "rm", "-f", "nope").returncode == 0
    res = pyrun("volume", "create", "a")
    assert res.returncode == 1 and "too short" in res.stderr
    # prune: unused anonymous volumes by default (none here); -a takes every unused one
    res = pyrun("volume", "prune", "-f")
    assert res.stdout == "Total reclaimed space: 0B\n"
    res = pyrun("volume", "prune", "-f", "-a")
    assert res.stdout.splitlines()[:3] == ["Deleted Volumes:", *sorted(["alpha", gen])]
    assert volume_names(image_store) == ["beta"]
    res = pyrun("volume", "prune", "-a", input="n\n")
    assert "Are you sure you want to continue? [y/N]" in res.stdout
    assert pyrun("volume", "rm", "beta").returncode == 1  # still used by the stopped "user"


def test_copy_up_once_under_concurrent_runs(image_store, clean):
    """Three runs that create the same new volume at once: one copies the image's /etc in,
    the others wait and find it filled; a volume at two paths is filled from the first."""
    import subprocess
    import sys

    env = {**os.environ, "PYBUILD_ROOT": image_store}
    procs = [subprocess.Popen([sys.executable, "-m", "pybuild.cli.pyrun", "run", "--rm", "-v",
                               "race:/etc", "busybox", "cat", "/etc/hostname"], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    assert [o[0] for o in outs] == ["busybox\n"] * 3
    data = os.path.join(image_store, "volumes", "race", "_data")
    assert sorted(os.listdir(data)) == ["group", "hostname", "hosts", "nsswitch.conf",
                                        "os-release", "passwd", "resolv.conf", "shadow"]
    res = subprocess.run(
        [sys.executable, "-m", "pybuild.cli.pyrun", "run", "--rm", "-v", "twice:/etc", "-v",
         "twice:/srv", "busybox", "ls", "/srv"], env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "passwd" in res.stdout.split() and "busybox" not in res.stdout.split()

"""commit, cp, diff and export on real containers over busybox (stopped and running), with
hostile paths that must stay inside the container."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time

import pytest

from tests.plugins.runtime import child_pids, mount_points
from tests.plugins.volumes import pyrun_in

pytestmark = pytest.mark.root


@pytest.fixture
def clean(tmp_path):
    before = mount_points(tmp_path.parent), child_pids()
    yield
    assert (mount_points(tmp_path.parent), child_pids()) == before


def _made(pyrun, name, script, *extra):
    res = pyrun("run", "--name", name, *extra, "busybox", "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    return res


def test_commit_then_run_and_build_on_it(pyrun, image_store, clean):
    _made(pyrun, "c1", "echo hello > /hello; rm /etc/os-release; mkdir -p /opt/x; "
          "echo 1 > /opt/x/y", "-v", "/vol")
    res = pyrun("commit", "-m", "my message", "-a", "Ann <a@example.com>", "-c",
                'CMD ["cat", "/hello"]', "-c", "ENV STAGE=committed", "c1", "snap:1")
    assert res.returncode == 0, res.stderr
    image_id = res.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    res = pyrun("run", "--rm", "snap:1")
    assert res.stdout == "hello\n", res.stderr  # -c CMD applied
    res = pyrun("run", "--rm", "snap:1", "sh", "-c",
                "echo $STAGE; cat /opt/x/y; ls /etc/os-release; ls -d /vol")
    # the deletion kept; `-v /vol` is in Config.Volumes, as Docker commits it: a volume again
    assert res.stdout.split() == ["committed", "1", "/vol"]
    assert "os-release" in res.stderr
    from pybuild.image.images import Images

    images = Images(image_store)
    try:
        img = images.get(images.resolve("snap:1"))
        last = img.config.history[-1]
        assert (last.comment, last.author) == ("my message", "Ann <a@example.com>")
        assert last.created_by.startswith("sh -c echo hello > /hello")
        assert img.config.author == "Ann <a@example.com>" and len(img.config.diff_ids) == 2
        assert img.parent == images.resolve("busybox")
    finally:
        images.close()
    hist = pyrun("history", "--no-trunc", "--format", "{{.Comment}}", "snap:1")
    assert hist.stdout.splitlines()[0] == "my message"
    # the snapshot tars to the diff id the config records (save re-tars and verifies it)
    res = pyrun("save", "-o", os.path.join(image_store, "snap.tar"), "snap:1")
    assert res.returncode == 0, res.stderr
    # a second commit of the unchanged container reuses the stored layer
    res = pyrun("commit", "c1", "snap:again")
    images = Images(image_store)
    try:
        again = images.get(images.resolve("snap:again")).config.diff_ids
        assert again == images.get(image_id).config.diff_ids
    finally:
        images.close()
    # the committed image is a base like any other: commit a container of it again
    _made_image = pyrun("run", "--name", "c2", "snap:1", "sh", "-c", "echo two > /two")
    assert _made_image.returncode == 0, _made_image.stderr
    res = pyrun("commit", "c2", "snap:2")
    assert res.returncode == 0, res.stderr
    res = pyrun("run", "--rm", "snap:2", "sh", "-c", "cat /hello /two")
    assert res.stdout == "hello\ntwo\n"
    # and a Dockerfile's FROM
    ctx = os.path.join(image_store, "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write('FROM snap:1\nRUN cat /hello /opt/x/y > /built\nCMD ["cat", "/built"]\n')
    build = subprocess.run([sys.executable, "-m", "pybuild.cli.build", "--progress", "plain",
                            "-t", "fromsnap:1", ctx], env={**os.environ, "PYBUILD_ROOT": image_store},
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert build.returncode == 0, build.stderr
    assert pyrun("run", "--rm", "fromsnap:1").stdout == "hello\n1\n"


def test_commit_errors(pyrun, image_store):
    assert pyrun("commit", "nope").returncode == 1
    _made(pyrun, "c3", "true")
    res = pyrun("commit", "-c", "RUN echo no", "c3")
    assert res.returncode == 1 and "not a valid change instruction" in res.stderr
    res = pyrun("commit", "c3", "BAD:REF:x")
    assert res.returncode == 1


def test_diff_and_export(pyrun, image_store, tmp_path, clean):
    _made(pyrun, "d1", "echo n > /new; echo c >> /etc/passwd; rm /etc/os-release; "
          "rm -r /usr/sbin; mkdir -p /srv/a; rm -r /sbin; mkdir /sbin; touch /sbin/only")
    res = pyrun("diff", "d1")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines == sorted(lines, key=lambda x: x[2:])
    for want in ("A /new", "C /etc", "C /etc/passwd", "D /etc/os-release", "D /usr/sbin",
                 "A /srv", "A /srv/a", "C /sbin", "A /sbin/only", "D /sbin/ifconfig"):
        assert want in lines
    # /sbin was emptied and made again: an opaque dir hides every image entry below it
    assert not any(line.startswith("C /sbin/") for line in lines)
    out = tmp_path / "d1.tar"
    assert pyrun("export", "-o", str(out), "d1").returncode == 0
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        assert tf.extractfile("new").read() == b"n\n"
        assert tf.extractfile("etc/passwd").read().endswith(b"c\n")
    assert "etc/os-release" not in names and "bin/busybox" in names
    assert [n for n in names if n.startswith("sbin/")] == ["sbin/only"]
    assert not any(n.startswith("usr/sbin") for n in names)
    streamed = pyrun("export", "d1", text=False)
    assert streamed.returncode == 0 and streamed.stdout == out.read_bytes()  # deterministic
    assert pyrun("diff", "nope").returncode == 1


def test_cp_both_ways_and_tar_streams(pyrun, image_store, tmp_path, clean):
    _made(pyrun, "k1", "mkdir -p /data/sub; echo a > /data/sub/f; chown 7:8 /data/sub/f; "
          "ln -s sub/f /data/link")
    host = tmp_path / "host"
    host.mkdir()
    # dir into existing dir; trailing /. copies contents; a file to a new name
    assert pyrun("cp", "k1:/data", str(host)).returncode == 0
    assert (host / "data" / "sub" / "f").read_text() == "a\n"
    assert os.readlink(host / "data" / "link") == "sub/f"  # links are copied, not followed
    assert (host / "data" / "sub" / "f").stat().st_uid == 0  # owned by the caller
    assert pyrun("cp", "-a", "k1:/data/.", str(host / "flat")).returncode == 0
    assert (host / "flat" / "sub" / "f").stat().st_uid == 7  # -a keeps the owners
    assert pyrun("cp", "k1:/data/sub/f", str(host / "renamed")).returncode == 0
    assert (host / "renamed").read_text() == "a\n"
    assert pyrun("cp", "-L", "k1:/data/link", str(host / "followed")).returncode == 0
    assert (host / "followed").read_text() == "a\n"
    res = pyrun("cp", "k1:/data", str(host / "renamed"))
    assert res.returncode == 1 and "cannot copy a directory to a file" in res.stderr
    res = pyrun("cp", "k1:/nope", str(host))
    assert res.returncode == 1 and "Could not find the file /nope in container k1" in res.stderr
    # host -> container (root-owned by default), then seen by diff and by the next run
    (host / "in.txt").write_text("in\n")
    os.chown(host / "in.txt", 5, 5)
    assert pyrun("cp", str(host / "in.txt"), "k1:/data/sub/").returncode == 0
    assert pyrun("cp", "-a", str(host / "in.txt"), "k1:/kept.txt").returncode == 0
    res = pyrun("cp", "k1:/data/sub/in.txt", "-", text=False)
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
        (ti,) = tf.getmembers()
        assert (ti.name, ti.uid, tf.extractfile(ti).read()) == ("in.txt", 0, b"in\n")
    res = pyrun("cp", "k1:/data", "-", text=False)
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
        assert sorted(tf.getnames()) == ["data", "data/link", "data/sub", "data/sub/f",
                                         "data/sub/in.txt"]
    assert "A /kept.txt" in pyrun("diff", "k1").stdout
    res = pyrun("cp", "k1:/kept.txt", "-", text=False)
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
        assert tf.getmembers()[0].uid == 5
    # a tar stream into the container
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"streamed\n"
        ti = tarfile.TarInfo("t/streamed.txt")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    res = pyrun("cp", "-", "k1:/data", input=buf.getvalue(), text=False)
    assert res.returncode == 0, res.stderr
    res = pyrun("cp", "k1:/data/t/streamed.txt", str(host / "s.txt"))
    assert (host / "s.txt").read_text() == "streamed\n"
    res = pyrun("cp", "-", "k1:/data/sub/f", input=buf.getvalue(), text=False)
    assert res.returncode == 1 and "must be a directory" in res.stderr.decode()


def test_cp_hostile_paths_stay_inside(pyrun, image_store, tmp_path, clean):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    _made(pyrun, "h1", f"ln -s {outside} /esc; ln -s ../../../../../../{outside} /rel; "
          "ln -s /etc /etclink")
    host = tmp_path / "got"
    host.mkdir()
    # ../ in a container path is clamped at the container's /
    assert pyrun("cp", "h1:../../../../etc/passwd", str(host / "p")).returncode == 0
    assert (host / "p").read_text().startswith("root:x:0:0:root:/root")
    assert "host secret" not in (host / "p").read_text()
    # following a link that points out of the container resolves inside it
    res = pyrun("cp", "-L", "h1:/esc/secret", str(host / "s"))
    assert res.returncode == 1 and not (host / "s").exists()
    res = pyrun("cp", "h1:/rel/.", str(host / "r"))
    assert res.returncode == 1 and not (host / "r").exists()
    # writes through such links land inside the container, never on the host
    (tmp_path / "payload").write_text("x\n")
    for dest in ("h1:/esc/planted", "h1:/rel/planted"):
        pyrun("cp", str(tmp_path / "payload"), dest)
    assert sorted(os.listdir(outside)) == ["secret"]
    assert pyrun("cp", str(tmp_path / "payload"), "h1:/etclink/").returncode == 0
    assert pyrun("cp", "h1:/etc/payload", str(host / "back")).returncode == 0
    # a tar stream with ../ names or a path through a link is refused
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in ("../../../../escape", "esc/planted2"):
            ti = tarfile.TarInfo(name)
            tf.addfile(ti, io.BytesIO(b""))
    res = pyrun("cp", "-", "h1:/", input=buf.getvalue(), text=False)
    assert res.returncode == 1 and b"escapes" in res.stderr
    assert sorted(os.listdir(outside)) == ["secret"]
    assert not os.path.exists("/escape")


def test_running_container_cp_commit_diff(image_store, tmp_path, clean):
    """A detached container: cp into it lands in its own view, commit pauses it (SIGSTOP
    fallback without a cgroup) and captures its files, diff and cp read it live."""
    res = pyrun_in(image_store, "run", "-d", "--name", "live", "busybox", "sh", "-c",
                   "trap 'exit 0' TERM; echo live > /live; while true; do sleep 0.1; done")
    assert res.returncode == 0, res.stderr
    cid = res.stdout.strip()
    try:
        state: dict = {}
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(os.path.join(image_store, "containers", cid, "state.json")) as f:
                state = json.load(f)
            if state.get("pid") and os.path.exists(
                    os.path.join(image_store, "containers", cid, "upper", "live")):
                break
            time.sleep(0.05)
        assert state.get("pid"), "the container did not start"
        (tmp_path / "f").write_text("put\n")
        res = pyrun_in(image_store, "cp", str(tmp_path / "f"), "live:/tmp/")
        assert res.returncode == 0, res.stderr
        with open(f"/proc/{state['pid']}/root/tmp/f") as f:
            assert f.read() == "put\n"  # seen inside the running container
        res = pyrun_in(image_store, "commit", "-m", "live", "live", "live:1")
        assert res.returncode == 0, res.stderr
        assert pyrun_in(image_store, "ps", "-q", "-f", "status=running").stdout.strip() == cid[:12]
        changes = pyrun_in(image_store, "diff", "live").stdout.splitlines()
        assert changes == ["A /live", "C /tmp", "A /tmp/f"]
        res = pyrun_in(image_store, "cp", "live:/live", "-", text=False)
        assert res.returncode == 0 and b"live\n" in res.stdout
    finally:
        assert pyrun_in(image_store, "rm", "-f", "live").returncode == 0
    res = pyrun_in(image_store, "run", "--rm", "live:1", "cat", "/live", "/tmp/f")
    assert res.stdout == "live\nput\n", res.stderr


def test_cp_summary_line_on_a_terminal(image_store, tmp_path):
    """Docker's "Successfully copied" line goes to a terminal stderr; -q drops it."""
    import pty

    res = pyrun_in(image_store, "run", "--name", "t1", "busybox", "true")
    assert res.returncode == 0, res.stderr
    outs = []
    for quiet in ((), ("-q",)):
        master, slave = pty.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pybuild.cli.pyrun", "cp", *quiet, "t1:/etc/passwd",
                 str(tmp_path / f"p{len(quiet)}")], env={**os.environ, "PYBUILD_ROOT": image_store},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, timeout=60)
            assert proc.returncode == 0
            os.close(slave)
            slave = -1
            chunks = []
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            outs.append(b"".join(chunks).decode())
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)
    size = (tmp_path / "p0").stat().st_size
    assert outs[0].strip() == f"Successfully copied {size}B to {tmp_path / 'p0'}"
    assert outs[1] == ""


def test_commit_keeps_the_containers_config(pyrun, image_store, clean):
    """As `docker commit`: the new image starts as the container did (-e, -w, -u, --label,
    --expose, its command), and -c changes apply on top of that."""
    _made(pyrun, "cfg", "echo ran > /ran", "-e", "FOO=bar", "-e", "PATH=/bin:/usr/bin",
          "-w", "/tmp", "-u", "0:0", "--label", "team=a", "--expose", "8080")
    assert pyrun("commit", "cfg", "cfg:1").returncode == 0
    assert pyrun("commit", "-c", "ENV FOO=changed", "-c", 'CMD ["true"]', "cfg", "cfg:2"
                 ).returncode == 0
    from pybuild.image.images import Images

    images = Images(image_store)
    try:
        one = images.get(images.resolve("cfg:1")).config.config
        two = images.get(images.resolve("cfg:2")).config.config
    finally:
        images.close()
    assert "FOO=bar" in one.env and "PATH=/bin:/usr/bin" in one.env
    assert one.cmd == ("sh", "-c", "echo ran > /ran") and one.entrypoint is None
    assert (one.working_dir, one.user) == ("/tmp", "0:0")
    assert one.labels.get("team") == "a" and "8080/tcp" in one.exposed_ports
    assert "FOO=changed" in two.env and two.cmd == ("true",) and two.working_dir == "/tmp"
    res = pyrun("run", "--rm", "cfg:1")  # runs the container's own command again
    assert res.returncode == 0, res.stderr
    assert pyrun("run", "--rm", "cfg:1", "sh", "-c", "echo $FOO $(pwd)").stdout == "bar /tmp\n"

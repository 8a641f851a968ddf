"""`pybuild -t REF CONTEXT` as a user runs it: -q, --iidfile, stdin Dockerfiles, exit codes,
bad flags, and SIGTERM in the middle of a RUN (no mount, no tag, no process left)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.plugins.runtime import child_pids, mount_points

pytestmark = pytest.mark.root


def test_quiet_prints_only_the_image_id_and_iidfile(builder, tmp_path):
    ctx = builder.context("FROM busybox\nRUN echo built > /built\n")
    iid = tmp_path / "iid"
    res = builder.cli("-q", "-t", "cli:1", "--iidfile", str(iid), "--label", "a=b", ctx)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("sha256:") and len(res.stdout.strip()) == 71
    assert res.stdout.strip() == iid.read_text()
    assert builder.config("cli:1")["config"]["Labels"] == {"a": "b"}
    plain = builder.cli("--progress", "plain", "-t", "cli:2", ctx)
    assert plain.returncode == 0 and plain.stdout == ""
    assert "CACHED" in plain.stderr


def test_dockerfile_on_stdin(builder, tmp_path):
    res = builder.cli("-q", "-t", "stdin:1", "-", input="FROM busybox\nRUN echo in > /in\n")
    assert res.returncode == 0, res.stderr
    assert builder.cat("stdin:1", "/in") == "in\n"
    ctx = builder.context("")
    res = builder.cli("-q", "-f", "-", "-t", "stdin:2", ctx, input="FROM busybox\nENV S=2\n")
    assert res.returncode == 0, res.stderr
    assert builder.config("stdin:2")["config"]["Env"][-1] == "S=2"


def test_exit_codes(builder):
    ctx = builder.context("FROM busybox\nRUN exit 4\n")
    res = builder.cli("-t", "bad:1", ctx)
    assert res.returncode == 1  # like docker build: a failed step fails the build with 1
    assert "Dockerfile:2" in res.stderr and "exit code: 4" in res.stderr
    ok = builder.context("FROM busybox\n")
    assert builder.cli("--platform", "linux/s390x-nope", ok).returncode == 1
    assert "only for this host's platform" in builder.cli("--platform", "windows/arm", ok).stderr
    assert builder.cli("--no-such-flag", ok).returncode == 125
    assert builder.cli("-t", "Bad::Tag", ok).returncode == 125
    assert builder.cli("--network", "bridge", ok).returncode == 125
    missing = builder.cli("-t", "x", str(builder.tmp_path / "nope"))
    assert missing.returncode == 1 and "not found" in missing.stderr
    res = builder.cli(builder.context("FROM nothere:1\n"))
    assert res.returncode == 1 and "pyrun pull nothere:1" in res.stderr


def _start_until(builder, ctx: str, marker: bytes) -> subprocess.Popen:
    """Start `pybuild` and return once its output shows `marker`."""
    proc = subprocess.Popen([sys.executable, "-m", "pybuild.cli.build", "--progress", "plain",
                             "-t", "term:1", ctx], env={**os.environ, "PYBUILD_ROOT": builder.root},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    seen = b""
    deadline = time.monotonic() + 60
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    if marker not in seen:
        proc.kill()
        proc.wait()
        pytest.fail(f"the build never printed {marker!r}: {seen!r}")
    return proc


def _workspaces(builder) -> list[str]:
    return [n for n in os.listdir(os.path.join(builder.root, "tmp")) if n.startswith("build-")]


def test_sigterm_during_run_cleans_up(builder, tmp_path):
    ctx = builder.context("FROM busybox\nRUN echo first > /first\nRUN echo started; sleep 60\n")
    before = mount_points(builder.root), child_pids()
    proc = _start_until(builder, ctx, b"started")
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc.stderr.close()
    assert rc != 0
    assert (mount_points(builder.root), child_pids()) == before
    assert "docker.io/library/term:1" not in builder.tags()
    assert _workspaces(builder) == []
    # the first RUN finished before the signal: it is cached
    res = builder.cli("--progress", "plain", "-t", "term:1",
                      builder.context("FROM busybox\nRUN echo first > /first\n"))
    assert res.returncode == 0 and "CACHED" in res.stderr


def _sleepers(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def test_the_next_build_reaps_what_kill_9_left(builder):
    marker = str(600 + os.getpid() % 300)  # a sleep no other test runs
    ctx = builder.context(f"FROM busybox\nRUN echo started; sleep {marker}\n")
    proc = _start_until(builder, ctx, b"started")
    proc.kill()
    proc.wait()
    proc.stderr.close()
    try:
        deadline = time.monotonic() + 10
        while _sleepers(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _sleepers(marker) == []  # the step's sandbox dies with the build
        assert len(_workspaces(builder)) == 1  # but its workspace is left behind
        res = builder.cli("-q", builder.context("FROM busybox\nENV A=1\n"))
        assert res.returncode == 0, res.stderr
        assert _workspaces(builder) == [] and mount_points(builder.root) == set()
        assert "docker.io/library/term:1" not in builder.tags()
    finally:
        for pid in _sleepers(marker):
            os.kill(pid, signal.SIGKILL)


def test_pull_missing_base_from_a_registry_and_push(builder, registry, docker_config):
    base = f"{registry.host}/base/busybox:1"
    assert builder.pyrun("tag", "busybox", base).returncode == 0
    assert builder.pyrun("push", base).returncode == 0
    assert builder.pyrun("rmi", base).returncode == 0
    app = f"{registry.host}/team/app:1"
    ctx = builder.context(f"FROM {base}\nRUN echo app > /app.txt\n")
    res = builder.cli("--progress", "plain", "--push", "-t", app, ctx)
    assert res.returncode == 0, res.stderr
    assert f"load metadata for {base}" in res.stderr
    assert f"{base}" in builder.tags()  # pulled by the build
    assert builder.pyrun("rmi", app).returncode == 0
    assert builder.pyrun("pull", app).returncode == 0  # what --push sent comes back
    assert builder.cat(app, "/app.txt") == "app\n"
    again = builder.cli("--progress", "plain", "--pull", "-t", app, ctx)  # re-pull, then cached
    assert again.returncode == 0 and "CACHED" in again.stderr, again.stderr


def test_output_local_and_oci(builder, tmp_path):
    ctx = builder.context("FROM busybox\nRUN echo out > /out.txt && rm /bin/ls\n")
    local = tmp_path / "rootfs"
    res = builder.cli("-q", "--output", f"type=local,dest={local}", ctx)
    assert res.returncode == 0, res.stderr
    assert (local / "out.txt").read_text() == "out\n"
    assert not (local / "bin" / "ls").exists() and (local / "bin" / "sh").exists()
    archive = tmp_path / "img.tar"
    res = builder.cli("-q", "-t", "out:1", "-o", f"type=oci,dest={archive}", ctx)
    assert res.returncode == 0, res.stderr
    import tarfile

    with tarfile.open(archive) as tar:
        assert "index.json" in tar.getnames()
    bad = builder.cli("--output", "type=nope", ctx)
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_quiet_with_the_archive_on_stdout(builder):
    """-q -o -: stdout is the tar alone; the image id goes to stderr instead."""
    import io
    import subprocess
    import sys
    import tarfile

    ctx = builder.context("FROM busybox\nRUN echo out > /out.txt\n")
    res = subprocess.run([sys.executable, "-m", "pybuild.cli.build", "-q", "-o", "-", ctx],
                         env={**os.environ, "PYBUILD_ROOT": builder.root}, capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=180)
    assert res.returncode == 0, res.stderr
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
        assert tar.extractfile("out.txt").read() == b"out\n"
    assert res.stdout[-1024:] == b"\0" * 1024  # the tar's end blocks are the last bytes
    assert res.stderr.decode().strip().startswith("sha256:")


def test_pyrun_build_is_the_same_command(builder, tmp_path):
    other = tmp_path / "other-root"
    import shutil

    shutil.copytree(builder.root, other, symlinks=True)
    res = subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", "--root", str(other),
                          "build", "-q", "-t", "viapyrun:1", "-"],
                         input="FROM busybox\nENV VIA=pyrun\n", capture_output=True, text=True,
                         timeout=120, env={k: v for k, v in os.environ.items()
                                           if k != "PYBUILD_ROOT"})
    assert res.returncode == 0, res.stderr
    from pybuild.image.images import Images

    images = Images(str(other))
    try:
        assert images.resolve("viapyrun:1") == res.stdout.strip()
    finally:
        images.close()
    assert "docker.io/library/viapyrun:1" not in builder.tags()


def test_system_df_and_builder_prune(builder):
    ctx = builder.context("FROM busybox AS tmp\nRUN echo tmp > /tmp.txt\n"
                          "FROM busybox\nRUN --mount=type=cache,target=/c touch /c/x\n"
                          "RUN echo kept > /kept.txt\n")
    assert builder.cli("-q", "-t", "pruned:1", ctx).returncode == 0
    df = builder.pyrun("system", "df")
    row = [line.split() for line in df.stdout.splitlines() if line.startswith("Build Cache")]
    assert row and row[0][2:4] == ["2", "1"]  # two entries, one layer an image uses
    assert builder.pyrun("builder", "prune").returncode == 0  # no tty: declined, nothing gone
    res = builder.pyrun("builder", "prune", "-f")
    assert res.returncode == 0 and "Deleted build cache objects: 2" in res.stdout
    assert "Total reclaimed space:" in res.stdout
    assert os.path.isdir(os.path.join(builder.root, "buildcache", "mounts"))  # kept without -a
    assert builder.cat("pruned:1", "/kept.txt") == "kept\n"  # the image keeps its layers
    again = builder.cli("--progress", "plain", "-t", "pruned:1", ctx)
    assert again.returncode == 0 and "RUN echo kept" in again.stderr
    assert again.stderr.count("CACHED") == 1  # only FROM
    assert builder.pyrun("builder", "prune", "-a", "-f").returncode == 0
    assert not os.path.exists(os.path.join(builder.root, "buildcache", "mounts"))


def test_context_archive_on_stdin(builder, tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY hello.txt /hello.txt\n"),
                           ("hello.txt", b"from the archive\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    res = subprocess.run([sys.executable, "-m", "pybuild.cli.build", "-q", "-t", "arch:1", "-"],
                         input=buf.getvalue(), capture_output=True, timeout=120,
                         env={**os.environ, "PYBUILD_ROOT": builder.root})
    assert res.returncode == 0, res.stderr
    assert builder.cat("arch:1", "/hello.txt") == "from the archive\n"

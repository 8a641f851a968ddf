"""The `pybuild` command: --plan output, exit codes, and `error: Dockerfile:N: ...` messages."""

import io
import os
import pathlib
import subprocess
import sys
import tarfile

REPO = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "plan"


def pybuild(*args, stdin=None, cwd=REPO, env=None):
    return subprocess.run(
        [sys.executable, "-m", "pybuild.cli.build", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        env=env,
    )


def write(tmp_path, text, name="Dockerfile"):
    (tmp_path / name).write_text(text)
    return tmp_path


def test_plan_prints_the_golden_text():
    r = pybuild("--plan", "fixtures/dockerfiles/multi-stage")
    assert r.returncode == 0, r.stderr
    # the CLI shows the path it read; the golden file was rendered with the same one
    assert r.stdout.decode() == (GOLDEN / "multi-stage.txt").read_text()
    assert r.stderr == b""


def test_plan_dot_and_target():
    r = pybuild("--plan=dot", "--target", "test", "fixtures/dockerfiles/multi-stage")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == (GOLDEN / "multi-stage-target-test.dot").read_text()


def test_building_from_a_missing_base_says_how_to_get_it(tmp_path):
    env = {**os.environ, "PYBUILD_ROOT": str(tmp_path / "store")}
    r = pybuild("--progress", "quiet", "fixtures/dockerfiles/centos-net-http", env=env)
    assert r.returncode == 1  # a failed build exits 1, as docker build does
    assert r.stderr.decode().startswith("error: centos:latest: no such image in the store")
    assert 'pyrun pull centos:latest' in r.stderr.decode()
    assert r.stdout == b""


def test_dockerfile_error_exits_1_with_file_and_line(tmp_path):
    write(tmp_path, "FROM busybox\n\nRUNN echo hi\n")
    r = pybuild("--plan", str(tmp_path))
    assert r.returncode == 1
    assert (
        r.stderr.decode() == "error: Dockerfile:3: unknown instruction: RUNN (did you mean RUN?)\n"
    )
    assert r.stdout == b""


def test_graph_error_exits_1(tmp_path):
    write(tmp_path, "FROM busybox AS a\nCOPY --from=b /x /y\nFROM busybox AS b\n")
    r = pybuild("--plan", str(tmp_path))
    assert r.returncode == 1
    assert r.stderr.decode() == (
        'error: Dockerfile:2: cannot copy from stage "b", it needs to be '
        'defined before current stage "a"\n'
    )


def test_custom_file_name_is_used_in_messages(tmp_path):
    write(tmp_path, "FROM busybox\nHEALTHCHECK --retries=-2 CMD true\n", name="web.Dockerfile")
    r = pybuild("--plan", "-f", str(tmp_path / "web.Dockerfile"), str(tmp_path))
    assert r.returncode == 1
    assert r.stderr.decode() == "error: web.Dockerfile:2: --retries cannot be negative (-2)\n"


def test_dockerfile_from_stdin(tmp_path):
    r = pybuild("--plan", "-f", "-", str(tmp_path), stdin=b"FROM busybox\nRUN true\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("Dockerfile: -\n")
    assert "Dockerfile:2  RUN true" in out


def test_context_from_stdin_is_the_dockerfile():
    r = pybuild("--plan", "-", stdin=b"FROM alpine:3.19\n")
    assert r.returncode == 0, r.stderr
    assert "base:  image alpine:3.19" in r.stdout.decode()


def test_tar_context_on_stdin():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\n"), ("sub/Other", b"FROM alpine\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    r = pybuild("--plan", "-", stdin=buf.getvalue())
    assert r.returncode == 0, r.stderr
    assert "image busybox" in r.stdout.decode()
    r = pybuild("--plan", "-f", "sub/Other", "-", stdin=buf.getvalue())
    assert r.returncode == 0 and "image alpine" in r.stdout.decode(), r.stderr
    r = pybuild("--plan", "-", stdin=b"\x1f\x8b not really gzip")
    assert r.returncode == 1 and "build context archive" in r.stderr.decode()


def test_stdin_cannot_be_both():
    r = pybuild("--plan", "-f", "-", "-", stdin=b"FROM busybox\n")
    assert r.returncode == 1
    assert r.stderr.decode() == "error: can't use stdin for both build context and dockerfile\n"


def test_missing_context_and_missing_dockerfile(tmp_path):
    r = pybuild("--plan", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert (
        r.stderr.decode()
        == f'error: unable to prepare context: path "{tmp_path / "nope"}" not found\n'
    )
    r = pybuild("--plan", str(tmp_path))
    assert r.returncode == 1
    assert r.stderr.decode() == (
        f"error: failed to read dockerfile: open {tmp_path}/Dockerfile: no such file or directory\n"
    )


def test_unknown_target_lists_stages():
    r = pybuild("--plan", "--target", "prod", "fixtures/dockerfiles/multi-stage")
    assert r.returncode == 1
    assert r.stderr.decode() == (
        'error: Dockerfile: target stage "prod" could not be found; the named stages are: '
        "build, docs, test, final\n"
    )


def test_build_args(tmp_path):
    write(tmp_path, "ARG TAG=1\nARG FLAVOR\nFROM busybox:$TAG-$FLAVOR\n")
    env = {"PATH": "/usr/bin:/bin", "FLAVOR": "musl"}
    r = pybuild(
        "--plan", "--build-arg", "TAG=1.36", "--build-arg", "FLAVOR", str(tmp_path), env=env
    )
    assert r.returncode == 0, r.stderr
    assert "base:  image busybox:1.36-musl" in r.stdout.decode()
    r = pybuild("--plan", "--build-arg", "=x", str(tmp_path))
    assert r.returncode == 125
    assert "--build-arg" in r.stderr.decode()


def test_warnings_go_to_stderr(tmp_path):
    write(tmp_path, "FROM busybox\nMAINTAINER me\n")
    r = pybuild("--plan", str(tmp_path))
    assert r.returncode == 0
    assert r.stderr.decode() == (
        "warning: Dockerfile:2: MaintainerDeprecated: Maintainer "
        "instruction is deprecated in favor of using label\n"
    )


def test_usage_errors_exit_125():
    assert pybuild("--plan=xml", "fixtures/dockerfiles/heredoc").returncode == 125
    r = pybuild("-t", "Web::1", "fixtures/dockerfiles/heredoc")  # checked before building
    assert r.returncode == 125 and b"-t" in r.stderr
    assert pybuild("--network", "bridge", "fixtures/dockerfiles/heredoc").returncode == 125
    assert pybuild("--plan").returncode == 125  # CONTEXT is required


def test_help():
    r = pybuild("--help")
    assert r.returncode == 0
    out = r.stdout.decode()
    assert "--plan" in out and "--target" in out and "--build-arg" in out

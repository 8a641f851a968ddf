"""RUN --mount=type=bind from the context sees the context as BuildKit sends it: .dockerignore
applied (with `!` exceptions), and what it holds is in the step's cache key."""

from __future__ import annotations

import os

import pytest

from tests.plugins.runtime import mount_points

pytestmark = pytest.mark.root


def test_context_bind_honours_dockerignore_and_keys_on_content(builder, tmp_path):
    files = {".dockerignore": "secret.txt\nlogs\ndata/*\n!data/keep\n",
             "app.txt": "app\n", "secret.txt": "do not send\n", "logs/a.log": "log\n",
             "data/keep": "kept\n", "data/drop": "dropped\n", "sub/x": "x\n"}
    dockerfile = ("FROM busybox\n"
                  "RUN --mount=type=bind,source=data,target=/d,rw ls /d > /data && "
                  "echo more > /d/new\n"
                  "RUN --mount=type=bind,target=/ctx cd /ctx && find . | sort > /seen && "
                  "stat -c '%a' sub > /submode\n")
    ctx = builder.context(dockerfile, files)
    os.chmod(os.path.join(ctx, "sub"), 0o750)
    before = mount_points(tmp_path)
    res = builder.cli("--progress", "plain", "-t", "bind:1", ctx)
    assert res.returncode == 0, res.stderr
    assert builder.cat("bind:1", "/seen").split() == [
        ".", "./.dockerignore", "./Dockerfile", "./app.txt", "./data", "./data/keep", "./sub",
        "./sub/x"]
    assert builder.cat("bind:1", "/submode") == "750\n"
    assert builder.cat("bind:1", "/data") == "keep\n"
    assert not os.path.exists(os.path.join(ctx, "data", "new"))  # rw writes are thrown away
    assert mount_points(tmp_path) == before
    # an ignored file changing keeps the cache; a sent one changing runs the step again
    with open(os.path.join(ctx, "secret.txt"), "a") as f:
        f.write("changed\n")
    res = builder.cli("--progress", "plain", "-t", "bind:2", ctx)
    assert res.returncode == 0 and res.stderr.count("CACHED") == 3, res.stderr
    with open(os.path.join(ctx, "app.txt"), "a") as f:  # only the second RUN binds it
        f.write("changed\n")
    res = builder.cli("--progress", "plain", "-t", "bind:3", ctx)
    assert res.returncode == 0 and res.stderr.count("CACHED") == 2, res.stderr  # FROM, 1st RUN
    missing = builder.context("FROM busybox\nRUN --mount=type=bind,source=secret.txt,"
                              "target=/s cat /s\n", {".dockerignore": "secret.txt\n",
                                                     "secret.txt": "no\n"})
    res = builder.cli("-q", missing)
    assert res.returncode == 1
    assert 'Dockerfile:2 RUN --mount=type=bind,source=secret.txt,target=/s cat /s: ' \
           '"secret.txt": not found' in res.stderr


def test_a_context_path_with_commas_and_colons(builder, tmp_path):
    ctx = tmp_path / "odd,dir:name"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n"
                                    "RUN --mount=type=bind,target=/c ls -A /c > /seen\n"
                                    "RUN --mount=type=bind,target=/c,rw touch /c/new && "
                                    "ls -A /c > /rw\n")
    (ctx / ".dockerignore").write_text("hidden\n")
    (ctx / "hidden").write_text("no\n")
    (ctx / "shown").write_text("yes\n")
    before = mount_points(tmp_path)
    res = builder.cli("-q", "-t", "odd:1", str(ctx))
    assert res.returncode == 0, res.stderr
    assert builder.cat("odd:1", "/seen").split() == [".dockerignore", "Dockerfile", "shown"]
    assert builder.cat("odd:1", "/rw").split() == [".dockerignore", "Dockerfile", "new", "shown"]
    assert not (ctx / "new").exists()
    (ctx / ".dockerignore").unlink()  # nothing ignored: the context is bound as it is
    res = builder.cli("-q", "-t", "odd:2", str(ctx))
    assert res.returncode == 0, res.stderr
    assert builder.cat("odd:2", "/seen").split() == ["Dockerfile", "hidden", "shown"]
    assert not (ctx / "new").exists()
    assert mount_points(tmp_path) == before

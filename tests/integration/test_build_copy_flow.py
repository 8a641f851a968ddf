"""Builds that COPY: the seed example (busybox-net-http) built and served, the multi-stage
fixture with --target, and the context rows of the cache matrix. They need the copy step
(pybuild.builder.steps.copy) and are skipped until it is there."""

from __future__ import annotations

import glob
import os
import shutil
import time
import urllib.request

import pytest

from pybuild.builder.events import VertexCached, VertexStarted
from tests.plugins.netcg import free_port
from tests.plugins.runtime import child_pids
from tests.plugins.solver import needs_copy

pytestmark = [pytest.mark.root, needs_copy]

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "dockerfiles")


def _fetch(url: str, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_busybox_net_http_builds_and_serves(builder):
    ctx = os.path.join(FIXTURES, "busybox-net-http")
    built = builder.build(ctx, tags=("busybox-net-http:latest",))
    config = builder.config("busybox-net-http")
    assert config["config"]["Cmd"] == ["httpd", "-f", "-p", "80", "-h", "/www"]
    assert config["config"]["ExposedPorts"] == {"80/tcp": {}}
    rows = [(h["created_by"], bool(h.get("empty_layer"))) for h in config["history"]][-4:]
    assert rows == [("RUN /bin/sh -c mkdir -p /www # buildkit", False),
                    ("COPY index.html /www/index.html # buildkit", False),
                    ("EXPOSE map[80/tcp:{}]", True),
                    ('CMD ["httpd" "-f" "-p" "80" "-h" "/www"]', True)]
    assert len(built.names(VertexStarted)) >= 5
    port = free_port()
    before = child_pids()
    # detached, then `rm -f`: httpd as pid 1 ignores SIGTERM, and a killed foreground pyrun
    # would leave its container's dir and cgroups for the next pyrun in this store to reap
    res = builder.pyrun("run", "-d", "--name", "web", "--network", "host", "busybox-net-http",
                        "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www")
    assert res.returncode == 0, res.stderr
    cid = res.stdout.strip()
    try:
        page = _fetch(f"http://127.0.0.1:{port}/index.html", time.monotonic() + 30)
    finally:
        rm = builder.pyrun("rm", "-f", "web")
    assert rm.returncode == 0, rm.stderr
    assert not [d for d in glob.glob(f"/sys/fs/cgroup/*/pybuild/{cid}*")]
    with open(os.path.join(ctx, "index.html")) as f:
        assert page == f.read()
    assert child_pids() == before


def test_multi_stage_fixture_and_target(builder):
    assert builder.pyrun("tag", "busybox", "busybox:1.36").returncode == 0
    ctx = os.path.join(FIXTURES, "multi-stage")
    built = builder.build(ctx, tags=("multi:1",))
    started = built.names(VertexStarted)
    assert not any(n.startswith("[test ") for n in started)  # not needed by the target
    res = builder.pyrun("run", "--rm", "multi:1")
    assert res.returncode == 0 and "hello from pybuild" in res.stdout, res.stderr
    assert builder.cat("multi:1", "/usr/share/doc/hello.txt") == "hello(1): prints a greeting\n"
    test = builder.build(ctx, target="test", tags=("multi:test",))
    assert any("[test " in n for n in test.names(VertexStarted))
    assert any("[build " in n for n in test.names(VertexCached))


def test_cache_matrix_context_files(builder, tmp_path):
    ctx = tmp_path / "copyctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN echo before > /before\nCOPY app/ /app/\nRUN cat /app/a > /after\n")
    (ctx / "app").mkdir()
    (ctx / "app" / "a").write_text("one\n")
    (ctx / "app" / "ignored.log").write_text("x\n")
    (ctx / ".dockerignore").write_text("**/*.log\n")
    first = builder.build(str(ctx), tags=("ctx:1",))
    assert len(builder.build(str(ctx)).names(VertexCached)) == 4
    # an ignored file changes: nothing is invalidated
    (ctx / "app" / "ignored.log").write_text("changed\n")
    ignored = builder.build(str(ctx))
    assert len(ignored.names(VertexCached)) == 4 and ignored.image_id == first.image_id
    # touching a file (same bytes) invalidates nothing either
    os.utime(ctx / "app" / "a", (1, 1))
    assert len(builder.build(str(ctx)).names(VertexCached)) == 4
    # a copied file changes: from that COPY on, nothing before it
    (ctx / "app" / "a").write_text("two\n")
    changed = builder.build(str(ctx), tags=("ctx:2",))
    assert changed.names(VertexCached) == ["[1/4] FROM docker.io/library/busybox:latest",
                                           "[2/4] RUN echo before > /before"]
    assert builder.cat("ctx:2", "/after") == "two\n"
    shutil.rmtree(ctx / "app")


def test_heredoc_fixture_and_copy_from_an_image(builder):
    builder.build(os.path.join(FIXTURES, "heredoc"), tags=("heredoc:1",))
    assert builder.cat("heredoc:1", "/etc/motd") == "Welcome to a pybuild image.\n"
    assert builder.cat("heredoc:1", "/www/index.html") == "built with a heredoc\n"
    res = builder.pyrun("run", "--rm", "heredoc:1", "sh", "-c",
                        "greet pybuild; stat -c %a /usr/local/bin/greet")
    assert res.stdout == "hello, pybuild\n755\n", res.stderr
    ctx = builder.context("FROM scratch\nCOPY --from=heredoc:1 /etc/motd /motd\n"
                          "COPY --from=busybox /bin/busybox /bin/busybox\n"
                          'ENTRYPOINT ["/bin/busybox", "cat", "/motd"]\n')
    builder.build(ctx, tags=("fromimage:1",))
    assert builder.pyrun("run", "--rm", "fromimage:1").stdout == "Welcome to a pybuild image.\n"


def test_cached_rebuild_stats_the_context_and_reads_nothing(builder, tmp_path, monkeypatch):
    ctx = tmp_path / "many"
    (ctx / "src").mkdir(parents=True)
    for i in range(200):
        (ctx / "src" / f"f{i}").write_text(f"{i}\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY src /src\n")
    old = time.time() - 60  # older than the racy window: the memo may keep their hashes
    for p in (ctx / "src").iterdir():
        os.utime(p, (old, old))
    builder.build(str(ctx))
    from pybuild.builder.steps import copy as copy_step

    reads = []
    real = copy_step.file_digest
    monkeypatch.setattr(copy_step, "file_digest", lambda path: reads.append(path) or real(path))
    again = builder.build(str(ctx))
    assert reads == [] and len(again.names(VertexCached)) == 2
    (ctx / "src" / "f7").write_text("changed\n")
    builder.build(str(ctx))
    assert reads == [str(ctx / "src" / "f7")]  # only the changed file is read again


def test_copy_of_a_missing_file_fails_with_the_line(builder):
    from pybuild.errors import BuildError

    ctx = builder.context("FROM busybox\nRUN echo ok\nCOPY nothere.txt /x\n", {"a.txt": "a\n"})
    with pytest.raises(BuildError) as info:
        builder.build(ctx, tags=("missing:1",))
    assert "Dockerfile:3" in str(info.value) and "nothere.txt" in str(info.value)
    assert "docker.io/library/missing:1" not in builder.tags()
    res = builder.cli("-t", "missing:1", ctx)
    assert res.returncode == 1 and "nothere.txt" in res.stderr

"""COPY/ADD through real builds over the bootstrap busybox: --chown by name from the
image's /etc/passwd, --chmod, ADD of a local archive and of a URL with --checksum, COPY from
a heredoc, COPY --from a stage (owners kept), and the errors a user sees (file:line)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading

import pytest

from pybuild.builder.events import VertexCached
from pybuild.errors import BuildError
from tests.plugins.solver import needs_copy

pytestmark = [pytest.mark.root, needs_copy]


def _tar_gz() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tf:
        data = b"from the archive\n"
        ti = tarfile.TarInfo("pkg/readme")
        ti.size, ti.mode, ti.uid, ti.gid = len(data), 0o640, 33, 33
        tf.addfile(ti, io.BytesIO(data))
    return raw.getvalue()


class _Files(http.server.BaseHTTPRequestHandler):
    body = b"#!/bin/sh\necho tool\n"

    def do_GET(self):  # noqa: N802
        if self.path != "/dl/tool":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_url():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _ls(builder, ref: str, *paths: str) -> str:
    res = builder.pyrun("run", "--rm", "--entrypoint", "ls", "-u", "0", ref, "-lnd", *paths)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_copy_and_add_in_a_build(builder, http_url):
    checksum = "sha256:" + hashlib.sha256(_Files.body).hexdigest()
    ctx = builder.context(
        "FROM busybox AS base\n"
        "ENV NAME=world\n"
        "WORKDIR /srv\n"
        "COPY --chown=nobody:staff a.txt sub/ ./\n"
        "COPY --chmod=750 a.txt /bin-dir/tool.sh\n"
        f"ADD --checksum={checksum} {http_url}/dl/tool /opt/\n"
        "COPY <<EOF /etc/greeting\n"
        "hello $NAME\n"
        "EOF\n"
        "FROM busybox\n"
        "ADD bundle.tgz /pkgs\n"
        "COPY --from=base /srv /copied\n",
        {"a.txt": "A\n", "sub/b.txt": "B\n"})
    with open(f"{ctx}/bundle.tgz", "wb") as f:
        f.write(_tar_gz())
    builder.build(ctx, target="base", tags=("copysteps:base",))
    assert builder.cat("copysteps:base", "/srv/a.txt") == "A\n"
    assert builder.cat("copysteps:base", "/srv/b.txt") == "B\n"
    assert builder.cat("copysteps:base", "/etc/greeting") == "hello world\n"
    assert builder.cat("copysteps:base", "/opt/tool") == _Files.body.decode()
    listing = _ls(builder, "copysteps:base", "/srv/a.txt", "/bin-dir/tool.sh", "/opt/tool")
    lines = {line.split()[-1]: line.split() for line in listing.splitlines()}
    assert lines["/srv/a.txt"][2:4] == ["65534", "50"]  # nobody:staff from the image
    assert lines["/bin-dir/tool.sh"][0] == "-rwxr-x---"
    assert lines["/opt/tool"][0] == "-rw-------"
    built = builder.build(ctx, tags=("copysteps:final",))
    assert builder.cat("copysteps:final", "/pkgs/pkg/readme") == "from the archive\n"
    assert builder.cat("copysteps:final", "/copied/b.txt") == "B\n"
    owners = _ls(builder, "copysteps:final", "/copied/a.txt", "/pkgs/pkg/readme")
    rows = {line.split()[-1]: line.split() for line in owners.splitlines()}
    assert rows["/copied/a.txt"][2:4] == ["65534", "50"]  # --from keeps owners
    assert rows["/pkgs/pkg/readme"][2:4] == ["33", "33"]  # the archive's owners
    again = builder.build(ctx, tags=("copysteps:final",))
    assert any("ADD bundle.tgz" in n for n in again.names(VertexCached))
    assert again.image_id == built.image_id


def test_copy_errors_name_the_line(builder):
    ctx = builder.context("FROM busybox\nRUN true\nCOPY missing.txt /x/\n")
    with pytest.raises(BuildError) as e:
        builder.build(ctx)
    assert "Dockerfile:3" in str(e.value) and "missing.txt" in str(e.value)
    ctx = builder.context("FROM busybox\nCOPY --chown=nosuchuser a /a\n", {"a": "a"})
    with pytest.raises(BuildError, match="Dockerfile:2: .*nosuchuser"):
        builder.build(ctx)


def test_copy_through_the_pybuild_cli(builder):
    ctx = builder.context("FROM busybox\nCOPY --chmod=0700 app/ /app/\nCOPY gone /x\n",
                          {"app/main.sh": "echo hi\n", "gone": "g"})
    os.remove(f"{ctx}/gone")
    res = builder.cli("--progress", "plain", "-t", "clicopy:1", ctx)
    assert res.returncode == 1, res.stderr
    assert "Dockerfile:3" in res.stderr and "gone" in res.stderr
    assert "Traceback" not in res.stderr
    with open(f"{ctx}/Dockerfile", "w") as f:
        f.write("FROM busybox\nCOPY --chmod=0700 app/ /app/\n")
    res = builder.cli("-q", "-t", "clicopy:1", ctx)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith("sha256:")
    listing = _ls(builder, "clicopy:1", "/app/main.sh")
    assert listing.split()[0] == "-rwx------"

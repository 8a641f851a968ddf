"""ADD (archives by content, hostile archives, http URLs with --checksum) and COPY --from a
directory tree (resolved as a chroot, owners kept)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.server
import io
import lzma
import os
import stat
import tarfile
import threading

import pytest
import zstandard

from pybuild.builder.context import BuildContext
from pybuild.builder.steps.copy import CopyRequest, prepare_copy
from pybuild.errors import BuildError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners need root")


def make_tar(entries) -> bytes:
    """entries: (name, kind, payload) with kind file|dir|sym|hard; payload data/target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_500_000_000
            ti.uid, ti.gid = 33, 44
            if kind == "file":
                ti.size = len(payload)
                ti.mode = 0o640
                tf.addfile(ti, io.BytesIO(payload))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o751
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
            tf.addfile(ti)
    return buf.getvalue()


SIMPLE = [("top", "dir", None), ("top/f.txt", "file", b"inside"), ("top/l", "sym", "f.txt"),
          ("top/h", "hard", "top/f.txt")]

COMPRESS = {
    "plain": lambda b: b,
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.fixture
def ctx(tmp_path):
    c = tmp_path / "ctx"
    c.mkdir()
    return c


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "root"
    d.mkdir()
    return d


def add(ctx, dest, *sources, to, scratch, add=True, **kw):
    req = CopyRequest(add=add, sources=tuple(sources), dest=to, workdir="/", line=5, **kw)
    prepared = prepare_copy(req, context=BuildContext.open(ctx) if ctx else None,
                            source_root=kw.pop("source_root", None), memo=None,
                            scratch_dir=str(scratch))
    if dest is not None:
        prepared.apply(str(dest))
    return prepared


# --- archives -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_local_archive_is_extracted_by_content(ctx, dest, tmp_path, kind):
    # a misleading name: detection is by content, as Docker
    (ctx / "bundle.dat").write_bytes(COMPRESS[kind](make_tar(SIMPLE)))
    add(ctx, dest, "bundle.dat", to="/x", scratch=tmp_path / "s")
    assert (dest / "x" / "top" / "f.txt").read_bytes() == b"inside"
    assert os.readlink(dest / "x" / "top" / "l") == "f.txt"
    assert os.stat(dest / "x" / "top" / "h").st_ino == os.stat(dest / "x" / "top" / "f.txt").st_ino
    st = os.stat(dest / "x" / "top" / "f.txt")
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == 1_500_000_000
    assert stat.S_IMODE(os.stat(dest / "x" / "top").st_mode) == 0o751
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (33, 44)


def test_copy_does_not_extract(ctx, dest, tmp_path):
    (ctx / "b.tar").write_bytes(make_tar(SIMPLE))
    add(ctx, dest, "b.tar", to="/x/", scratch=tmp_path, add=False)
    assert (dest / "x" / "b.tar").is_file()


def test_add_unpack_false_keeps_the_file(ctx, dest, tmp_path):
    (ctx / "b.tar").write_bytes(make_tar(SIMPLE))
    add(ctx, dest, "b.tar", to="/x/", scratch=tmp_path, unpack=False)
    assert (dest / "x" / "b.tar").is_file()


def test_not_an_archive_is_copied(ctx, dest, tmp_path):
    (ctx / "fake.tar.gz").write_bytes(b"\x1f\x8b not really gzip" * 100)
    (ctx / "text").write_text("just text " * 100)
    add(ctx, dest, "fake.tar.gz", "text", to="/x/", scratch=tmp_path)
    assert sorted(os.listdir(dest / "x")) == ["fake.tar.gz", "text"]


def test_archive_entries_cannot_climb_out(ctx, dest, tmp_path):
    (ctx / "evil.tar").write_bytes(make_tar([("../../escape", "file", b"x")]))
    with pytest.raises(BuildError, match="outside of the destination"):
        add(ctx, dest, "evil.tar", to="/x", scratch=tmp_path)
    assert not (tmp_path / "escape").exists() and not (dest / "escape").exists()


def test_archive_relative_symlink_out_is_refused(ctx, dest, tmp_path):
    (ctx / "evil.tar").write_bytes(make_tar([("l", "sym", "../../../etc")]))
    with pytest.raises(BuildError, match="invalid symlink"):
        add(ctx, dest, "evil.tar", to="/x", scratch=tmp_path)


def test_archive_absolute_link_then_write_through_it_stays_inside(ctx, dest, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (ctx / "evil.tar").write_bytes(make_tar([
        ("esc", "sym", str(outside)), ("esc/pwned", "file", b"x")]))
    add(ctx, dest, "evil.tar", to="/x", scratch=tmp_path)
    assert list(outside.iterdir()) == []
    # the link is resolved with the extraction dir as its root, like chrootarchive
    assert (dest / "x" / str(outside).lstrip("/") / "pwned").read_bytes() == b"x"


def test_archive_hard_link_to_outside_is_refused(ctx, dest, tmp_path):
    (tmp_path / "secret").write_text("s")
    (ctx / "evil.tar").write_bytes(make_tar([("h", "hard", "../secret")]))
    with pytest.raises(BuildError, match="outside of the destination"):
        add(ctx, dest, "evil.tar", to="/x", scratch=tmp_path)
    (ctx / "evil2.tar").write_bytes(make_tar([("h", "hard", "/etc/passwd")]))
    with pytest.raises(BuildError, match="no such file in the archive"):
        add(ctx, dest, "evil2.tar", to="/y", scratch=tmp_path)


def test_archive_replaces_file_and_merges_dirs(ctx, dest, tmp_path):
    (dest / "x" / "top").mkdir(parents=True)
    (dest / "x" / "top" / "keep").write_text("k")
    (dest / "x" / "top" / "f.txt").write_text("old")
    (ctx / "a.tar").write_bytes(make_tar(SIMPLE))
    add(ctx, dest, "a.tar", to="/x/", scratch=tmp_path)
    assert (dest / "x" / "top" / "keep").read_text() == "k"
    assert (dest / "x" / "top" / "f.txt").read_bytes() == b"inside"


def test_archive_content_changes_with_its_bytes(ctx, tmp_path):
    (ctx / "a.tar").write_bytes(make_tar(SIMPLE))
    one = add(ctx, None, "a.tar", to="/x", scratch=tmp_path).content
    (ctx / "a.tar").write_bytes(make_tar(SIMPLE[:2]))
    assert add(ctx, None, "a.tar", to="/x", scratch=tmp_path).content != one


# --- URLs ---------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files = {"/dl/tool.bin": b"binary bytes", "/dl/a.tar": make_tar(SIMPLE),
                      "/": b"index"}
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_url_into_dir_is_named_from_the_path(ctx, dest, tmp_path, server):
    add(ctx, dest, f"{server}/dl/tool.bin", to="/opt/", scratch=tmp_path / "s")
    st = os.stat(dest / "opt" / "tool.bin")
    assert (dest / "opt" / "tool.bin").read_bytes() == b"binary bytes"
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_mtime == 1445412480  # Last-Modified


def test_url_to_a_file_path_and_unnamed(ctx, dest, tmp_path, server):
    add(ctx, dest, f"{server}/dl/tool.bin", to="/usr/bin/tool", scratch=tmp_path)
    assert (dest / "usr" / "bin" / "tool").read_bytes() == b"binary bytes"
    add(ctx, dest, f"{server}/", to="/u/", scratch=tmp_path)
    assert (dest / "u" / "__unnamed__").read_bytes() == b"index"


def test_url_archive_is_not_extracted(ctx, dest, tmp_path, server):
    add(ctx, dest, f"{server}/dl/a.tar", to="/x/", scratch=tmp_path)
    assert (dest / "x" / "a.tar").is_file()
    add(ctx, dest, f"{server}/dl/a.tar", to="/y/", scratch=tmp_path, unpack=True)
    assert (dest / "y" / "top" / "f.txt").read_bytes() == b"inside"


def test_url_404_is_an_error(ctx, dest, tmp_path, server):
    with pytest.raises(BuildError, match="Dockerfile:5: .*404"):
        add(ctx, dest, f"{server}/missing", to="/x/", scratch=tmp_path)


def test_url_checksum_is_the_content_and_fetch_waits(ctx, dest, tmp_path, server):
    good = "sha256:" + hashlib.sha256(b"binary bytes").hexdigest()
    prepared = add(ctx, None, f"{server}/dl/tool.bin", to="/x/", scratch=tmp_path,
                   checksum=good)
    assert _Handler.hits == []  # a cache hit would need no download at all
    prepared.apply(str(dest))
    assert (dest / "x" / "tool.bin").read_bytes() == b"binary bytes"
    other = add(ctx, None, f"{server}/dl/tool.bin", to="/x/", scratch=tmp_path,
                checksum="sha256:" + "0" * 64)
    assert other.content != prepared.content
    with pytest.raises(BuildError, match="checksum mismatch"):
        other.apply(str(dest))


def test_url_content_follows_the_bytes(ctx, tmp_path, server):
    one = add(ctx, None, f"{server}/dl/tool.bin", to="/x/", scratch=tmp_path).content
    assert add(ctx, None, f"{server}/dl/tool.bin", to="/x/", scratch=tmp_path).content == one
    _Handler.files["/dl/tool.bin"] = b"new bytes"
    assert add(ctx, None, f"{server}/dl/tool.bin", to="/x/", scratch=tmp_path).content != one


def test_bad_checksum_and_copy_of_url(ctx, tmp_path, server):
    with pytest.raises(BuildError, match="invalid checksum"):
        add(ctx, None, f"{server}/dl/tool.bin", to="/x/", scratch=tmp_path, checksum="md5:x")
    with pytest.raises(BuildError, match="can't be a URL for COPY"):
        add(ctx, None, f"{server}/dl/tool.bin", to="/x/", scratch=tmp_path, add=False)
    with pytest.raises(BuildError, match="git"):
        add(ctx, None, "https://example.invalid/repo.git", to="/x/", scratch=tmp_path)
    with pytest.raises(BuildError, match="keep-git-dir"):
        add(ctx, None, "a", to="/x/", scratch=tmp_path, keep_git_dir=True)


# --- COPY --from ------------------------------------------------------------------------------

@pytest.fixture
def stage(tmp_path):
    s = tmp_path / "stage"
    (s / "app" / "bin").mkdir(parents=True)
    (s / "app" / "bin" / "tool").write_text("tool")
    (s / "app" / "bin" / "tool").chmod(0o755)
    (s / "app" / "conf").write_text("conf")
    os.symlink("/app/bin", s / "abslink")
    os.symlink("../../../../../../etc", s / "uplink")
    if os.geteuid() == 0:
        os.chown(s / "app" / "conf", 70, 80)
    return s


def from_stage(stage, dest, *sources, to, tmp_path, **kw):
    req = CopyRequest(add=False, sources=tuple(sources), dest=to, workdir="/", line=9, **kw)
    prepared = prepare_copy(req, context=None, source_root=str(stage), memo=None,
                            scratch_dir=str(tmp_path))
    if dest is not None:
        prepared.apply(str(dest))
    return prepared


def test_from_copies_a_dir_and_keeps_owners(stage, dest, tmp_path):
    from_stage(stage, dest, "/app", to="/srv", tmp_path=tmp_path)
    assert (dest / "srv" / "bin" / "tool").read_text() == "tool"
    assert stat.S_IMODE(os.stat(dest / "srv" / "bin" / "tool").st_mode) == 0o755
    if os.geteuid() == 0:
        st = os.stat(dest / "srv" / "conf")
        assert (st.st_uid, st.st_gid) == (70, 80)


def test_from_follows_links_inside_the_root_only(stage, dest, tmp_path):
    from_stage(stage, dest, "/abslink/tool", to="/t", tmp_path=tmp_path)
    assert (dest / "t").read_text() == "tool"
    # ../.. out of the stage is clamped at its root: /etc of the stage, which has none
    with pytest.raises(BuildError, match="Dockerfile:9: .*not found"):
        from_stage(stage, dest, "/uplink/passwd", to="/p", tmp_path=tmp_path)
    with pytest.raises(BuildError, match="not found"):
        from_stage(stage, dest, "../../etc/passwd", to="/p", tmp_path=tmp_path)


def test_from_glob_and_missing(stage, dest, tmp_path):
    from_stage(stage, dest, "/app/*", to="/g/", tmp_path=tmp_path)
    assert sorted(os.listdir(dest / "g")) == ["conf", "tool"]
    with pytest.raises(BuildError, match="no source files"):
        from_stage(stage, dest, "/app/*.none", to="/g/", tmp_path=tmp_path)


def test_from_content(stage, tmp_path):
    one = from_stage(stage, None, "/app", to="/x", tmp_path=tmp_path).content
    assert from_stage(stage, None, "/app", to="/x", tmp_path=tmp_path).content == one
    os.utime(stage / "app" / "conf", (7, 7))
    assert from_stage(stage, None, "/app", to="/x", tmp_path=tmp_path).content == one
    (stage / "app" / "conf").write_text("changed")
    assert from_stage(stage, None, "/app", to="/x", tmp_path=tmp_path).content != one
    two = from_stage(stage, None, "/app/bin", to="/x", tmp_path=tmp_path).content
    (stage / "elsewhere").write_text("not copied")
    assert from_stage(stage, None, "/app/bin", to="/x", tmp_path=tmp_path).content == two


@as_root
def test_from_owner_counts_unless_chown(stage, tmp_path):
    one = from_stage(stage, None, "/app", to="/x", tmp_path=tmp_path).content
    os.chown(stage / "app" / "conf", 71, 80)
    assert from_stage(stage, None, "/app", to="/x", tmp_path=tmp_path).content != one
    a = from_stage(stage, None, "/app", to="/x", tmp_path=tmp_path, chown="1").content
    os.chown(stage / "app" / "conf", 72, 80)
    assert from_stage(stage, None, "/app", to="/x", tmp_path=tmp_path, chown="1").content == a


def test_from_with_parents(stage, dest, tmp_path):
    from_stage(stage, dest, "/app/bin/tool", "/app/conf", to="/p", tmp_path=tmp_path,
               parents=True)
    assert (dest / "p" / "app" / "bin" / "tool").read_text() == "tool"
    assert (dest / "p" / "app" / "conf").read_text() == "conf"


def test_archive_absolute_names_land_inside(ctx, dest, tmp_path):
    (ctx / "abs.tar").write_bytes(make_tar([("/etc/abs-entry", "file", b"x"),
                                            ("/../also", "file", b"y")]))
    add(ctx, dest, "abs.tar", to="/x", scratch=tmp_path)
    assert (dest / "x" / "etc" / "abs-entry").read_bytes() == b"x"
    assert (dest / "x" / "also").read_bytes() == b"y"


@as_root
def test_archive_chown(ctx, dest, tmp_path):
    (ctx / "a.tar").write_bytes(make_tar(SIMPLE))
    add(ctx, dest, "a.tar", to="/x", scratch=tmp_path, chown="5:6")
    st = os.stat(dest / "x" / "top" / "f.txt")
    assert (st.st_uid, st.st_gid) == (5, 6)

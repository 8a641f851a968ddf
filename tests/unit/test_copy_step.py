"""COPY from the build context: destination rules, directory contents, globs, errors,
owners, modes, mtimes, links, excludes, heredocs, and the cache content matrix."""

from __future__ import annotations

import os
import stat

import pytest

from pybuild.builder.contenthash import StatMemo
from pybuild.builder.context import BuildContext
from pybuild.builder.steps.copy import CopyRequest, prepare_copy
from pybuild.errors import BuildError
from pybuild.grammar.parser import Heredoc

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners need root")


def write(path, data="x", mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    if mode is not None:
        path.chmod(mode)
    return path


@pytest.fixture
def ctx(tmp_path):
    c = tmp_path / "ctx"
    write(c / "a.txt", "A")
    write(c / "b.txt", "B")
    write(c / "run.sh", "#!/bin/sh\n", 0o755)
    write(c / "dir" / "one", "1")
    write(c / "dir" / "sub" / "two", "2")
    return c


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "root"
    d.mkdir()
    return d


def copy(ctx, dest, *sources, to, workdir="/", scratch=None, memo=None, **kw):
    req = CopyRequest(add=kw.pop("add", False), sources=tuple(sources), dest=to,
                      workdir=workdir, line=kw.pop("line", 3), **kw)
    context = BuildContext.open(ctx) if ctx is not None else None
    prepared = prepare_copy(req, context=context, source_root=None, memo=memo,
                            scratch_dir=str(scratch or "/nonexistent-scratch"))
    if dest is not None:
        prepared.apply(str(dest))
    return prepared


def content(ctx, *sources, to="/app/", **kw):
    return copy(ctx, None, *sources, to=to, **kw).content


# --- destination rules ------------------------------------------------------------------

def test_file_to_new_path_becomes_that_file(ctx, dest):
    copy(ctx, dest, "a.txt", to="/app/renamed")
    assert (dest / "app" / "renamed").read_text() == "A"
    assert stat.S_IMODE((dest / "app").stat().st_mode) == 0o755


def test_trailing_slash_copies_into_the_dir(ctx, dest):
    copy(ctx, dest, "a.txt", to="/app/")
    assert (dest / "app" / "a.txt").read_text() == "A"


def test_existing_dir_without_slash_copies_into_it(ctx, dest):
    (dest / "app").mkdir()
    copy(ctx, dest, "a.txt", to="/app")
    assert (dest / "app" / "a.txt").read_text() == "A"


def test_relative_dest_joins_workdir(ctx, dest):
    copy(ctx, dest, "a.txt", to="x/y.txt", workdir="/srv/w")
    assert (dest / "srv" / "w" / "x" / "y.txt").read_text() == "A"
    copy(ctx, dest, "b.txt", to=".", workdir="/srv/w")
    assert (dest / "srv" / "w" / "b.txt").read_text() == "B"


def test_directory_source_copies_its_contents(ctx, dest):
    copy(ctx, dest, "dir", to="/opt")
    assert (dest / "opt" / "one").read_text() == "1"
    assert (dest / "opt" / "sub" / "two").read_text() == "2"
    assert not (dest / "opt" / "dir").exists()


def test_several_sources_need_a_slash_dest(ctx, dest):
    with pytest.raises(BuildError) as e:
        copy(ctx, dest, "a.txt", "b.txt", to="/app")
    assert "Dockerfile:3" in str(e.value)
    assert "destination must be a directory and end with a /" in str(e.value)
    with pytest.raises(BuildError):
        copy(ctx, dest, "*.txt", to="/app2")
    copy(ctx, dest, "*.txt", to="/app3/")
    assert sorted(os.listdir(dest / "app3")) == ["a.txt", "b.txt"]


def test_glob_into_dot_workdir(ctx, dest):
    copy(ctx, dest, "*.txt", to=".", workdir="/w")
    assert sorted(os.listdir(dest / "w")) == ["a.txt", "b.txt"]


def test_glob_classes_and_question_mark(ctx, dest):
    copy(ctx, dest, "[ab].t?t", to="/g/")
    assert sorted(os.listdir(dest / "g")) == ["a.txt", "b.txt"]


def test_file_over_existing_file_replaces_it(ctx, dest):
    write(dest / "app" / "a.txt", "old", 0o600)
    copy(ctx, dest, "a.txt", to="/app/")
    assert (dest / "app" / "a.txt").read_text() == "A"


def test_dir_over_existing_file_is_an_error(ctx, dest):
    write(dest / "opt", "file")
    with pytest.raises(BuildError, match="non-directory"):
        copy(ctx, dest, "dir", to="/opt")


def test_dir_merges_into_existing_dir(ctx, dest):
    write(dest / "opt" / "keep", "k")
    copy(ctx, dest, "dir", to="/opt/")
    assert (dest / "opt" / "keep").read_text() == "k"
    assert (dest / "opt" / "one").read_text() == "1"


# --- errors -----------------------------------------------------------------------------

def test_missing_source_names_it_with_line(ctx, dest):
    with pytest.raises(BuildError) as e:
        copy(ctx, dest, "nope.txt", to="/app/", line=7)
    assert str(e.value).startswith("Dockerfile:7: ")
    assert "nope.txt" in str(e.value)


def test_glob_matching_nothing_is_an_error(ctx, dest):
    with pytest.raises(BuildError, match="no source files"):
        copy(ctx, dest, "*.nothing", to="/app/")


def test_source_outside_the_context(ctx, dest):
    with pytest.raises(BuildError, match="outside the build context"):
        copy(ctx, dest, "../etc/passwd", to="/app/")


def test_symlink_leaving_the_context_is_an_error(ctx, dest, tmp_path):
    write(tmp_path / "secret", "s")
    os.symlink(str(tmp_path / "secret"), ctx / "abs")
    os.symlink("../secret", ctx / "rel")
    for name in ("abs", "rel"):
        with pytest.raises(BuildError, match="outside"):
            copy(ctx, dest, name, to="/app/")


def test_symlink_inside_a_dir_is_copied_as_a_link(ctx, dest):
    os.symlink("/etc/passwd", ctx / "dir" / "abs")
    os.symlink("one", ctx / "dir" / "rel")
    copy(ctx, dest, "dir", to="/opt")
    assert os.readlink(dest / "opt" / "abs") == "/etc/passwd"
    assert os.readlink(dest / "opt" / "rel") == "one"


def test_symlink_source_is_followed_inside_the_context(ctx, dest):
    os.symlink("a.txt", ctx / "link")
    copy(ctx, dest, "link", to="/app/")
    p = dest / "app" / "link"
    assert not p.is_symlink() and p.read_text() == "A"


def test_dockerignored_file_is_invisible(ctx, dest):
    write(ctx / ".dockerignore", "b.txt\ndir/sub\n")
    with pytest.raises(BuildError, match="excluded by .dockerignore"):
        copy(ctx, dest, "b.txt", to="/app/")
    copy(ctx, dest, "dir", to="/opt")
    assert (dest / "opt" / "one").exists() and not (dest / "opt" / "sub").exists()


def test_bad_chmod_fails_before_reading(ctx, dest):
    with pytest.raises(BuildError, match="chmod"):
        copy(ctx, dest, "a.txt", to="/app/", chmod="99z")


# --- hostile destinations -----------------------------------------------------------------

def test_symlinked_dest_dir_stays_inside_the_root(ctx, dest, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), dest / "app")  # absolute: means <root>/<outside> in the root
    copy(ctx, dest, "a.txt", to="/app/")
    assert list(outside.iterdir()) == []
    assert (dest / str(outside).lstrip("/") / "a.txt").read_text() == "A"


def test_dotdot_link_in_dest_cannot_escape(ctx, dest, tmp_path):
    os.symlink("../../../../..", dest / "up")
    copy(ctx, dest, "a.txt", to="/up/x/")
    assert (dest / "x" / "a.txt").read_text() == "A"
    assert not (tmp_path / "x").exists()


def test_dest_file_that_is_a_link_is_replaced_not_followed(ctx, dest, tmp_path):
    victim = write(tmp_path / "victim", "v")
    os.symlink(str(victim), dest / "f")
    copy(ctx, dest, "a.txt", to="/f")
    assert victim.read_text() == "v"
    assert not (dest / "f").is_symlink() and (dest / "f").read_text() == "A"


def test_link_in_context_dir_does_not_redirect_later_files(ctx, dest, tmp_path):
    # a dir tree holding `x -> /` then `x/...`? A context cannot: a name is a dir or a link.
    # but a link in dest_root named like a dir of the source is followed inside the root
    os.symlink("/elsewhere", dest / "opt")
    copy(ctx, dest, "dir", to="/opt")
    assert (dest / "elsewhere" / "sub" / "two").read_text() == "2"


# --- metadata -----------------------------------------------------------------------------

def test_modes_and_mtimes_are_kept(ctx, dest):
    os.utime(ctx / "run.sh", (1_000_000, 1_000_000))
    os.utime(ctx / "dir" / "sub", (2_000_000, 2_000_000))
    (ctx / "dir" / "sub").chmod(0o750)
    copy(ctx, dest, "run.sh", "dir", to="/x/")
    st = os.stat(dest / "x" / "run.sh")
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_mtime == 1_000_000
    st = os.stat(dest / "x" / "sub")
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_mtime == 2_000_000


def test_created_top_dir_takes_the_source_dir_metadata(ctx, dest):
    (ctx / "dir").chmod(0o711)
    copy(ctx, dest, "dir", to="/new")
    assert stat.S_IMODE(os.stat(dest / "new").st_mode) == 0o711
    (dest / "old").mkdir(0o755)
    copy(ctx, dest, "dir", to="/old")
    assert stat.S_IMODE(os.stat(dest / "old").st_mode) == 0o755


def test_chmod_octal_applies_to_files_and_dirs(ctx, dest):
    copy(ctx, dest, "dir", to="/m", chmod="0640")
    assert stat.S_IMODE(os.stat(dest / "m" / "one").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(dest / "m" / "sub").st_mode) == 0o640


def test_chmod_symbolic(ctx, dest):
    copy(ctx, dest, "a.txt", "run.sh", to="/s/", chmod="u+x,go-r")
    (ctx / "a.txt").chmod(0o644)
    assert stat.S_IMODE(os.stat(dest / "s" / "run.sh").st_mode) == 0o711
    copy(ctx, dest, "dir", to="/t", chmod="a=rX")
    assert stat.S_IMODE(os.stat(dest / "t" / "sub").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(dest / "t" / "one").st_mode) == 0o444


def test_hardlinks_stay_hardlinks(ctx, dest):
    os.link(ctx / "dir" / "one", ctx / "dir" / "hard")
    copy(ctx, dest, "dir", to="/h")
    assert os.stat(dest / "h" / "one").st_ino == os.stat(dest / "h" / "hard").st_ino


@as_root
def test_owner_is_root_by_default(ctx, dest):
    os.chown(ctx / "a.txt", 1234, 4321)
    copy(ctx, dest, "a.txt", to="/app/")
    st = os.stat(dest / "app" / "a.txt")
    assert (st.st_uid, st.st_gid) == (0, 0)


@as_root
def test_chown_by_name_and_id(ctx, dest):
    write(dest / "etc" / "passwd", "root:x:0:0::/root:/bin/sh\nweb:x:101:102::/w:/bin/sh\n")
    write(dest / "etc" / "group", "root:x:0:\nstaff:x:50:\nweb:x:102:\n")
    copy(ctx, dest, "dir", to="/o/p/", chown="web")
    for p in ("o", "o/p", "o/p/one", "o/p/sub/two"):
        st = os.lstat(dest / p)
        assert (st.st_uid, st.st_gid) == (101, 102), p
    copy(ctx, dest, "a.txt", to="/q/", chown="web:staff")
    st = os.stat(dest / "q" / "a.txt")
    assert (st.st_uid, st.st_gid) == (101, 50)
    copy(ctx, dest, "a.txt", to="/r/", chown="1000")
    st = os.stat(dest / "r" / "a.txt")
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    copy(ctx, dest, "a.txt", to="/r2/", chown="7:staff")
    st = os.stat(dest / "r2" / "a.txt")
    assert (st.st_uid, st.st_gid) == (7, 50)
    # existing dirs on the way keep their owner
    assert os.stat(dest / "etc").st_uid == 0


def test_chown_unknown_user_is_an_error(ctx, dest):
    with pytest.raises(BuildError, match="unable to find user nobody2"):
        copy(ctx, dest, "a.txt", to="/app/", chown="nobody2")
    write(dest / "etc" / "passwd", "root:x:0:0::/root:/bin/sh\n")
    with pytest.raises(BuildError, match="unable to find group nogroup"):
        copy(ctx, dest, "a.txt", to="/app/", chown="root:nogroup")


# --- --exclude and heredocs -----------------------------------------------------------------

def test_exclude_patterns(ctx, dest):
    write(ctx / "dir" / "skip.log", "l")
    write(ctx / "dir" / "sub" / "deep.log", "l")
    copy(ctx, dest, "dir", to="/e", excludes=("*.log", "sub/*.log"))
    assert sorted(os.listdir(dest / "e")) == ["one", "sub"]
    assert os.listdir(dest / "e" / "sub") == ["two"]
    copy(ctx, dest, "*.txt", to="/f/", excludes=("b*",))
    assert os.listdir(dest / "f") == ["a.txt"]


def test_exclude_changes_content(ctx):
    assert content(ctx, "dir") != content(ctx, "dir", excludes=("one",))
    before = content(ctx, "dir", excludes=("one",))
    write(ctx / "dir" / "one", "changed")
    assert content(ctx, "dir", excludes=("one",)) == before


def test_heredoc_expanded_and_literal(dest):
    docs = (Heredoc("greet", 'hello "$WHO" \\$HOME\n', True, False),
            Heredoc("raw", "keep $WHO\n", False, False))
    copy(None, dest, to="/h/", heredocs=docs, env={"WHO": "world"})
    assert (dest / "h" / "greet").read_text() == 'hello "world" $HOME\n'
    assert (dest / "h" / "raw").read_text() == "keep $WHO\n"
    assert stat.S_IMODE(os.stat(dest / "h" / "raw").st_mode) == 0o644


def test_heredoc_content_follows_the_body(dest):
    one = copy(None, None, to="/h", heredocs=(Heredoc("f", "a\n", False, False),)).content
    two = copy(None, None, to="/h", heredocs=(Heredoc("f", "b\n", False, False),)).content
    assert one != two


# --- the cache content matrix ------------------------------------------------------------------

def test_content_matrix(ctx):
    base = content(ctx, "dir", "a.txt")
    assert content(ctx, "dir", "a.txt") == base
    write(ctx / "b.txt", "not copied")  # a file the copy does not take
    assert content(ctx, "dir", "a.txt") == base
    os.utime(ctx / "a.txt", (5, 5))  # mtime only
    assert content(ctx, "dir", "a.txt") == base
    write(ctx / ".dockerignore", "dir/ignored\n")
    write(ctx / "dir" / "ignored", "i")
    assert content(ctx, "dir", "a.txt") == base
    write(ctx / "dir" / "ignored", "changed")
    assert content(ctx, "dir", "a.txt") == base
    write(ctx / "dir" / "one", "changed")  # a copied file
    changed = content(ctx, "dir", "a.txt")
    assert changed != base
    os.rename(ctx / "dir" / "one", ctx / "dir" / "uno")  # a rename
    assert content(ctx, "dir", "a.txt") not in (base, changed)
    (ctx / "a.txt").chmod(0o600)  # a mode
    renamed = content(ctx, "dir", "a.txt")
    (ctx / "a.txt").chmod(0o644)
    assert content(ctx, "dir", "a.txt") != renamed


def test_content_uses_the_stat_memo(ctx, monkeypatch):
    memo = StatMemo()
    for p in (ctx / "dir" / "one", ctx / "dir" / "sub" / "two"):
        os.utime(p, (1000, 1000))  # old enough to be remembered
    first = content(ctx, "dir", memo=memo)
    import pybuild.builder.steps.copy as copy_mod

    def no_reads(path):
        raise AssertionError(f"read {path}")

    monkeypatch.setattr(copy_mod, "file_digest", no_reads)
    assert content(ctx, "dir", memo=memo) == first


def test_owner_never_counts_for_context_files(ctx):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    base = content(ctx, "a.txt")
    os.chown(ctx / "a.txt", 55, 55)
    assert content(ctx, "a.txt") == base


# --- --parents -----------------------------------------------------------------------------

def test_parents_keeps_the_source_paths(ctx, dest):
    write(ctx / "x" / "a.txt", "xa")
    write(ctx / "y" / "sub" / "b.txt", "yb")
    (ctx / "y").chmod(0o750)
    copy(ctx, dest, "x/a.txt", "y/sub/b.txt", "dir", to="/p", parents=True)
    assert (dest / "p" / "x" / "a.txt").read_text() == "xa"
    assert (dest / "p" / "y" / "sub" / "b.txt").read_text() == "yb"
    assert (dest / "p" / "dir" / "sub" / "two").read_text() == "2"
    assert stat.S_IMODE(os.stat(dest / "p" / "y").st_mode) == 0o750


def test_parents_pivot_and_glob(ctx, dest):
    write(ctx / "x" / "y" / "a.txt", "a")
    write(ctx / "x" / "y" / "b.txt", "b")
    copy(ctx, dest, "x/./y/*.txt", to="/q/", parents=True)
    assert sorted(os.listdir(dest / "q" / "y")) == ["a.txt", "b.txt"]
    assert not (dest / "q" / "x").exists()


def test_parents_changes_content(ctx):
    write(ctx / "x" / "a.txt", "xa")
    assert content(ctx, "x/a.txt") != content(ctx, "x/a.txt", parents=True)


def test_typed_heredoc_source_content(dest):
    from pybuild.builder import type_dockerfile
    from pybuild.grammar import parse

    typed = type_dockerfile(parse('FROM x\nCOPY <<-EOF <<"RAW" /d/\n\thi $A "q" \\\\\n'
                                  '\tEOF\nraw $A\nRAW\n'))
    command = typed.stages[0].commands[0]
    copy(None, dest, to=command.dest, heredocs=command.contents, env={"A": "x"})
    assert (dest / "d" / "EOF").read_text() == 'hi x "q" \\\n'
    assert (dest / "d" / "RAW").read_text() == "raw $A\n"


def test_dest_path_through_a_file_is_an_error(ctx, dest):
    write(dest / "blocker", "f")
    with pytest.raises(BuildError, match="Dockerfile:3: .*blocker"):
        copy(ctx, dest, "a.txt", to="/blocker/x/")


def test_link_does_not_enter_an_existing_dir_without_slash(ctx, dest):
    (dest / "app").mkdir()
    with pytest.raises(BuildError, match="cannot replace directory /app"):
        copy(ctx, dest, "a.txt", to="/app", link=True)
    copy(ctx, dest, "a.txt", to="/app/", link=True)
    assert (dest / "app" / "a.txt").read_text() == "A"


def test_copy_dot_makes_a_0755_dir_whatever_the_context_mode(ctx, dest):
    ctx.chmod(0o700)
    copy(ctx, dest, ".", to="/app")
    assert stat.S_IMODE(os.stat(dest / "app").st_mode) == 0o755
    assert (dest / "app" / "dir" / "one").read_text() == "1"
    before = content(ctx, ".")
    ctx.chmod(0o750)  # the context dir's own mode is not copied, so it does not count
    assert content(ctx, ".") == before

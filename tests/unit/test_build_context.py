"""The build context: walk with .dockerignore, COPY source resolution, content hashes, stat memo."""

from __future__ import annotations

import os

import pytest

from pybuild.builder import contenthash
from pybuild.builder.contenthash import StatMemo, content_hash
from pybuild.builder.context import BuildContext, ContextError, go_match
from pybuild.errors import BuildError
from pybuild.grammar.ignore import IgnoreRules

OLD = 1_500_000_000  # mtime far in the past: beyond the racy window, so memoizable


def make(root, files: dict[str, str | None]):
    """Create files (None = directory); every mtime set to OLD."""
    for rel, body in files.items():
        path = root / rel
        if body is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
    for dirpath, dirs, names in os.walk(root):
        for n in dirs + names:
            os.utime(os.path.join(dirpath, n), (OLD, OLD), follow_symlinks=False)
    return root


def ctx(root, ignore: str = "") -> BuildContext:
    return BuildContext(root, IgnoreRules.from_text(ignore))


@pytest.fixture
def tree(tmp_path):
    return make(tmp_path / "ctx", {
        "Dockerfile": "FROM scratch\n",
        "a.txt": "a", "b.txt": "b", "c.md": "c",
        "src/main.py": "print(1)\n", "src/lib/util.py": "u", "src/lib/.hidden": "h",
        "node_modules/x/index.js": "x", "node_modules/keep/k.js": "k",
        "docs/a.txt": "d", "empty": None,
    })


def test_walk_lists_everything_without_rules(tree):
    c = ctx(tree)
    assert "src/lib/util.py" in c.files() and "empty" in c.files()
    assert c.entries["src"].kind == "dir" and c.entries["a.txt"].kind == "file"


def test_walk_applies_ignore_rules_and_exceptions(tree):
    c = ctx(tree, "node_modules\n!node_modules/keep\n*.md\nsrc/**/.hidden\n")
    files = set(c.files())
    assert "node_modules/x/index.js" not in files and "node_modules/x" not in files
    assert {"node_modules", "node_modules/keep", "node_modules/keep/k.js"} <= files
    assert "c.md" not in files and "src/lib/.hidden" not in files
    assert "src/lib/util.py" in files


def test_ignored_dir_without_exceptions_is_skipped_unread(tree):
    bad = tree / "secret"
    bad.mkdir()
    (bad / "f").write_text("x")
    os.chmod(bad, 0)
    try:
        c = ctx(tree, "secret\n")  # never listed, so even root's unreadable dir is fine
        assert "secret" not in c.files()
    finally:
        os.chmod(bad, 0o755)


def test_open_uses_dockerignore(tree):
    (tree / ".dockerignore").write_text("*.txt\n")
    c = BuildContext.open(tree)
    assert "a.txt" not in c.files() and "docs/a.txt" in c.files()


def test_go_match_semantics():
    assert go_match("*.txt", "a.txt") and not go_match("*.txt", "a.txt.bak")
    assert go_match("?.txt", "a.txt") and not go_match("?.txt", "ab.txt")
    assert go_match("[ab].txt", "b.txt") and not go_match("[^ab].txt", "b.txt")
    assert go_match("[a-c]*", "cat") and go_match("\\*", "*") and not go_match("\\*", "x")


def test_resolve_literals_globs_and_dirs(tree):
    c = ctx(tree)
    assert [s.name for s in c.resolve("*.txt")] == ["a.txt", "b.txt"]
    assert [s.name for s in c.resolve("src/*/*.py")] == ["src/lib/util.py"]
    assert [(s.name, s.kind) for s in c.resolve("src")] == [("src", "dir")]
    assert [s.path for s in c.resolve("/a.txt")] == ["a.txt"]  # / is the context root
    assert c.resolve(".")[0].path == "" and c.resolve(".")[0].kind == "dir"
    assert [s.name for s in c.resolve("src/../a.txt")] == ["a.txt"]


def test_resolve_errors_like_buildkit(tree):
    c = ctx(tree, "c.md\n")
    with pytest.raises(ContextError, match="not found: file not found in build context") as e:
        c.resolve("missing.txt")
    assert e.value.source == "missing.txt" and isinstance(e.value, BuildError)
    with pytest.raises(ContextError, match="excluded by .dockerignore"):
        c.resolve("c.md")  # ignored files are invisible
    with pytest.raises(ContextError, match="no source files were specified"):
        c.resolve("*.nothing")
    with pytest.raises(ContextError, match="no source files were specified"):
        c.resolve("*.md")
    with pytest.raises(ContextError, match="syntax error"):
        c.resolve("[a-")


@pytest.mark.parametrize("source", ["../x", "..", "a/../../x", "/../etc/passwd"])
def test_source_outside_the_context(tree, source):
    with pytest.raises(ContextError, match="outside the build context") as e:
        ctx(tree).resolve(source)
    assert e.value.source == source


def test_symlinks_inside_followed_escaping_refused(tree):
    os.symlink("src/lib", tree / "lib")
    os.symlink("../../a.txt", tree / "src/lib/up")
    os.symlink("../../..", tree / "src/escape")
    os.symlink("/etc/passwd", tree / "abs")
    os.symlink("loop2", tree / "loop1")
    os.symlink("loop1", tree / "loop2")
    c = ctx(tree)
    assert [(s.name, s.path, s.kind) for s in c.resolve("lib")] == [("lib", "src/lib", "dir")]
    assert [s.path for s in c.resolve("lib/util.py")] == ["src/lib/util.py"]
    assert [s.path for s in c.resolve("lib/up")] == ["a.txt"]
    for bad in ("src/escape", "src/escape/x", "abs"):
        with pytest.raises(ContextError, match="points outside the build context"):
            c.resolve(bad)
    with pytest.raises(ContextError, match="too many levels"):
        c.resolve("loop1")


def test_hash_stable_and_blind_to_mtime(tree):
    h1 = content_hash(ctx(tree), ["src", "*.txt"])
    assert h1 == content_hash(ctx(tree), ["src", "*.txt"])
    os.utime(tree / "src/main.py", (OLD + 99, OLD + 99))
    assert content_hash(ctx(tree), ["src", "*.txt"]) == h1


def test_hash_sees_bytes_modes_names_and_links(tree):
    base = content_hash(ctx(tree), ["src"])
    (tree / "src/main.py").write_text("print(2)\n")  # one byte differs
    changed = content_hash(ctx(tree), ["src"])
    assert changed != base
    os.chmod(tree / "src/main.py", 0o755)
    assert content_hash(ctx(tree), ["src"]) != changed
    os.chmod(tree / "src/main.py", 0o644)
    assert content_hash(ctx(tree), ["src"]) == changed
    os.symlink("main.py", tree / "src/ln")
    linked = content_hash(ctx(tree), ["src"])
    assert linked != changed
    os.unlink(tree / "src/ln")
    os.symlink("lib", tree / "src/ln")
    assert content_hash(ctx(tree), ["src"]) != linked
    assert content_hash(ctx(tree), ["a.txt"]) != content_hash(ctx(tree), ["b.txt"])


def test_hash_ignores_ignored_files_and_unrelated_files(tree):
    rules = "src/lib/.hidden\n"
    base = content_hash(ctx(tree, rules), ["src"])
    (tree / "src/lib/.hidden").write_text("changed")
    (tree / "b.txt").write_text("changed too")
    assert content_hash(ctx(tree, rules), ["src"]) == base


def test_hash_owner_only_when_asked(tree):
    plain = content_hash(ctx(tree), ["a.txt"])
    owned = content_hash(ctx(tree), ["a.txt"], owner=True)
    assert plain != owned
    os.chown(tree / "a.txt", 1234, 5678)
    assert content_hash(ctx(tree), ["a.txt"]) == plain
    assert content_hash(ctx(tree), ["a.txt"], owner=True) != owned


def test_stat_memo_avoids_reading(tree, store, monkeypatch):
    c = ctx(tree)
    memo = StatMemo.load(store, c.root)
    first = content_hash(c, ["."], memo=memo)
    assert memo.save(store) == len([e for e in c.entries.values() if e.kind == "file"])

    def no_reads(path):
        raise AssertionError(f"read {path} although its stat is memoized")
    monkeypatch.setattr(contenthash, "file_digest", no_reads)
    assert content_hash(ctx(tree), ["."], memo=StatMemo.load(store, c.root)) == first

    reads = []
    monkeypatch.undo()
    real = contenthash.file_digest
    monkeypatch.setattr(contenthash, "file_digest", lambda p: reads.append(p) or real(p))
    (tree / "a.txt").write_text("A")  # changed: stat differs, so read again
    os.utime(tree / "a.txt", (OLD, OLD + 1))
    second = content_hash(ctx(tree), ["."], memo=StatMemo.load(store, c.root))
    assert second != first and reads == [str(tree / "a.txt")]


def test_stat_memo_skips_racy_files(tree, store):
    (tree / "fresh").write_text("now")  # mtime is now: not remembered
    c = ctx(tree)
    memo = StatMemo.load(store, c.root)
    content_hash(c, ["fresh", "a.txt"], memo=memo)
    assert memo.save(store) == 1
    assert StatMemo.load(store, c.root).get(str(tree / "fresh"), c.entries["fresh"]) is None


def test_stat_memo_is_per_root(tree, store):
    other = ctx(make(tree.parent / "ctx0", {"a.txt": "zzz"}))  # a sibling sharing the prefix
    memo = StatMemo.load(store, other.root)
    content_hash(other, ["a.txt"], memo=memo)
    assert memo.save(store) == 1
    mine = StatMemo.load(store, ctx(tree).root)
    assert mine.get(other.abspath("a.txt"), other.entries["a.txt"]) is None


def test_glob_passes_over_escaping_links_but_literal_refuses(tree):
    os.symlink("../..", tree / "zz_escape")
    c = ctx(tree)
    assert [s.name for s in c.resolve("*/main.py")] == ["src/main.py"]
    with pytest.raises(ContextError, match="points outside"):
        c.resolve("zz_escape/main.py")


def test_root_mode_counts_for_copy_dot(tree):
    base = content_hash(ctx(tree), ["."])
    os.chmod(tree, 0o700)
    assert content_hash(ctx(tree), ["."]) != base


def test_names_with_newlines_do_not_collide(tmp_path):
    one = content_hash(ctx(make(tmp_path / "one", {"d/a\n1": "x"})), ["d"])
    two = content_hash(ctx(make(tmp_path / "two", {"d/a": "\n1x"})), ["d"])
    assert one != two
    undecodable = make(tmp_path / "three", {"d": None})
    (undecodable / os.fsdecode(b"d/\xff")).write_text("x")
    assert content_hash(ctx(undecodable), ["d"]).startswith("sha256:")


def test_stat_memo_prune_forgets_files_no_longer_sent(tree, store):
    c = ctx(tree)
    memo = StatMemo.load(store, c.root)
    content_hash(c, ["."], memo=memo)
    memo.save(store)
    os.unlink(tree / "a.txt")
    c2 = ctx(tree, "b.txt\n")
    memo2 = StatMemo.load(store, c2.root)
    assert memo2.prune(store, c2) == 2
    left = StatMemo.load(store, c2.root)._rows
    assert str(tree / "c.md") in left and str(tree / "b.txt") not in left


def test_open_prefers_dockerfile_specific_ignore(tree):
    (tree / ".dockerignore").write_text("*.txt\n")
    (tree / "build.Dockerfile").write_text("FROM scratch\n")
    (tree / "build.Dockerfile.dockerignore").write_text("*.md\n")
    c = BuildContext.open(tree, tree / "build.Dockerfile")
    assert "a.txt" in c.files() and "c.md" not in c.files()


def test_symlink_source_copies_its_target_under_its_own_name(tree):
    os.symlink("a.txt", tree / "lnk")
    c = ctx(tree)
    assert [(s.name, s.path, s.kind) for s in c.resolve("lnk")] == [("lnk", "a.txt", "file")]
    via_link = content_hash(c, ["lnk"])
    assert via_link != content_hash(c, ["a.txt"])  # named differently in the image
    (tree / "a.txt").write_text("new")
    assert content_hash(ctx(tree), ["lnk"]) != via_link


def test_context_must_be_a_directory(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ContextError, match="not a directory"):
        BuildContext(tmp_path / "f")
    with pytest.raises(ContextError, match="not a directory"):
        BuildContext(tmp_path / "missing")

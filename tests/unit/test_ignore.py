""".dockerignore matching follows moby/patternmatcher, case by case.

Sources of the expected values:
  [pm]        moby/patternmatcher patternmatcher_test.go: TestMatches (checked through
              MatchesOrParentMatches: "exact" and "inexact" both mean ignored), the
              multi-pattern cases, and matchTests (Go's own filepath.Match table)
  [ignorefile] moby/patternmatcher ignorefile/ignorefile_test.go: TestReadAll
  [reference] Dockerfile reference, ".dockerignore file"; build docs, "Dockerfile-specific
              ignore files"
  [derived]   from reading patternmatcher.go / Go's filepath and regexp
  [go]        checked during development against patternmatcher's own code built with Go
              (its RE2 regexp leaks through patterns in these ways)
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybuild.errors import DockerfileError
from pybuild.grammar.ignore import IgnoreRules, load_ignore

BAD = "bad pattern"

# (pattern, path, ignored?) -- [pm] TestMatches unless marked
SINGLE = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**", "dir/file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\\\", "a\\", True),
    ("a\\*b", "a*b", True),
    # [pm] matchTests (Go's filepath.Match table)
    ("*", "abc", True),
    ("a*", "ab/c", True),  # matches the parent "ab"
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[^c]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
    # bad patterns: [pm] matchTests with ErrBadPattern, TestMatchesWithMalformedPatterns
    ("[]a]", "]", BAD),
    ("[-]", "-", BAD),
    ("[x-]", "x", BAD),
    ("[-x]", "x", BAD),
    ("\\", "a", BAD),
    ("[a-b-c]", "a", BAD),
    ("[", "a", BAD),
    ("[^", "a", BAD),
    ("[^bc", "a", BAD),
    ("a[", "a", BAD),
    ("!", "a", BAD),  # [pm] TestSingleExclamationError
    # [derived] Go's filepath.Match: `!` does not negate a class (only `^` does)
    ("a[!b]c", "a!c", True),
    ("a[!b]c", "axc", False),
    # [derived] the pattern is a Go regexp in disguise: escapes, POSIX classes, anchors
    ("v\\d", "v7", True),
    ("v\\d", "vd", False),
    ("[[:digit:]]*", "7up", True),
    ("[[:digit:]]*", "up", False),
    ("[z-a]", "a", BAD),  # filepath.Match accepts it, the regexp compiler does not
    # [go] patternmatcher's bitmap leaves `|`, `{`, `}` unescaped: alternation and repeats
    ("a|b*", "apple/x", True),
    ("a|b*", "xyz", False),
    ("a|b*", "x/by", True),
    ("a?x{2}", "abxx", True),
    ("a?x{2}", "abx{2}", False),
    ("a?{,3}", "ab{,3}", True),  # not a repeat in RE2: literal
    ("{2}a?", "ab", True),  # RE2 repeats the ^ anchor
    ("a?\\d{1001}", "ab", BAD),  # RE2's repeat limit
    # [go] more RE2 leaking through: \Q quotes the closing $, \x, octal, classes
    ("a?\\Q", "ab$", True),
    ("a?\\Q", "ab", False),
    ("\\x41?", "Ab", True),
    ("a\\12", "a\n", True),
    ("[\\d-z]", "-", True),
    ("[\\d-z]", "a", False),
    ("[[:alpha:]-]?", "-b", True),
    ("\\s?", " b", True),
    ("a\\b?", "ab", False),
    # [reference] leading / and ./ are cleaned; a directory excludes what is below it
    ("/foo", "foo/bar", True),
    ("./foo/../bar", "bar/x", True),
    ("foo/", "foo/x/y", True),
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("temp?", "tempa", True),
    ("temp?", "temp/x", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), SINGLE)
def test_single_pattern(pattern, path, expected):
    if expected is BAD:
        with pytest.raises(DockerfileError):
            IgnoreRules.from_text(pattern)
        return
    assert IgnoreRules.from_text(pattern).ignored(path) is expected


# (patterns, path, ignored?) -- [pm] multi-pattern cases and Test*Exclusion* unless marked
MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["*.go"], ".", False),  # the context root is never excluded
    ([], "any/path/there", False),
    # [reference] the .dockerignore example: exceptions, then a later re-exclusion wins
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    (["*.md", "!README*.md"], "CHANGES.md", True),
]


@pytest.mark.parametrize(("patterns", "path", "expected"), MULTI)
def test_multiple_patterns(patterns, path, expected):
    assert IgnoreRules.from_text("\n".join(patterns)).ignored(path) is expected


def test_reading_follows_readall():
    # [ignorefile] TestReadAll, minus the trailing "!" lines (tested as errors below)
    text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n"
    rules = IgnoreRules.from_text(text)
    assert [(p.text, p.exclusion, p.line) for p in rules.patterns] == [
        ("test1", False, 1),
        ("test2", False, 2),
        ("a/file/here", False, 3),
        ("lastfile", False, 5),
        ("inverted/abs/path", True, 7),
    ]
    assert rules.has_exceptions


def test_comments_blank_lines_bom_and_crlf():
    # [derived] ReadAll: only an unindented # is a comment; BOM and \r are dropped
    rules = IgnoreRules.from_text(b"\xef\xbb\xbf# c\r\n\r\n   \n  # not a comment\r\n*.log \r\n")
    assert [p.text for p in rules.patterns] == ["# not a comment", "*.log"]
    assert rules.ignored("# not a comment")
    assert rules.ignored("x.log")
    assert not rules.ignored("c")


def test_bad_pattern_names_file_and_line():
    with pytest.raises(DockerfileError) as caught:
        IgnoreRules.from_text("ok\n# fine\nsrc/[abc\n", source="ctx/.dockerignore")
    err = caught.value
    assert (err.path, err.line) == ("ctx/.dockerignore", 3)
    assert str(err).startswith("ctx/.dockerignore:3: syntax error in pattern")
    with pytest.raises(DockerfileError, match=r"\.dockerignore:2: illegal exclusion"):
        IgnoreRules.from_text("a\n!  \n")


def test_overlong_line_is_refused_like_docker():
    # [derived] ignorefile.ReadAll uses a bufio.Scanner: a 64 KiB line is "token too long"
    assert IgnoreRules.from_text("a" * (64 * 1024 - 1)).patterns
    with pytest.raises(DockerfileError, match=":2: line too long"):
        IgnoreRules.from_text("ok\n" + "a" * (64 * 1024))


# (ignore file, directory, can the walker skip it?) -- [derived] from fsutil's shortcut
SKIP = [
    ("node_modules", "node_modules", True),
    ("node_modules\n!node_modules/keep", "node_modules", False),
    ("node_modules\n!other/keep", "node_modules", True),
    ("build\n!**/*.keep", "build", False),
    ("build\n!*/x", "build", False),
    ("build\n!src/*/x", "build", True),
    ("a\n!a/b/c", "a/b", False),
    ("a\n!a/x/c", "a/b", True),
    ("*.tmp", "src", False),  # not ignored at all
    ("**\n!src", "src", False),
]


@pytest.mark.parametrize(("text", "directory", "expected"), SKIP)
def test_can_skip_dir(text, directory, expected):
    assert IgnoreRules.from_text(text).can_skip_dir(directory) is expected


def test_load_ignore_precedence(tmp_path):
    context = tmp_path / "ctx"
    (context / "sub").mkdir(parents=True)
    # no file: nothing ignored
    assert not load_ignore(context).ignored("a.log")
    (context / ".dockerignore").write_text("*.log\n")
    assert load_ignore(context).ignored("a.log")
    # [reference] <Dockerfile>.dockerignore beside a custom -f file wins
    dockerfile = context / "sub" / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    assert load_ignore(context, dockerfile).ignored("a.log")
    (context / "sub" / "app.Dockerfile.dockerignore").write_text("*.txt\n")
    rules = load_ignore(context, dockerfile)
    assert rules.ignored("a.txt") and not rules.ignored("a.log")
    assert rules.source.endswith("app.Dockerfile.dockerignore")
    # the default Dockerfile's own ignore file also wins
    (context / "Dockerfile.dockerignore").write_text("*.bin\n")
    assert load_ignore(context).ignored("x.bin")
    assert not load_ignore(context).ignored("a.log")
    # a Dockerfile from stdin has no specific ignore file
    assert load_ignore(context, "-").ignored("a.log")


def test_load_ignore_error_names_the_file(tmp_path):
    (tmp_path / ".dockerignore").write_text("good\n\n[bad\n")
    with pytest.raises(DockerfileError) as caught:
        load_ignore(tmp_path)
    assert caught.value.path == str(tmp_path / ".dockerignore")
    assert caught.value.line == 3


_PATTERN_CHARS = st.sampled_from(list("ab/*?[]^!-\\.# "))
_PATH = st.lists(st.sampled_from(["a", "b", "ab", ".a", "a*", "[a]"]), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.text(_PATTERN_CHARS, max_size=8), max_size=5), path=_PATH)
def test_random_patterns_only_raise_dockerfile_error(lines, path):
    try:
        rules = IgnoreRules.from_text("\n".join(lines))
    except DockerfileError:
        return
    assert rules.ignored("/".join(path)) in (True, False)


_SAFE_PATTERN = st.lists(st.sampled_from(["a", "b", "*", "a*", "?", "**"]), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(st.tuples(st.booleans(), _SAFE_PATTERN), min_size=1, max_size=4),
    directory=st.lists(st.sampled_from(["a", "b", "ab"]), min_size=1, max_size=2),
    below=st.lists(st.sampled_from(["a", "b", "ab", "c"]), min_size=1, max_size=3),
)
def test_skipped_directories_hide_only_ignored_paths(rules, directory, below):
    text = "\n".join(("!" if neg else "") + "/".join(parts) for neg, parts in rules)
    ignore = IgnoreRules.from_text(text)
    if ignore.can_skip_dir("/".join(directory)):
        assert ignore.ignored("/".join(directory + below))


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(st.tuples(st.booleans(), _SAFE_PATTERN), min_size=1, max_size=4),
    path=st.lists(st.sampled_from(["a", "b", "ab", "c"]), min_size=1, max_size=4),
)
def test_walking_with_parent_state_agrees_with_ignored(rules, path):
    # [pm] MatchesUsingParentResults is documented to answer as MatchesOrParentMatches
    text = "\n".join(("!" if neg else "") + "/".join(parts) for neg, parts in rules)
    ignore = IgnoreRules.from_text(text)
    state = None
    for depth in range(1, len(path) + 1):
        prefix = "/".join(path[:depth])
        answer, state = ignore.match(prefix, state)
        assert answer is ignore.ignored(prefix)


def test_walk_semantics_where_patternmatcher_functions_disagree():
    # [derived] fsutil's walk (MatchesUsingParentResults) excludes a/a here, while
    # MatchesOrParentMatches would re-include it through the exception on the parent "a".
    rules = IgnoreRules.from_text("a/a\n!a")
    assert not rules.ignored("a")
    assert rules.ignored("a/a")
    # asked without a parent state, match() falls back to MatchesOrParentMatches' check
    assert rules.match("a/a")[0] is False


def test_deep_double_star_chains_stay_fast():
    # (.*/)? repeated would backtrack exponentially in Python's matcher; RE2 is linear
    rules = IgnoreRules.from_text("/".join(["**"] * 12) + "/x")
    deep = "/".join(["d"] * 60) + "/y"
    assert not rules.ignored(deep)
    assert rules.ignored("d/d/x")

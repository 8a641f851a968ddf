"""Variable expansion follows BuildKit's shell lexer, case by case.

Sources of the expected values (moby/buildkit, frontend/dockerfile/shell/):
  [envVarTest]  the envVarTest table, env PWD=/home SHELL=bash KOREAN=한국어 NULL=
  [wordsTest]   the wordsTest table (ProcessWords)
  [lex_test]    lex_test.go: TestProcessWithMatches, TestShellParserMandatoryEnvVars,
                TestProcessWithMatchesPlatform
  [reference]   the Dockerfile reference, "Environment replacement" and "escape"
  [lex.go]      derived by reading lex.go plus Go's regexp/unicode docs (no table covers it);
                during development words.py also agreed with lex.go itself, built with Go,
                on 500,000 random words (both escape characters)
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybuild.errors import PybuildError
from pybuild.grammar.words import (
    ExpansionError,
    expand,
    expand_with_matches,
    expand_words,
    expanded_flags,
    expands,
    expands_flags,
    process,
)

ERROR = object()  # expected outcome: ExpansionError

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

# (word, expected) with ENV and escape "\" -- all from [envVarTest] unless marked.
ENV_VAR_TEST = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", ERROR),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", ERROR),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hello', ERROR),
    ('"hello\\"', ERROR),
    ('"hel\'lo"', "hel'lo"),
    ("'hello", ERROR),
    ("'hello\\'", "hello\\"),
    ("'hello\\there'", "hello\\there"),
    ("'hello\\\\there'", "hello\\\\there"),
    ("\"''\"", "''"),
    ("$.", "$."),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),  # names are case-sensitive on Linux
    ("he$PWD", "he/home"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"),
    ('"he\\\\$PWD"', "he\\/home"),
    ("\\${}", "${}"),
    ("\\${}aaa", "${}aaa"),
    ("he\\${}xx", "he${}xx"),
    ("${}", ERROR),
    ("${}aaa", ERROR),
    ("he${}xx", ERROR),
    ("he${hi}", "he"),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("he${.}", ERROR),
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:YYY}", ERROR),
    ("he${XXX?}", ERROR),
    ("he${XXX:?}", ERROR),
    ("he${PWD?}", "he/home"),
    ("he${PWD:?}", "he/home"),
    ("he${NULL?}", "he"),
    ("he${NULL:?}", ERROR),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"),
    ("'he${XX}'", "he${XX}"),
    ('"he${PWD}"', "he/home"),
    ("\"he'$PWD'\"", "he'/home'"),
    ('"$PWD"', "/home"),
    ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"),
    ("'\"hello\"'", '"hello"'),
    ("'he\\$PWD'", "he\\$PWD"),
    ("he${PWD", ERROR),
    ("he${PWD:=000}xx", ERROR),  # := is not supported
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),  # the escaped ${ ends at the first }
    ("안'녕'하세요", "안녕하세요"),
    ("안녕\\'하세요", "안녕'하세요"),
    ("안녕$KOREAN", "안녕한국어"),
    ("안녕${XXX:-${YYY:-yyy}}xx", "안녕yyyxx"),
    ("${{aaa}", ERROR),
    ("${aaa}}", "}"),
    ("${aaa", ERROR),
    ("${{aaa:-bbb}", ERROR),
    ("${aaa:-bbb}}", "bbb}"),
    ("${aaa:-bbb", ERROR),
    ("${aaa:-${bbb:-ccc}}", "ccc"),
    ("${aaa:-bbb ${foo}", ERROR),
    ("${aaa:-bbb {foo}", "bbb {foo"),
    ("${:}", ERROR),
    ("${:-bbb}", ERROR),
    ("${:+bbb}", ERROR),
    # positional and special parameters are never set in a Dockerfile
    ("$1", ""),
    ("${1:-bbb}", "bbb"),
    ("${9:+bbb}", ""),
    ("$999aaa", "aaa"),
    ("${999:-bbb}aaa", "bbbaaa"),
    ("$001aaa", "aaa"),
    ("$@@@", "@@"),
    ("${@:-bbb}aaa", "bbbaaa"),
    ("$*", ""),
    ("${#:-bbb}", "bbb"),
    ("$?", ""),
    ("${-}", ""),
    ("$$", ""),  # $$ is the (unset) PID parameter, not a literal dollar
    ("${$:-bbb}", "bbb"),
    ("$!", ""),
    ("${0:+bbb}", ""),
]


@pytest.mark.parametrize(("word", "expected"), ENV_VAR_TEST)
def test_env_var_table(word, expected):
    if expected is ERROR:
        with pytest.raises(ExpansionError):
            expand(word, ENV)
    else:
        assert expand(word, ENV) == expected


# (word, env, expected result, expected matched names) -- from [lex_test] unless marked.
WITH_MATCHES = [
    ("x", {"DUMMY": "dummy"}, "x", set()),
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x ", set()),
    ("x ${FOO}", {"FOO": "y"}, "x y", {"FOO"}),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc", {"FOO", "BAR"}),
    (
        "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
        {"FOO": "xxx", "BAR": ""},
        "xxx bbb ccc",
        {"FOO", "BAR"},
    ),
    ("${FOO:-}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}),
    ("${FOO:-}", {}, "", set()),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb ", {"FOO", "BAR"}),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  ", {"FOO", "BAR"}),
    ("${FOO?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}),
    ("${BAR?bbb}", {"FOO": "xxx", "BAR": ""}, "", {"BAR"}),
    ("${BAZ?ccc}", {"FOO": "xxx"}, ERROR, None),
    ("${FOO:?aaa}", {"FOO": "xxx"}, "xxx", {"FOO"}),
    ("${BAR:?bbb}", {"BAR": ""}, ERROR, None),
    ("${BAZ:?ccc}", {"FOO": "xxx"}, ERROR, None),
    ("${BAZ:?}", {}, ERROR, None),
    ("${FOO=aaa}", {"FOO": "xxx"}, ERROR, None),
    ("${FOO=:aaa}", {"FOO": "xxx"}, ERROR, None),
    ("${FOO=}", {}, ERROR, None),
    # regex metacharacters are literal in patterns; \} keeps } inside the pattern
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x", {"FOO"}),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx", {"FOO"}),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y", {"FOO"}),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy", {"FOO"}),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy", {"FOO", "BAR"}),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy", {"FOO"}),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy", {"FOO"}),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy", {"FOO"}),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y", {"FOO"}),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy.", {"FOO"}),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a", {"FOO"}),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy", {"FOO"}),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}),
    (
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
        "/foo.*/*.txt - /foo..*.txt",
        {"FOO", "NEEDLE"},
    ),
    (
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
        "/tmp/bar.txt - /bar.txt",
        {"FOO", "NEEDLE"},
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
        "/foo/b/c.txt - /foo/c.txt",
        {"FOO", "NEEDLE", "REPLACEMENT"},
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT}",
        {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
        "https://google.de",
        {"FOO", "NEEDLE", "REPLACEMENT"},
    ),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt", {"FOO"}),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy", {"FOO", "BAR"}),
    ("${FOO//ww}", {"FOO": "xxyy"}, ERROR, None),
    ("${FOO//}", {"FOO": "xxyy"}, ERROR, None),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy", {"FOO"}),
    ("${FOO///}", {}, "", set()),
    (
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
        {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
        "something-v1.2.3.linux-arm-v7.tar.gz",
        {"VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"},
    ),
    (
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
        {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "amd64"},
        "something-v1.2.3.linux-amd64.tar.gz",
        {"VERSION", "TARGETOS", "TARGETARCH"},
    ),
    # [lex.go] bracket expressions are NOT globs in BuildKit: `[` is literal
    ("${FOO#[ab]}", {"FOO": "[ab]c"}, "c", {"FOO"}),
    ("${FOO#[ab]}", {"FOO": "ac"}, "ac", {"FOO"}),
    # [lex.go] shortest vs longest suffix
    ("${FOO%.*}", {"FOO": "a.tar.gz"}, "a.tar", {"FOO"}),
    ("${FOO%%.*}", {"FOO": "a.tar.gz"}, "a", {"FOO"}),
    ("${FOO##*/}", {"FOO": "/usr/local/bin"}, "bin", {"FOO"}),
    ("${FOO#*/}", {"FOO": "/usr/local/bin"}, "usr/local/bin", {"FOO"}),
    # [lex.go] `\x` in a pattern is an invalid escape; only * ? \ } / may be escaped
    ("${FOO#\\x}", {"FOO": "xx"}, ERROR, None),
    ("${FOO#\\\\}", {"FOO": "\\a"}, "a", {"FOO"}),
    # [lex.go] Go's ReplaceAll skips an empty match right after a match: `.*` on "ab" -> "-"
    ("${FOO//*/-}", {"FOO": "ab"}, "-", {"FOO"}),
    ("${FOO//?/-}", {"FOO": "ab"}, "--", {"FOO"}),
    # [lex.go] ...and expands $0 / $$ in the replacement (only ReplaceAll does)
    ("${FOO//b/\\$0}", {"FOO": "abc"}, "a\\bc", {"FOO"}),
    ("${FOO/b/\\$0}", {"FOO": "abc"}, "a\\$0c", {"FOO"}),
    ("${FOO//b/$R}", {"FOO": "abc", "R": "$$"}, "a$c", {"FOO", "R"}),
    # [lex.go] quotes work inside default words
    ("${X:-'a b'}", {}, "a b", set()),
    ('${X:-"$PWD"}', {"PWD": "/p"}, "/p", {"PWD"}),
    # [lex.go] a lone $ before a non-name stays literal
    ("a$ b$", {}, "a$ b$", set()),
    ("${X:-$}", {}, "$", set()),
]


@pytest.mark.parametrize(("word", "env", "expected", "matched"), WITH_MATCHES)
def test_with_matches_table(word, env, expected, matched):
    if expected is ERROR:
        with pytest.raises(ExpansionError):
            expand_with_matches(word, env)
        return
    result, names = expand_with_matches(word, env)
    assert result == expected
    assert names == frozenset(matched)


def test_unmatched_names_are_reported_separately():
    # [lex_test] TestProcessWithMatches: BAZ is looked up but unset
    done = process("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""})
    assert done.matched == {"FOO", "BAR"}
    assert done.unmatched == {"BAZ"}
    assert process("${ABC:-.}${FOO%x}", {"FOO": "xxyy"}).unmatched == {"ABC"}


def test_mandatory_messages():
    # [lex_test] TestShellParserMandatoryEnvVars: the message is expanded too
    for word in ("${VAR:?message here$ARG}", "${VAR?message here$ARG}"):
        assert expand(word, {"VAR": "plain", "ARG": "x"}) == "plain"
        with pytest.raises(ExpansionError, match="VAR: message herex"):
            expand(word, {"ARG": "x"})
    with pytest.raises(ExpansionError, match="VAR: message herex"):
        expand("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"})
    assert expand("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}) == ""
    with pytest.raises(ExpansionError, match="X: is not allowed to be unset"):
        expand("${X?}", {})
    with pytest.raises(ExpansionError, match="X: is not allowed to be empty"):
        expand("${X:?}", {"X": ""})


# wordsTest's env, in order (the value of `trailing` has 3 trailing spaces).
WORDS_ENV = {"hi": "hi", "space": "abc  def", "leading": "  ab c", "trailing": "ab c   "}

# (word, env, expected words) -- from [wordsTest] unless marked.
WORDS = [
    ("hello", {}, ["hello"]),
    ("hello${hi}bye", {}, ["hellobye"]),
    ("hello${hi}bye", WORDS_ENV, ["hellohibye"]),
    ("hello${space}bye", WORDS_ENV, ["helloabc", "defbye"]),
    ('hello"${space}"bye', WORDS_ENV, ["helloabc  defbye"]),
    ('hello "${space}"bye', WORDS_ENV, ["hello", "abc  defbye"]),
    ("hello${leading}def", WORDS_ENV, ["hello", "ab", "cdef"]),
    ('hello"${leading}" def', WORDS_ENV, ["hello  ab c", "def"]),
    ('hello"${leading}"', WORDS_ENV, ["hello  ab c"]),
    ("hello${leading}", WORDS_ENV, ["hello", "ab", "c"]),
    ("hello${trailing}", WORDS_ENV, ["helloab", "c"]),
    ("hello${trailing}d", WORDS_ENV, ["helloab", "c", "d"]),
    ('hello"${trailing}"d', WORDS_ENV, ["helloab c   d"]),
    ('hel"lo${trailing}"', WORDS_ENV, ["helloab c   "]),
    ('hello" there  "', {}, ["hello there  "]),
    ("hello there     ", {}, ["hello", "there"]),
    ("hello\\ there", {}, ["hello there"]),
    ('hello" there', {}, ERROR),
    ('hello\\" there', {}, ['hello"', "there"]),
    ('hello"\\\\there"', {}, ["hello\\there"]),
    ('hello"\\there"', {}, ["hello\\there"]),
    ("hello'\\\\there'", {}, ["hello\\\\there"]),
    ("hello'\\there'", {}, ["hello\\there"]),
    ("hello'$there'", {}, ["hello$there"]),
    # [lex.go] an empty quoted string makes no word; tabs and newlines split too
    ('a "" b', {}, ["a", "b"]),
    ("a\tb\nc", {}, ["a", "b", "c"]),
    # [lex.go] expansions inside a default word are split like any expansion
    ('${X:-"a b"}', {}, ["a", "b"]),
    ("", {}, []),
]


@pytest.mark.parametrize(("word", "env", "expected"), WORDS)
def test_words_table(word, env, expected):
    if expected is ERROR:
        with pytest.raises(ExpansionError):
            expand_words(word, env)
    else:
        assert expand_words(word, env) == expected


# escape=` (the parser directive for Windows paths). [reference] "escape": with a backtick
# the backslash is an ordinary character; the rest is [lex.go] with the escape swapped.
BACKTICK = [
    ("he`$PWD", {"PWD": "/home"}, "he$PWD"),
    ("he\\$PWD", {"PWD": "/home"}, "he\\/home"),
    ("c:\\dir\\$SUB", {"SUB": "x"}, "c:\\dir\\x"),
    ('"a`"b"', {}, 'a"b'),
    ('"a`tb"', {}, "a`tb"),
    ('"a\\"', {}, "a\\"),
    ("a``b", {}, "a`b"),
    ("hello`", {}, "hello"),
    ("'a`b'", {}, "a`b"),
    ("${X:-`}}", {}, "}"),
    ("he${PWD", {"PWD": "/home"}, ERROR),
]


@pytest.mark.parametrize(("word", "env", "expected"), BACKTICK)
def test_backtick_escape(word, env, expected):
    if expected is ERROR:
        with pytest.raises(ExpansionError):
            expand(word, env, escape="`")
    else:
        assert expand(word, env, escape="`") == expected


def test_backtick_escape_keeps_a_space_in_one_word():
    assert expand_words("a` b c", {}, escape="`") == ["a b", "c"]
    assert expand_words("a\\ b", {}, escape="`") == ["a\\", "b"]


def test_error_message_names_the_word_and_cause():
    with pytest.raises(ExpansionError) as caught:
        expand("he${PWD", {"PWD": "/home"})
    err = caught.value
    assert isinstance(err, PybuildError)
    assert err.word == "he${PWD"
    assert str(err) == "failed to process \"he${PWD\": syntax error: missing '}'"
    with pytest.raises(ExpansionError, match="bad substitution"):
        expand("${}", {})
    with pytest.raises(ExpansionError, match=r"unsupported modifier \(:=\)"):
        expand("${A:=b}", {})
    with pytest.raises(ExpansionError, match="missing '/'"):
        expand("${FOO//ww}", {"FOO": "x"})
    with pytest.raises(ExpansionError, match="matching single-quote"):
        expand("'abc", {})


def test_bad_escape_argument():
    with pytest.raises(ValueError):
        expand("x", {}, escape="/")


def test_byte_order_mark_at_start_is_dropped():
    # [lex.go] Go's text/scanner skips a leading U+FEFF, of the word and of each pattern
    assert expand("\ufeff$A", {"A": "1"}) == "1"
    assert expand("${A//\ufeff/-}", {"A": "ab"}) == "-a-b-"


# [reference] "Environment replacement": the instructions that expand their arguments.
@pytest.mark.parametrize(
    "keyword",
    [
        "ADD",
        "COPY",
        "ENV",
        "EXPOSE",
        "FROM",
        "LABEL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
        "ARG",
        "copy",
        "Env",
    ],
)
def test_expanding_instructions(keyword):
    assert expands(keyword)


@pytest.mark.parametrize(
    "keyword", ["RUN", "CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK", "MAINTAINER", "ONBUILD"]
)
def test_non_expanding_instructions(keyword):
    assert not expands(keyword)


def test_flag_expansion():
    for keyword in ("RUN", "COPY", "ADD", "FROM"):
        assert expands_flags(keyword)
    for keyword in ("HEALTHCHECK", "CMD", "ENV"):
        assert not expands_flags(keyword)
        assert expanded_flags(keyword) == frozenset()
    assert "chown" in expanded_flags("copy") and "from" in expanded_flags("COPY")
    assert "from" not in expanded_flags("add")
    assert expanded_flags("from") == {"platform"}
    assert "mount" in expanded_flags("run")


_ALPHABET = st.sampled_from(list("$${}{}:-+?#%/\\`'\" \tabAB_019*[]!@.é한\ufeff\n"))


@settings(max_examples=400, deadline=None)
@given(
    word=st.text(_ALPHABET, max_size=30),
    env=st.dictionaries(
        st.sampled_from(["a", "A", "b", "_", "1", "é"]), st.text(_ALPHABET, max_size=6), max_size=4
    ),
    escape=st.sampled_from(["\\", "`"]),
)
def test_random_input_only_raises_expansion_error(word, env, escape):
    try:
        done = process(word, env, escape)
    except ExpansionError:
        return
    assert isinstance(done.result, str)
    assert all(w for w in done.words)
    assert done.matched <= env.keys()
    assert not done.matched & done.unmatched


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_characters="$'\"\\`\ufeff"), max_size=40))
def test_plain_text_is_unchanged(word):
    assert expand(word, {"A": "1"}) == word


def test_located_error_is_a_dockerfile_error():
    from pybuild.errors import DockerfileError

    with pytest.raises(ExpansionError) as caught:
        expand("${X:?need X}", {})
    located = caught.value.located("Dockerfile", 4)
    assert isinstance(located, DockerfileError)
    assert str(located) == 'Dockerfile:4: failed to process "${X:?need X}": X: need X'


def test_absurd_nesting_is_an_expansion_error():
    word = "${A:-" * 2000 + "x" + "}" * 2000
    with pytest.raises(ExpansionError, match="nested too deeply"):
        expand(word, {})
    assert expand("${A:-" * 50 + "x" + "}" * 50, {}) == "x"

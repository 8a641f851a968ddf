"""Parser details the BuildKit corpus does not cover: the backtick escape, byte-wise flags,
quoted flags, ONBUILD with flags, spans, the words start symbol, lazy lark and the table
cache."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybuild.grammar import dump, parse
from pybuild.grammar.parser import _word_pattern, get_parser


@pytest.mark.parametrize(
    "source, expected",
    [
        # `# escape=``: backtick escapes in flags (dropped) and words (kept); `\` is ordinary;
        # JSON keeps its own backslash escapes.
        (
            '# escape=`\nFROM a\nCOPY --chown=`"a b`" c:\\\\d e\n',
            '(from "a")\n(copy ["--chown=\\"a"] "b`\\"" "c:\\\\\\\\d" "e")\n',
        ),
        (
            '# escape=`\nFROM a\nENV A=`"x`" B=c\\d C="q` r"\n',
            '(from "a")\n(env "A" "`\\"x`\\"" "=" "B" "c\\\\d" "=" "C" "\\"q` r\\"" "=")\n',
        ),
        (
            '# escape=`\nFROM a\nRUN ["a\\\\b", "c"]\nRUN echo \\\nLABEL k `\n  v\n',
            '(from "a")\n(run "a\\\\b" "c")\n(run "echo \\\\")\n(label "k" "v" "")\n',
        ),
        # Flags: BuildKit reads them byte by byte (Latin-1), 0xa0 inside a character splits.
        (
            "FROM a\nCOPY --chown=\u00e9 a b\nCOPY --a\u00e0b c\n",
            '(from "a")\n(copy ["--chown=\u00c3\u00a9"] "a" "b")\n(copy ["--a\u00c3"] "b" "c")\n',
        ),
        (
            'FROM a\nRUN --mount=type=cache,target="/a b" --network=none make\n',
            '(from "a")\n(run ["--mount=type=cache,target=/a b" "--network=none"] "make")\n',
        ),
        (
            'FROM a\nRUN --"" --x y\nRUN --x --\nfoo --bar baz\n',
            '(from "a")\n(run "--x y")\n(run ["--x"])\n(foo ["--bar"] "")\n',
        ),
        ("FROM a\nRUN \udc85--x y\n", '(from "a")\n(run ["--x"] "y")\n'),
        ("FROM a\nRUN \u00a0--x y\n", '(from "a")\n(run "--x y")\n'),
        # ONBUILD nests a whole instruction, flags and all; HEALTHCHECK's command may be JSON.
        (
            'FROM a\nONBUILD COPY --from=build /a /b\nonbuild onbuild run ["x"]\n',
            '(from "a")\n(onbuild (copy ["--from=build"] "/a" "/b"))\n(onbuild (onbuild (run "x")))\n',
        ),
        (
            'FROM a\nHEALTHCHECK --interval=5s CMD ["curl", "-f"]\nHEALTHCHECK NONE\n',
            '(from "a")\n(healthcheck ["--interval=5s"] "CMD" "curl" "-f")\n(healthcheck "NONE")\n',
        ),
        # Keywords in any case; `fromage` is not FROM; three escapes at the end do not continue.
        (
            "From a\nfromage b\nExPoSe 80/tcp\t443\nARG a\\\\\\\n",
            '(from "a")\n(fromage "")\n(expose "80/tcp" "443")\n(arg "a\\\\\\\\")\n',
        ),
    ],
)
def test_dump(source, expected):
    assert dump(parse(source)) == expected


def test_instruction_fields():
    tree = parse(
        "# syntax=docker/dockerfile:1\nFROM a AS b\nCOPY --from=b --chmod=644 \\\n"
        '  x /y\nCMD ["run"]\n'
    )
    assert [(d.name, d.value, d.line) for d in tree.directives] == [
        ("syntax", "docker/dockerfile:1", 1)
    ]
    copy = tree.instructions[1]
    assert (copy.keyword, copy.flags, copy.args, copy.json) == (
        "copy",
        ("--from=b", "--chmod=644"),
        ("x", "/y"),
        False,
    )
    assert (copy.original, copy.start_line, copy.end_line) == (
        "COPY --from=b --chmod=644   x /y",
        3,
        4,
    )
    cmd = tree.instructions[2]
    assert (cmd.args, cmd.json) == (("run",), True)
    assert tree.escape == "\\"


WORDS = st.text(alphabet=st.sampled_from(list("ab=\"' \t\\\u00a0\u2003")), max_size=40)


@settings(max_examples=200, deadline=None)
@given(WORDS)
def test_word_regex_agrees_with_the_words_rule(text):
    """parser.py splits ARG/ENV/LABEL words with the grammar's WORD terminal; parsing the
    same text from the grammar's `words` start symbol gives the same words."""
    text = text.strip("\t \u00a0\u2003")
    tree = get_parser().parse(text, start="words")
    assert [t.value for t in tree.children] == _word_pattern().findall(text)


def test_import_is_lazy_and_tables_come_from_the_cache(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    code = (
        "import sys, pybuild.grammar as g; assert 'lark' not in sys.modules; "
        "print(g.dump(g.parse('FROM a')), end='')"
    )
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert (r.returncode, r.stdout) == (0, '(from "a")\n'), r.stderr
    (cache,) = (tmp_path / "pybuild").glob("dockerfile-*.lark.cache")
    cache.write_bytes(b"damaged")  # a damaged cache is rebuilt, not an error
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and cache.stat().st_size > 1000


def test_fast_instruction_constructor_matches_the_dataclass():
    import dataclasses

    from pybuild.grammar.parser import Instruction, _instruction

    values = ("run", ("a",), ("--x",), True, "RUN a", 2, 3)
    inner = _instruction(*values)
    assert _instruction(*values, inner=inner) == Instruction(*values, inner=inner)
    assert set(vars(_instruction(*values))) == {f.name for f in dataclasses.fields(Instruction)}

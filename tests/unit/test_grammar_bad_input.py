"""Bad input: every failure is a DockerfileError naming file:line (and, through the CLI,
`error: FILE:N: ...` with a non-zero exit and no traceback); everything else parses.
Sizes are chosen so that anything worse than linear would show; no times are asserted."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybuild.errors import DockerfileError
from pybuild.grammar import dump, parse
from pybuild.grammar.parser import require_known


def error_of(data, path="Dockerfile") -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        parse(data, path)
    assert info.value.path == path and isinstance(info.value.line, int)
    return info.value


@pytest.mark.parametrize(
    "data, line, words",
    [
        (b"", 1, "no instructions"),
        (b"\n\n   \n", 3, "no instructions"),
        (b"# only\n# comments\n", 2, "no instructions"),
        (b"# escape=x\nFROM a\n", 1, "escape"),
        (b"# escape=\\\n# ESCAPE=`\nFROM a\n", 2, "only one escape"),
        (b"FROM a\n\nRUN <<EOF\nnever ends\n", 3, "unterminated heredoc"),
        (b"FROM a\nENV PATH\n", 2, "two arguments"),
        (b"FROM a\nLABEL a=b c\n", 2, "can't find ="),
        (b'FROM a\nCMD ["a", 1]\n', 2, "non-string"),
        (b"FROM a\nRUN x\nRUN " + b"y" * 65536 + b"\n", 3, "line too long"),
    ],
)
def test_rejected_with_line(data, line, words):
    error = error_of(data)
    assert error.line == line
    assert words in str(error)
    assert str(error).startswith(f"Dockerfile:{line}: ")


def test_line_of_65535_bytes_is_fine_and_multibyte_counts_bytes():
    assert parse(b"FROM a\nRUN " + b"y" * (65535 - 4)).instructions[1].args[0] == "y" * 65531
    error = error_of("FROM a\nRUN " + "é" * 32767)  # 65538 bytes, 32771 characters
    assert error.line == 2


def test_unterminated_json_array_falls_back_to_shell_form():
    tree = parse(b'FROM a\nCMD ["a", "b"\nENTRYPOINT [\n')
    assert dump(tree) == '(from "a")\n(cmd "[\\"a\\", \\"b\\"")\n(entrypoint "[")\n'
    assert not tree.instructions[1].json


def test_nul_and_invalid_utf8_are_kept_like_buildkit():
    tree = parse(b"FROM a\nRUN echo \x00 \xff\xfe\nENV K=\xff\n")
    assert dump(tree) == (
        '(from "a")\n(run "echo \\x00 \\xff\\xfe")\n(env "K" "\ufffd" "=")\n'
    )  # U+FFFD is printable


def test_binary_junk_parses_as_unknown_instructions_and_a_build_check_rejects_it():
    junk = random.Random(7).randbytes(20000)
    tree = parse(junk, "junk")
    assert tree.instructions
    with pytest.raises(DockerfileError, match=r"^junk:\d+: unknown instruction"):
        require_known(tree)


def test_ten_megabytes_in_one_instruction_and_hundred_thousand_lines():
    big = b"FROM a\nRUN " + b"echo 0123456789abcdef \\\n" * 420000 + b"done\n"
    assert len(big) > 10_000_000
    tree = parse(big)
    assert tree.instructions[1].end_line == 420002
    many = b"FROM a\n" + b"RUN echo x\nENV A=1 B=2\n" * 50000
    tree = parse(many)
    assert len(tree.instructions) == 100001
    assert tree.instructions[-1].start_line == 100001


def test_pathological_lines_stay_linear():
    flags = parse(b"FROM a\nRUN " + b"--a=1 \\\n" * 30000 + b"true\n").instructions[1]
    assert len(flags.flags) == 30000 and flags.args == ("true",)
    parse(b"FROM a\nCMD " + b"[[[[[[[[[[ \\\n" * 10000)  # deep JSON: not JSON, so shell form
    parse(b"FROM a\nRUN " + b" " * 60000 + b"--x y\n")
    parse(b"FROM a\nRUN <<" + b"<" * 60000 + b"\n")
    parse(b"FROM a\nCOPY " + b"'" * 60001 + b" <<EOF\n")
    parse(b"FROM a\nENV " + b'a="' * 20000 + b"\n")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        alphabet=st.sampled_from(
            list("FROMRUNENVCOPYARGonbuild \t\\`\"'=-[]{},<#\n\r\x00\xa0\u2003é")
        ),
        max_size=300,
    )
)
def test_random_dockerfile_like_text_parses_or_raises_dockerfile_error(text):
    try:
        tree = parse(text.encode("utf-8"), "rand")
    except DockerfileError as e:
        assert e.path == "rand" and isinstance(e.line, int)
        return
    dump(tree)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_raise_dockerfile_error(data):
    try:
        dump(parse(data, "rand"))
    except DockerfileError as e:
        assert e.path == "rand" and isinstance(e.line, int)


def _cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "pybuild.cli.build", "parse", *args],
        input=stdin,
        capture_output=True,
    )


@pytest.mark.parametrize(
    "data, line",
    [
        (b"", 1),
        (b"FROM a\nRUN <<EOF\n", 2),
        (b"# escape=q\nFROM a\n", 1),
        (b"FROM a\n\x00\x01\x02\n", 2),
        (b"FROM a\nRUN " + b"y" * 70000, 2),
    ],
)
def test_cli_reports_file_and_line_without_traceback(tmp_path, data, line):
    path = tmp_path / "Dockerfile"
    path.write_bytes(data)
    r = _cli(str(path))
    assert r.returncode != 0
    err = r.stderr.decode()
    assert err.startswith(f"error: {path}:{line}: "), err
    assert "Traceback" not in err and r.stdout == b""


def test_cli_reads_stdin_and_reports_missing_file(tmp_path):
    r = _cli("--dump", "-", stdin=b"FROM a\nrun b\n")
    assert (r.returncode, r.stdout) == (0, b'(from "a")\n(run "b")\n')
    r = _cli(str(tmp_path / "nope"))
    assert r.returncode != 0 and b"error: " in r.stderr and b"Traceback" not in r.stderr

"""Heredocs (the BuildKit corpus has none): bodies, <<-, quoted names, several per line,
file descriptors, ONBUILD, where they are not recognised, and the unterminated error."""

from __future__ import annotations

import pytest

from pybuild.errors import DockerfileError
from pybuild.grammar import Heredoc, dump, parse


def only(text: str, index: int = 1):
    return parse(text).instructions[index]


def test_run_heredoc_body_and_span():
    instr = only("FROM a\nRUN <<EOF\necho hello\n  # not a comment \\\nEOF\nCMD x\n")
    assert instr.heredocs == (Heredoc("EOF", "echo hello\n  # not a comment \\\n", True, False),)
    assert (instr.start_line, instr.end_line) == (2, 5)
    assert instr.args == ("<<EOF",)
    assert parse("FROM a\nRUN <<EOF\nx\nEOF\nCMD x\n").instructions[2].start_line == 5


def test_dash_strips_leading_tabs_of_body_and_terminator():
    instr = only("FROM a\nRUN <<-EOT sh\n\techo a\n\t\techo b\n\t\tEOT\n")
    (doc,) = instr.heredocs
    assert (doc.name, doc.body, doc.strip_tabs) == ("EOT", "echo a\necho b\n", True)
    assert instr.end_line == 5


@pytest.mark.parametrize(
    "marker, name, expand",
    [
        ("<<EOF", "EOF", True),
        ('<<"EOF"', "EOF", False),
        ("<<'EOF'", "EOF", False),
        ('<<EO"F"', "EOF", False),
        ("<< EOF", "EOF", True),
        ("<<eo'f'", "eof", False),
        ("<<'one two'", "one two", False),
    ],
)
def test_marker_names_and_quoting(marker, name, expand):
    instr = only(f"FROM a\nRUN cat {marker}\nbody\n{name}\n")
    assert [(d.name, d.expand, d.body) for d in instr.heredocs] == [(name, expand, "body\n")]


def test_several_heredocs_on_one_copy_line():
    tree = parse("FROM a\nCOPY <<A <<'B' /dest/\nfirst\nA\nsecond $x\nB\nUSER me\n")
    copy = tree.instructions[1]
    assert [(d.name, d.body, d.expand) for d in copy.heredocs] == [
        ("A", "first\n", True),
        ("B", "second $x\n", False),
    ]
    assert dump(tree).splitlines()[1:] == ['(copy "<<A" "<<\'B\'" "/dest/")', '(user "me")']
    assert (copy.end_line, tree.instructions[2].start_line) == (6, 7)


def test_file_descriptor_and_onbuild():
    assert only("FROM a\nRUN 3<<EOF cat /dev/fd/3\nx\nEOF\n").heredocs[0].fd == 3
    assert only("FROM a\nRUN <<EOF\nx\nEOF\n").heredocs[0].fd is None
    onbuild = only("FROM a\nONBUILD RUN <<X\ninside\nX\n")
    assert onbuild.inner.heredocs[0].body == "inside\n"
    assert onbuild.end_line == 4


def test_no_heredoc_outside_run_copy_add_or_in_json_or_quotes():
    tree = parse('FROM a\nUSER <<X\nX\nRUN ["sh", "<<EOF"]\nEOF\nRUN echo "<<EOF"\nEOF\n')
    assert dump(tree) == (
        '(from "a")\n(user "<<X")\n(x "")\n(run "sh" "<<EOF")\n(eof "")\n'
        '(run "echo \\"<<EOF\\"")\n(eof "")\n'
    )
    assert all(not i.heredocs for i in tree.instructions)


def test_heredoc_keyword_in_any_case_and_crlf_terminator():
    instr = only("FROM a\r\nrun <<EOF\r\nline\r\nEOF\r\n")
    assert instr.heredocs[0].body == "line\n"


def test_unterminated_heredoc_names_the_instruction_line():
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\n\nRUN <<EOF\nno end\n", path="df")
    assert (info.value.path, info.value.line) == ("df", 3)
    assert "unterminated heredoc" in str(info.value)


def test_second_unterminated_heredoc():
    with pytest.raises(DockerfileError, match="Dockerfile:2: unterminated heredoc"):
        parse("FROM a\nCOPY <<A <<B /d\na\nA\nb\n")

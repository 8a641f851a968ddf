"""BuildKit's own parser corpus: every positive case dumps byte for byte, every negative case
is rejected with file:line, and testfile-line has BuildKit's spans. Also through the CLI."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from pybuild.errors import DockerfileError
from pybuild.grammar import dump, parse

CORPUS = (
    pathlib.Path(__file__).resolve().parents[2].parent
    / "shared"
    / "conformance"
    / "buildkit-parser"
)
POSITIVE = sorted(p.name for p in (CORPUS / "positive").iterdir()) if CORPUS.is_dir() else []
NEGATIVE = sorted(p.name for p in (CORPUS / "negative").iterdir()) if CORPUS.is_dir() else []


def test_corpus_is_complete(buildkit_corpus):
    assert (len(POSITIVE), len(NEGATIVE)) == (33, 4)


@pytest.mark.parametrize("case", POSITIVE)
def test_positive_case_dumps_byte_for_byte(buildkit_corpus, case):
    folder = buildkit_corpus / "positive" / case
    tree = parse((folder / "Dockerfile").read_bytes(), str(folder / "Dockerfile"))
    assert dump(tree).encode("utf-8", "surrogateescape") == (folder / "result").read_bytes()


@pytest.mark.parametrize("case", NEGATIVE)
def test_negative_case_is_rejected_with_location(buildkit_corpus, case):
    path = buildkit_corpus / "negative" / case / "Dockerfile"
    with pytest.raises(DockerfileError) as info:
        parse(path.read_bytes(), str(path))
    assert info.value.path == str(path)
    assert isinstance(info.value.line, int) and info.value.line >= 1
    assert str(info.value).startswith(f"{path}:{info.value.line}: ")


def test_testfile_line_spans(buildkit_corpus):
    tree = parse((buildkit_corpus / "testfile-line" / "Dockerfile").read_bytes())
    spans = [(i.start_line, i.end_line) for i in tree.instructions]
    assert spans == [(5, 5), (11, 12), (17, 31)]
    assert [d.name for d in tree.directives] == ["escape"]
    assert tree.directives[0].line == 1


def _cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "pybuild.cli.build", *args], input=stdin, capture_output=True
    )


def test_cli_dump_matches_result(buildkit_corpus):
    folder = buildkit_corpus / "positive" / "json"
    r = _cli("parse", "--dump", str(folder / "Dockerfile"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == (folder / "result").read_bytes()


def test_cli_listing_shows_spans(buildkit_corpus):
    r = _cli("parse", str(buildkit_corpus / "testfile-line" / "Dockerfile"))
    assert r.returncode == 0
    spans = [line.split(b"\t")[0] for line in r.stdout.splitlines()]
    assert spans == [b"5", b"11-12", b"17-31"]


def test_cli_negative_case_is_an_error_line(buildkit_corpus):
    path = buildkit_corpus / "negative" / "env_no_value" / "Dockerfile"
    r = _cli("parse", "--dump", str(path))
    assert r.returncode != 0
    assert r.stderr.decode().startswith(f"error: {path}:3: ")
    assert b"Traceback" not in r.stderr

"""The parse cache: a rebuild of the same Dockerfile gets the same typed tree without the
parser; a damaged or foreign entry is ignored and rewritten."""

from __future__ import annotations

import json
import os

from pybuild.builder.convert import type_dockerfile
from pybuild.builder.parsecache import typed_dockerfile
from pybuild.grammar import parse

TEXT = (b"ARG V=1\nFROM busybox AS base\nONBUILD RUN echo hi\n"
        b"RUN --mount=type=cache,target=/c <<EOF\necho $V\nEOF\n"
        b"COPY --chmod=755 <<-'X' /bin/x\n\techo x\n\tX\nHEALTHCHECK --interval=5s CMD true\n"
        b"FROM base\nMAINTAINER me\n")


def _entries(root) -> list[str]:
    d = os.path.join(root, "buildcache", "dockerfiles")
    return [os.path.join(d, n) for n in os.listdir(d)]


def test_same_tree_from_the_cache(tmp_path):
    expected = type_dockerfile(parse(TEXT, path="Dockerfile"))
    first = typed_dockerfile(str(tmp_path), TEXT, "Dockerfile")
    assert first == expected and len(_entries(tmp_path)) == 1
    again = typed_dockerfile(str(tmp_path), TEXT, "Dockerfile")
    assert again == expected
    trigger = again.stages[0].commands[0]
    assert trigger.trigger == expected.stages[0].commands[0].trigger  # a syntax-tree node
    # another name in messages is another entry
    typed_dockerfile(str(tmp_path), TEXT, "Other.Dockerfile")
    assert len(_entries(tmp_path)) == 2


def test_damaged_or_foreign_entries_are_ignored(tmp_path):
    typed_dockerfile(str(tmp_path), TEXT, "Dockerfile")
    (entry,) = _entries(tmp_path)
    with open(entry, "w") as f:
        f.write("{not json")
    assert typed_dockerfile(str(tmp_path), TEXT, "Dockerfile") == type_dockerfile(parse(TEXT))
    with open(entry, "w") as f:
        json.dump({"@": "Popen", "f": {"args": "true"}}, f)  # only known dataclasses load
    assert typed_dockerfile(str(tmp_path), TEXT, "Dockerfile") == type_dockerfile(parse(TEXT))
    with open(entry) as f:
        assert '"@":"TypedDockerfile"' in f.read()  # rewritten

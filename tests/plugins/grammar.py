"""Fixtures of the grammar area: the BuildKit parser corpus and the real-world Dockerfiles."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def buildkit_corpus(shared_dir):
    return shared_dir / "conformance" / "buildkit-parser"


@pytest.fixture(scope="session")
def real_world_dockerfiles(shared_dir):
    files = sorted((shared_dir / "conformance" / "real-world").rglob("Dockerfile"))
    assert files, "no real-world Dockerfiles found"
    return files

"""Fixtures of the store area: a fresh store per test."""

from __future__ import annotations

import pytest

from pybuild.image.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "root"))
    yield s
    s.close()

"""Shared test set-up. Fixtures of each area live in tests/plugins/<area>.py and are all
loaded here, so areas do not edit one shared conftest."""

from __future__ import annotations

import os
import pathlib

import pytest

_PLUGINS = pathlib.Path(__file__).parent / "plugins"
pytest_plugins = sorted(
    f"tests.plugins.{p.stem}" for p in _PLUGINS.glob("*.py") if not p.stem.startswith("_")
)

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, overlayfs, mounts)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_dir() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: CI and developers keep ../shared beside the repo")
    return SHARED

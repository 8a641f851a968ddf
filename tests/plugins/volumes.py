"""Fixtures of the volumes area: a pyrun runner bound to one store root, and an image with
VOLUME entries (busybox's layers, a config that declares volumes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def pyrun_in(root: str, *args: str, input: str | bytes | None = None, text: bool = True,
             cwd: str | None = None) -> subprocess.CompletedProcess:
    """`pyrun ARGS` with PYBUILD_ROOT=root; stdin /dev/null unless `input` is given."""
    return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args],
                          env={**os.environ, "PYBUILD_ROOT": root}, capture_output=True,
                          text=text, input=input, timeout=120, cwd=cwd,
                          stdin=None if input is not None else subprocess.DEVNULL)


def tag_with_volumes(root: str, base: str, ref: str, volumes: list[str]) -> str:
    """A new image: `base`'s layers and config plus VOLUME entries; returns its id."""
    from pybuild.image.images import Images

    images = Images(root)
    try:
        config = json.loads(images.get(images.resolve(base)).config_bytes)
        config.setdefault("config", {})["Volumes"] = {v: {} for v in volumes}
        return images.put(json.dumps(config).encode(), tags=[ref])
    finally:
        images.close()


def container_ids(root: str) -> list[str]:
    base = os.path.join(root, "containers")
    if not os.path.isdir(base):
        return []
    return sorted(e for e in os.listdir(base) if len(e) == 64)


def volume_names(root: str) -> list[str]:
    base = os.path.join(root, "volumes")
    if not os.path.isdir(base):
        return []
    return sorted(e for e in os.listdir(base) if not e.startswith("."))


@pytest.fixture
def pyrun(image_store):
    """pyrun(*args) over a private store holding busybox."""
    return lambda *args, **kw: pyrun_in(image_store, *args, **kw)

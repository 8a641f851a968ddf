"""Fixtures of the image area: a store root holding the offline busybox base image."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class BusyboxImage:
    root: str  # store root (use as PYBUILD_ROOT); shared by the session: do not remove the image
    ref: str  # "busybox:latest"
    image_id: str  # sha256:...


def _have_busybox() -> bool:
    return any(os.path.isfile(p) for p in ("/bin/busybox", "/usr/bin/busybox")) or bool(shutil.which("busybox"))


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory) -> BusyboxImage:
    """`pyrun bootstrap busybox` into a session-wide store root."""
    if not _have_busybox():
        pytest.skip("busybox-static is not installed (make debs)")
    from pybuild.image.images import Images
    from pybuild.image.importer import bootstrap_busybox

    root = str(tmp_path_factory.mktemp("busybox-store"))
    images = Images(root)
    try:
        image_id = bootstrap_busybox(images, "busybox:latest")
    finally:
        images.close()
    return BusyboxImage(root=root, ref="busybox:latest", image_id=image_id)


@pytest.fixture
def image_store(tmp_path, busybox_image):
    """A private store root (tmp_path/store) that starts with the busybox image loaded."""
    root = tmp_path / "store"
    shutil.copytree(busybox_image.root, root, symlinks=True)
    return str(root)

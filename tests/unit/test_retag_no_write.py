"""A cached rebuild tags the image its tag already names: that must write nothing to meta.db
(no commit, so no fsync of the WAL and no checkpoint work when the process exits)."""

from __future__ import annotations

import json

import pytest

from pybuild.errors import ImageError
from pybuild.image.store import sha256_digest


def _config(comment: str) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "comment": comment,
                       "rootfs": {"type": "layers", "diff_ids": []}}).encode()


def test_retag_to_the_same_image_writes_nothing(store):
    img = store.add_image(_config("a"))
    ref = "docker.io/library/same:latest"
    assert store.set_tag(ref, img.id) is None
    changes = store.db.total_changes
    assert store.set_tag(ref, img.id) == img.id  # "what it pointed at before": the same
    assert store.db.total_changes == changes
    assert store.tag(ref) == img.id
    other = store.add_image(_config("b"))
    assert store.set_tag(ref, other.id) == img.id
    assert store.tag(ref) == other.id and store.db.total_changes > changes


def test_retag_still_refuses_an_unknown_image(store):
    with pytest.raises(ImageError, match="no such image"):
        store.set_tag("docker.io/library/none:latest", sha256_digest(b"none"))

"""IMAGE for `pyrun run`: a reference in the store -> its config and snapshot lower dirs."""

from __future__ import annotations

from pybuild.errors import ImageError


def open_image(root: str, ref: str) -> tuple[dict, list[str], str]:
    raise ImageError("the image store is not on this branch yet; use --rootfs DIR", ref=ref)

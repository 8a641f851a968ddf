"""ADD of http(s) URLs (not yet in this increment)."""

from __future__ import annotations

from pybuild.errors import BuildError


def url_item(url, request, scratch_dir):
    raise BuildError(f"ADD {url}: URL sources are not supported yet")

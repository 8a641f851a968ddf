"""ADD of an http(s) URL: the file is named after the URL's last path segment
(`__unnamed__` without one), mode 0600, owned by 0:0 (or --chown), mtime from Last-Modified,
as BuildKit's HTTP source. With --checksum the digest is the cache content and the download
waits until the step really runs (a cached build fetches nothing); without it the bytes are
fetched while preparing, since their sha256 is the cache content. httpx is imported here only."""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import os
import posixpath
import re
import stat
import tempfile
import time
import urllib.parse

from pybuild.builder.steps.copy_sources import Item, Node
from pybuild.errors import BuildError

__all__ = ["fetch_item", "url_item", "url_name"]

_CHECKSUM = re.compile(r"(sha256|sha384|sha512):([0-9a-f]+)\Z")
_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_TIMEOUT = 60.0


def url_name(url: str) -> str:
    base = posixpath.basename(urllib.parse.urlsplit(url).path)
    return base if base not in ("", ".", "/") else "__unnamed__"


def _check_format(checksum: str) -> tuple[str, str]:
    m = _CHECKSUM.match(checksum)
    if m is None or len(m.group(2)) != _HEX_LEN[m.group(1)]:
        raise BuildError(f"invalid checksum {checksum!r}: expected sha256:<64 hex digits>"
                         " (or sha384, sha512)")
    return m.group(1), m.group(2)


def url_item(url: str, request, scratch_dir: str) -> Item:
    name = url_name(url)
    if request.checksum is not None:
        _check_format(request.checksum)
        return Item(name, "url", url=url, digest=request.checksum, checksum=request.checksum)
    node, digest = _download(url, scratch_dir, None)
    return Item(name, "url", (node,), url=url, digest=digest)


def fetch_item(item: Item, scratch_dir: str) -> Item:
    """The URL item as a file item, downloading it now if preparing did not; an archive
    item when it was marked to be unpacked and is one."""
    nodes = item.nodes
    if not nodes:
        node, _ = _download(item.url or "", scratch_dir, item.checksum)
        nodes = (node,)
    kind = "file"
    if item.unpack:
        from pybuild.builder.steps.copy_archive import is_archive

        if nodes[0].src is not None and is_archive(nodes[0].src):
            kind = "archive"
    return dataclasses.replace(item, kind=kind, nodes=nodes)


def _download(url: str, scratch_dir: str, checksum: str | None) -> tuple[Node, str]:
    import httpx

    algo = _check_format(checksum)[0] if checksum else "sha256"
    os.makedirs(scratch_dir, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="add-", dir=scratch_dir)
    h = hashlib.new(algo)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out, httpx.Client(follow_redirects=True,
                                                      timeout=_TIMEOUT) as client:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise BuildError(f"ADD {url}: invalid response status"
                                     f" {response.status_code}")
                modified = response.headers.get("last-modified")
                for chunk in response.iter_bytes(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
    except httpx.HTTPError as e:
        os.unlink(path)
        raise BuildError(f"ADD {url}: {e}") from None
    except BaseException:
        os.unlink(path)
        raise
    digest = f"{algo}:{h.hexdigest()}"
    if checksum is not None and digest != checksum:
        os.unlink(path)
        raise BuildError(f"ADD {url}: checksum mismatch: expected {checksum}, got {digest}")
    mtime_ns = time.time_ns()
    if modified:
        try:
            mtime_ns = int(email.utils.parsedate_to_datetime(modified).timestamp()) * 10**9
        except (TypeError, ValueError):
            pass
    node = Node("", "file", stat.S_IFREG | 0o600, 0, 0, mtime_ns, size, src=path,
                display=url)
    return node, digest

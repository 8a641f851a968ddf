"""Blob uploads for RegistryClient: HEAD first, a cross-repository mount when another
repository of the registry has the blob, then one PUT (monolithic) or PATCH chunks and a
closing PUT; a failed attempt starts a fresh upload session."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from pybuild.errors import RegistryError
from pybuild.registry._httpx import httpx

# shared with client.py: what a retry is worth trying for
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_RETRY_EXC = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class UploadMixin:
    """Needs request(), fail(), _backoff(), _http, base_url, options, ref (RegistryClient)."""

    def blob_size(self, repo: str, digest: str) -> int | None:
        """HEAD: the blob's size if the repository has it, else None."""
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404))
        resp.close()
        if resp.status_code == 404:
            return None
        return int(resp.headers.get("Content-Length") or 0)

    def start_upload(
        self, repo: str, digest: str | None = None, mount_from: str | None = None
    ) -> str | None:
        """Open an upload session and return its location; with `mount_from`, first ask the
        registry to mount the blob from that repository: None means it was mounted."""
        params = {"mount": digest, "from": mount_from} if (digest and mount_from) else None
        resp = self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            params=params,
            ok=(201, 202),
            what=f"upload to {repo}",
        )
        resp.read()
        if resp.status_code == 201 and mount_from:
            return None
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"upload to {repo}: no Location in the answer", ref=self.ref)
        return urllib.parse.urljoin(self.base_url + "/", location)

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        opener: Callable[[], BinaryIO],
        location: str | None = None,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Upload a blob from a seekable file `opener()` gives: monolithic (one PUT) or, with
        `chunk_size`, PATCH by chunks then PUT. A failed attempt starts a fresh session."""
        for attempt in range(self.options.retries + 1):
            loc = location or self.start_upload(repo)
            location = None
            try:
                if chunk_size:
                    loc = self._patch_chunks(loc, size, opener, chunk_size, progress)
                    body: bytes | Callable[[], Iterable[bytes]] = b""
                    headers = {"Content-Length": "0"}
                else:
                    body = lambda: _file_chunks(opener, 0, size, progress)  # noqa: E731
                    headers = {
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(size),
                    }
                resp = self._send_once("PUT", _with_query(loc, digest=digest), headers, body)
            except (RegistryError, *_RETRY_EXC, httpx.ConnectError) as e:
                if attempt >= self.options.retries or (
                    isinstance(e, RegistryError) and e.status not in RETRY_STATUS
                ):
                    raise (
                        e
                        if isinstance(e, RegistryError)
                        else RegistryError(f"upload of {digest}: {e}", ref=self.ref)
                    ) from e
                self._backoff(attempt, f"upload of {digest}: {e}")
                continue
            if resp.status_code in (201, 204):
                got = resp.headers.get("Docker-Content-Digest")
                if got and got != digest:
                    raise RegistryError(f"registry stored {digest} as {got}", ref=self.ref)
                return
            if resp.status_code in RETRY_STATUS and attempt < self.options.retries:
                self._backoff(attempt, f"upload of {digest}: HTTP {resp.status_code}")
                continue
            self.fail(resp, f"upload of {digest}")

    def _send_once(self, method: str, url: str, headers: dict, body) -> httpx.Response:
        req = self._http.build_request(
            method, url, headers=headers, content=body() if callable(body) else body
        )
        resp = self._http.send(req)
        resp.read()
        return resp

    def _patch_chunks(self, loc: str, size: int, opener, chunk_size: int, progress) -> str:
        start = 0
        while start < size:
            end = min(size, start + chunk_size)
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end - 1}",
                "Content-Length": str(end - start),
            }
            resp = self._send_once(
                "PATCH",
                loc,
                headers,
                lambda s=start, e=end: _file_chunks(opener, s, e - s, progress),
            )
            if resp.status_code != 202:
                if resp.status_code in RETRY_STATUS:
                    raise RegistryError(
                        f"chunk {start}-{end - 1}: HTTP {resp.status_code}",
                        ref=self.ref,
                        status=resp.status_code,
                    )
                self.fail(resp, f"chunk {start}-{end - 1}")
            loc = urllib.parse.urljoin(self.base_url + "/", resp.headers.get("Location", loc))
            start = end
        return loc


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _file_chunks(
    opener: Callable[[], BinaryIO],
    start: int,
    length: int,
    progress: Callable[[int], None] | None,
    block: int = 1 << 20,
) -> Iterator[bytes]:
    with opener() as f:
        f.seek(start)
        left = length
        while left > 0:
            data = f.read(min(block, left))
            if not data:
                raise RegistryError(f"blob file ended {left} bytes early")
            left -= len(data)
            if progress:
                progress(len(data))
            yield data

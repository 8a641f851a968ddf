"""One registry session over the OCI distribution API (httpx): scheme and TLS choice,
retries with backoff, manifests with their digests checked, blobs streamed and verified
while read (a dropped download resumes with Range), uploads (HEAD first, cross-repository
mount, monolithic or chunked), tags and the catalog. The transport is a seam: tests wrap
or replace it."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator

from pybuild.errors import RegistryError
from pybuild.registry import credentials as creds_mod
from pybuild.registry._httpx import httpx
from pybuild.registry.auth import RegistryAuth, _error_text
from pybuild.registry.options import RegistryOptions
from pybuild.registry.uploads import _RETRY_EXC, RETRY_STATUS, UploadMixin

log = logging.getLogger("pybuild.registry")

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_DEFAULT = object()


def is_loopback(registry: str) -> bool:
    host = urllib.parse.urlsplit(f"//{registry}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hasher(digest: str, ref: str | None):
    algo, sep, hexd = digest.partition(":")
    if not sep or algo not in ("sha256", "sha512") or not hexd:
        raise RegistryError(f"unsupported digest {digest!r}", ref=ref)
    return hashlib.new(algo), hexd


def _cert_verify_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class _LazyTrustContext(ssl.SSLContext):
    """A verifying client context that loads the system CA bundle (25-60 ms here) on its
    first TLS connection: a session with a plain-http registry never pays for it, and a
    redirect from one to https storage is still verified."""

    _defaults_loaded = False
    _load_lock = threading.Lock()

    def _load_defaults(self) -> None:
        with self._load_lock:
            if not self._defaults_loaded:
                self.load_default_certs(ssl.Purpose.SERVER_AUTH)
                self._defaults_loaded = True

    def wrap_socket(self, *args, **kwargs):
        self._load_defaults()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args, **kwargs):
        self._load_defaults()
        return super().wrap_bio(*args, **kwargs)


def _speaks_tls(registry: str, timeout: float) -> bool:
    """Whether `host[:port]` completes a TLS handshake: the scheme probe for loopback and
    insecure registries. Nothing is verified here (no CA bundle to load); a TLS registry is
    then verified by the session's own first request."""
    import socket

    parts = urllib.parse.urlsplit(f"//{registry}")
    try:
        port = parts.port or 443
    except ValueError:
        return True  # not a port: let the https request report it
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout) as sock, \
                ctx.wrap_socket(sock, server_hostname=parts.hostname):
            return True
    except (OSError, ssl.SSLError):
        return False


class RegistryClient(UploadMixin):
    """A session with one registry (`host[:port]`). Thread-safe: transfers share it."""

    def __init__(
        self,
        registry: str,
        options: RegistryOptions | None = None,
        credentials=_DEFAULT,
        ref: str | None = None,
    ):
        self.registry = registry
        self.options = options or RegistryOptions()
        self.ref = ref or registry
        if credentials is _DEFAULT:
            credentials = creds_mod.lookup(registry)
        self.auth = RegistryAuth(credentials, ref=self.ref)
        self._base: str | None = None
        self._lock = threading.Lock()
        self.tls_context = self._ssl_context()
        self._http = httpx.Client(
            transport=self.options.transport,
            verify=self.tls_context,
            auth=self.auth,
            timeout=httpx.Timeout(self.options.timeout, connect=min(self.options.timeout, 15.0)),
            follow_redirects=True,
            headers={"User-Agent": "pybuild/0.1"},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    # -- lifecycle

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ssl_context(self) -> ssl.SSLContext:
        # The system CAs (and $SSL_CERT_FILE / $SSL_CERT_DIR, which OpenSSL honours), loaded
        # on the first TLS connection only, plus the CA the user named for this registry.
        ctx = _LazyTrustContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.options.ca_cert:
            try:
                ctx.load_verify_locations(cafile=self.options.ca_cert)
            except (OSError, ssl.SSLError) as e:
                raise RegistryError(
                    f"cannot load CA certificate {self.options.ca_cert}: {e}"
                ) from e
        if not self.options.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    # -- scheme: https, except plain http for loopback and insecure registries that
    #    do not speak TLS (as Docker does for 127.0.0.0/8 and --insecure-registry)

    @property
    def base_url(self) -> str:
        with self._lock:
            if self._base is None:
                self._base = self._resolve_base()
            return self._base

    def _resolve_base(self) -> str:
        https = f"https://{self.registry}"
        if not (is_loopback(self.registry) or self.registry in self.options.insecure_registries):
            return https
        if self.options.transport is None and not _speaks_tls(
                self.registry, min(self.options.timeout, 15.0)):
            return f"http://{self.registry}"
        try:
            self._http.get(f"{https}/v2/").close()
            return https
        except httpx.TransportError as e:
            bad_cert = _cert_verify_failure(e)
            if bad_cert is not None:
                raise RegistryError(
                    f"TLS certificate of {self.registry} not trusted ({bad_cert.verify_message}); "
                    "give its CA with --ca-cert, or --tls-verify=false",
                    ref=self.ref,
                ) from e
            return f"http://{self.registry}"

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + "/" + path.lstrip("/")

    # -- requests with retries

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict | None = None,
        content: bytes | Callable[[], Iterable[bytes]] | None = None,
        params: dict | None = None,
        ok: tuple[int, ...] = (200,),
        stream: bool = False,
        what: str | None = None,
    ) -> httpx.Response:
        """Send with retries on 5xx, 429 and network errors (exponential backoff).
        `content` is bytes or a callable giving a fresh body iterator per attempt."""
        url = self.url(path)
        attempt = 0
        while True:
            body = content() if callable(content) else content
            try:
                req = self._http.build_request(
                    method, url, headers=headers, content=body, params=params
                )
                resp = self._http.send(req, stream=stream)
            except httpx.TransportError as e:
                if _cert_verify_failure(e) is not None:
                    raise RegistryError(f"TLS certificate not trusted: {e}", ref=self.ref) from e
                # a refused connection or an unknown host is rarely cured by waiting:
                # one more try (a registry restarting), not the whole back-off series
                limit = 1 if isinstance(e, httpx.ConnectError) else self.options.retries
                if attempt >= limit or not isinstance(e, _RETRY_EXC):
                    raise RegistryError(
                        f"{what or method + ' ' + path}: {type(e).__name__}: {e}", ref=self.ref
                    ) from e
                self._backoff(attempt, f"{method} {path}: {e}")
                attempt += 1
                continue
            if resp.status_code in ok:
                return resp
            if resp.status_code in RETRY_STATUS and attempt < self.options.retries:
                resp.close()
                self._backoff(attempt, f"{method} {path}: HTTP {resp.status_code}")
                attempt += 1
                continue
            self.fail(resp, what or f"{method} {path}")

    def _backoff(self, attempt: int, why: str) -> None:
        delay = self.options.backoff * (2**attempt)
        log.info("retrying in %.1fs: %s", delay, why)
        time.sleep(delay)

    def fail(self, resp: httpx.Response, what: str):
        resp.read()
        detail = _error_text(resp)
        resp.close()
        status = resp.status_code
        if status == 401:
            hint = "" if self.auth.credentials else f" (pyrun login {self.registry})"
            raise RegistryError(
                f"{what}: unauthorized: {detail}{hint}", ref=self.ref, status=status
            )
        raise RegistryError(f"{what}: {detail}", ref=self.ref, status=status)

    # -- API

    def ping(self) -> httpx.Response:
        resp = self.request("GET", "/v2/", what="registry check")
        resp.read()
        return resp

    def get_manifest(
        self, repo: str, reference: str, accept: Iterable[str] = MANIFEST_TYPES
    ) -> tuple[bytes, str, str]:
        """(content, media type, digest); the digest is checked against what was asked for
        (a digest reference) and against Docker-Content-Digest."""
        resp = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            headers={"Accept": ", ".join(accept)},
            what=f"manifest {repo}:{reference}",
        )
        content = resp.content
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = self._check_digest(
            content,
            reference,
            resp.headers.get("Docker-Content-Digest"),
            f"manifest {repo}:{reference}",
        )
        return content, media_type, digest

    def head_manifest(self, repo: str, reference: str) -> str | None:
        """The digest of a manifest, or None if the registry does not have it."""
        resp = self.request(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            ok=(200, 404),
        )
        resp.close()
        if resp.status_code == 404:
            return None
        return resp.headers.get("Docker-Content-Digest")

    def put_manifest(self, repo: str, reference: str, content: bytes, media_type: str) -> str:
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            content=content,
            headers={"Content-Type": media_type},
            ok=(200, 201, 202),
            what=f"manifest {repo}:{reference}",
        )
        resp.read()
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(
                f"registry stored manifest as {got}, expected {digest}", ref=self.ref
            )
        return digest

    def _check_digest(self, content: bytes, reference: str, header: str | None, what: str) -> str:
        if ":" in reference:  # pinned by digest: the bytes must be exactly those
            h, hexd = _hasher(reference, self.ref)
            h.update(content)
            if h.hexdigest() != hexd:
                raise RegistryError(f"{what}: content does not match its digest", ref=self.ref)
            if header and header != reference:
                raise RegistryError(
                    f"{what}: Docker-Content-Digest {header} does not match", ref=self.ref
                )
            return reference
        if header:
            h, hexd = _hasher(header, self.ref)
            h.update(content)
            if h.hexdigest() != hexd:
                raise RegistryError(
                    f"{what}: content does not match Docker-Content-Digest {header}", ref=self.ref
                )
            return header
        return "sha256:" + hashlib.sha256(content).hexdigest()

    def tags(self, repo: str) -> list[str]:
        return list(self._paged(f"/v2/{repo}/tags/list", "tags", f"tags of {repo}"))

    def catalog(self) -> list[str]:
        return list(self._paged("/v2/_catalog", "repositories", "catalog"))

    def _paged(self, path: str, key: str, what: str) -> Iterator[str]:
        url: str | None = path
        params: dict | None = {"n": "1000"}
        while url:
            resp = self.request("GET", url, params=params, what=what)
            yield from (resp.json().get(key) or [])
            link = resp.headers.get("Link", "")
            url, params = None, None
            if 'rel="next"' in link:
                url = link.split(";")[0].strip().strip("<>")

    # -- blobs: download

    def blob_chunks(
        self,
        repo: str,
        digest: str,
        size: int | None = None,
        progress: Callable[[int], None] | None = None,
        verify: bool = True,
    ) -> Iterator[bytes]:
        """The blob's bytes as they arrive. A dropped connection resumes with a Range
        request; the size and digest are checked at the end, and a mismatch raises before
        the iterator finishes, so a consumer that reads to the end never keeps bad bytes.
        verify=False leaves the digest to a consumer that hashes anyway (the store's blob
        writer): one sha256 pass fewer."""
        h, hexd = _hasher(digest, self.ref)
        if not verify:
            h = None
        offset, drops = 0, 0
        path = f"/v2/{repo}/blobs/{digest}"
        while True:
            headers = {"Range": f"bytes={offset}-"} if offset else None
            resp = self.request(
                "GET", path, headers=headers, ok=(200, 206), stream=True, what=f"blob {digest}"
            )
            skip = offset if (offset and resp.status_code == 200) else 0  # Range ignored
            try:
                for chunk in resp.iter_raw():
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk, skip = chunk[skip:], 0
                    if h is not None:
                        h.update(chunk)
                    offset += len(chunk)
                    if size is not None and offset > size:
                        raise RegistryError(
                            f"blob {digest}: more than its {size} bytes", ref=self.ref
                        )
                    if progress:
                        progress(len(chunk))
                    yield chunk
                break
            except _RETRY_EXC as e:
                drops += 1
                if drops > self.options.retries:
                    raise RegistryError(
                        f"blob {digest}: download failed at byte {offset}: {e}", ref=self.ref
                    ) from e
                self._backoff(drops - 1, f"blob {digest} dropped at byte {offset}: {e}")
            finally:
                resp.close()
        if size is not None and offset != size:
            raise RegistryError(f"blob {digest}: got {offset} bytes, expected {size}", ref=self.ref)
        if h is not None and h.hexdigest() != hexd:
            raise RegistryError(
                f"blob {digest}: content does not match its digest (got sha256:{h.hexdigest()})",
                ref=self.ref,
            )

    def digest_mismatch(self, digest: str, got: str) -> RegistryError:
        return RegistryError(
            f"blob {digest}: content does not match its digest (got {got})", ref=self.ref
        )

    def get_blob(self, repo: str, digest: str, size: int | None = None) -> bytes:
        return b"".join(self.blob_chunks(repo, digest, size))

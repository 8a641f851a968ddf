"""Registry authentication as one httpx.Auth flow: anonymous, Basic, and Bearer tokens
fetched from the realm named by a `WWW-Authenticate` challenge (service, scope), cached
per scope, attached before a request once the challenge is known, refreshed on expiry
or when the registry refuses a cached token."""

from __future__ import annotations

import base64
import re
import threading
import time
import urllib.parse
from collections.abc import Generator

from pybuild.errors import RegistryError
from pybuild.registry._httpx import httpx
from pybuild.registry.credentials import Credentials

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_REPO_PATH = re.compile(r"^/v2/(.+?)/(manifests|blobs|tags)/")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="..."` -> ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _PARAM.finditer(rest)
    }
    return scheme.lower(), {k: v.replace('\\"', '"') for k, v in params.items()}


def scopes_for(request: httpx.Request) -> tuple[str, ...]:
    """The token scopes a request needs, derived from its path and method."""
    path = request.url.path
    if path.startswith("/v2/_catalog"):
        return ("registry:catalog:*",)
    m = _REPO_PATH.match(path)
    if not m:
        return ()
    write = request.method not in ("GET", "HEAD")
    scopes = [f"repository:{m.group(1)}:{'pull,push' if write else 'pull'}"]
    source = request.url.params.get("from")
    if source and source != m.group(1):  # cross-repository mount reads the other repository
        scopes.append(f"repository:{source}:pull")
    return tuple(scopes)


class _Token:
    __slots__ = ("value", "expires")

    def __init__(self, value: str, expires: float):
        self.value, self.expires = value, expires


class RegistryAuth(httpx.Auth):
    """One per registry session (thread-safe: transfers run in threads)."""

    requires_request_body = False
    requires_response_body = False

    def __init__(self, credentials: Credentials | None = None, ref: str | None = None):
        self.credentials = credentials
        self.ref = ref  # for error messages
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()
        self.token_fetches = 0  # how many times the realm was asked (tests check caching)

    # -- the flow

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        scopes = self._scopes(request)
        used_cached = False
        if self._challenge is not None:
            used_cached = yield from self._authorize(request, scopes, refresh=False)
        response = yield request
        if response.status_code != 401:
            return
        header = response.headers.get("WWW-Authenticate", "")
        if not header:
            return
        scheme, params = parse_challenge(header)
        if scheme not in ("basic", "bearer"):
            return
        first_challenge = self._challenge is None
        with self._lock:
            self._challenge = (scheme, params)
        if params.get("scope"):
            scopes = tuple(dict.fromkeys(scopes + tuple(params["scope"].split(" "))))
        if scheme == "basic" and (self.credentials is None or not first_challenge):
            return  # no credentials, or the ones we sent were refused: the caller reports 401
        if scheme == "bearer" and not (first_challenge or used_cached or params.get("scope")):
            return
        yield from self._authorize(request, scopes, refresh=True)
        response = yield request

    def _scopes(self, request: httpx.Request) -> tuple[str, ...]:
        return scopes_for(request)

    def _authorize(self, request: httpx.Request, scopes: tuple[str, ...], refresh: bool):
        """Put an Authorization header on `request`; returns True if it came from the cache."""
        scheme, params = self._challenge  # type: ignore[misc]
        if scheme == "basic":
            if self.credentials is not None:
                raw = f"{self.credentials.username}:{self.credentials.password}".encode()
                request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            return False
        key = (params.get("realm", ""), params.get("service", "")) + scopes
        with self._lock:
            token = self._tokens.get(key)
        cached = token is not None and not refresh and token.expires > time.time() + 5
        if not cached:
            token = yield from self._fetch_token(params, scopes)
            with self._lock:
                self._tokens[key] = token
        request.headers["Authorization"] = f"Bearer {token.value}"
        return cached

    def _fetch_token(self, params: dict[str, str], scopes: tuple[str, ...]):
        realm = params.get("realm")
        if not realm:
            raise RegistryError("Bearer challenge without a realm", ref=self.ref, status=401)
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https"):
            raise RegistryError(f"token realm {realm!r} is not an http(s) URL", ref=self.ref)
        creds = self.credentials
        if creds is not None and creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": "pybuild",
                "access_type": "offline",
            }
            if params.get("service"):
                form["service"] = params["service"]
            if scopes:
                form["scope"] = " ".join(scopes)
            token_request = httpx.Request("POST", realm, data=form)
        else:
            query = [("service", params["service"])] if params.get("service") else []
            query += [("scope", s) for s in scopes]
            token_request = httpx.Request("GET", httpx.URL(realm, params=query))
            if creds is not None and creds.username:
                raw = f"{creds.username}:{creds.password}".encode()
                token_request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        self.token_fetches += 1
        response = yield token_request
        response.read()
        if response.status_code != 200:
            detail = _error_text(response)
            what = (
                "authentication failed"
                if response.status_code in (401, 403)
                else "token request failed"
            )
            raise RegistryError(
                f"{what} at {realm}: {detail}", ref=self.ref, status=response.status_code
            )
        try:
            data = response.json()
        except ValueError as e:
            raise RegistryError(
                f"token server {realm} answered with invalid JSON", ref=self.ref
            ) from e
        value = data.get("token") or data.get("access_token")
        if not value or not isinstance(value, str):
            raise RegistryError(f"token server {realm} answered without a token", ref=self.ref)
        lifetime = data.get("expires_in")
        lifetime = lifetime if isinstance(lifetime, int) and lifetime > 0 else 60
        return _Token(value, time.time() + lifetime)


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        errors = data.get("errors") or []
        if errors:
            return "; ".join(
                f"{e.get('code', '').lower()}: {e.get('message', '')}".strip(": ") for e in errors
            )
        if data.get("details") or data.get("message"):
            return str(data.get("details") or data.get("message"))
    except ValueError:
        pass
    text = response.text.strip()
    return text[:200] if text else response.reason_phrase

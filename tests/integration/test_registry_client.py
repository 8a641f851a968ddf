"""The registry client against real docker-registry servers on 127.0.0.1: the four modes,
uploads and downloads, digests, and faults injected by a proxy in front of the registry."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest

from pybuild.errors import RegistryError
from pybuild.registry.client import RegistryClient
from pybuild.registry.credentials import Credentials
from pybuild.registry.options import RegistryOptions
from tests.plugins.registry_faults import Fault

FAST = RegistryOptions(backoff=0.01)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(client: RegistryClient, repo: str, data: bytes, **kw) -> str:
    d = digest_of(data)
    client.upload_blob(repo, d, len(data), lambda: io.BytesIO(data), **kw)
    return d


def push_image(client: RegistryClient, repo: str, tag: str, layer: bytes) -> tuple[str, bytes]:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    cd, ld = push_blob(client, repo, config), push_blob(client, repo, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cd,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": ld,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return client.put_manifest(
        repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json"
    ), manifest


def test_plain_roundtrip(registry, docker_config):
    layer = os.urandom(300_000)
    with RegistryClient(registry.host, FAST) as c:
        assert c.base_url == f"http://{registry.host}"
        digest, manifest = push_image(c, "team/app", "1", layer)
        content, media_type, got = c.get_manifest("team/app", "1")
        assert (content, got) == (manifest, digest)
        assert media_type == "application/vnd.oci.image.manifest.v1+json"
        assert c.get_manifest("team/app", digest)[0] == manifest
        assert c.head_manifest("team/app", "1") == digest
        assert c.head_manifest("team/app", "nope") is None
        assert c.get_blob("team/app", digest_of(layer), len(layer)) == layer
        assert c.blob_size("team/app", digest_of(layer)) == len(layer)
        assert c.blob_size("team/app", digest_of(b"absent")) is None
        assert c.tags("team/app") == ["1"]
        assert "team/app" in c.catalog()


def test_chunked_upload(registry, docker_config):
    data = os.urandom(250_000)
    with RegistryClient(registry.host, FAST) as c:
        d = push_blob(c, "team/chunks", data, chunk_size=64 * 1024)
        assert c.get_blob("team/chunks", d) == data


def test_cross_repository_mount(registry, docker_config):
    data = os.urandom(10_000)
    with RegistryClient(registry.host, FAST) as c:
        d = push_blob(c, "team/one", data)
        assert c.start_upload("team/two", d, mount_from="team/one") is None  # mounted
        assert c.blob_size("team/two", d) == len(data)
        loc = c.start_upload("team/three", digest_of(b"other"), mount_from="team/one")
        assert loc and loc.startswith("http://")  # not there: an ordinary upload session


def test_wrong_digest_upload_is_refused(registry, docker_config):
    with RegistryClient(registry.host, FAST) as c, pytest.raises(RegistryError) as e:
        c.upload_blob("team/bad", digest_of(b"x"), 1, lambda: io.BytesIO(b"y"))
    assert e.value.status == 400


def test_manifest_unknown_is_clear(registry, docker_config):
    with RegistryClient(registry.host, FAST) as c, pytest.raises(RegistryError) as e:
        c.get_manifest("team/none", "latest")
    assert e.value.status == 404 and "unknown" in str(e.value)


def test_basic_auth(registry_basic, docker_config):
    with RegistryClient(registry_basic.host, FAST) as c, pytest.raises(RegistryError) as e:
        c.catalog()
    assert e.value.status == 401 and "pyrun login" in str(e.value)
    bad = Credentials(registry_basic.user, "wrong")
    with (
        RegistryClient(registry_basic.host, FAST, credentials=bad) as c,
        pytest.raises(RegistryError) as e,
    ):
        c.catalog()
    assert e.value.status == 401
    good = Credentials(registry_basic.user, registry_basic.password)
    with RegistryClient(registry_basic.host, FAST, credentials=good) as c:
        d = push_blob(c, "team/auth", b"hello")
        assert c.get_blob("team/auth", d) == b"hello"


def test_tls_needs_the_ca(registry_tls, docker_config, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with RegistryClient(registry_tls.host, FAST) as c, pytest.raises(RegistryError) as e:
        c.ping()
    assert "--ca-cert" in str(e.value)
    with RegistryClient(registry_tls.host, RegistryOptions(ca_cert=str(registry_tls.ca_cert))) as c:
        d = push_blob(c, "team/tls", b"secure")
        assert c.base_url.startswith("https://")
        assert c.get_blob("team/tls", d) == b"secure"
    with RegistryClient(registry_tls.host, RegistryOptions(tls_verify=False)) as c:
        assert c.get_blob("team/tls", d) == b"secure"
    monkeypatch.setenv("SSL_CERT_FILE", str(registry_tls.ca_cert))
    with RegistryClient(registry_tls.host, FAST) as c:
        assert c.get_blob("team/tls", d) == b"secure"



def test_plain_http_session_loads_no_ca_bundle(registry, registry_tls, docker_config,
                                               monkeypatch):
    """The system CA bundle is read on the first TLS connection only: a plain-http loopback
    registry never pays for it; a TLS one is still verified against it."""
    with RegistryClient(registry.host, FAST) as c:
        d = push_blob(c, "team/lazy", b"plain")
        assert c.get_blob("team/lazy", d) == b"plain"
        assert c.base_url.startswith("http://")
        assert c.tls_context.cert_store_stats()["x509_ca"] == 0
    monkeypatch.setenv("SSL_CERT_FILE", str(registry_tls.ca_cert))
    with RegistryClient(registry_tls.host, FAST) as c:
        c.ping()
        assert c.base_url.startswith("https://")
        assert c.tls_context.cert_store_stats()["x509_ca"] >= 1
    monkeypatch.delenv("SSL_CERT_FILE")
    with RegistryClient(registry_tls.host, FAST) as c, pytest.raises(RegistryError) as e:
        c.ping()  # the probe's own handshake verifies nothing: the session's request does
    assert "not trusted" in str(e.value)

def test_token_auth_caches_tokens_per_scope(registry_token, docker_config):
    creds = Credentials(registry_token.user, registry_token.password)
    ts = registry_token.token_server
    with RegistryClient(registry_token.host, FAST, credentials=creds) as c:
        digest, _ = push_image(c, "team/tok", "1", b"layer-bytes")
        for _ in range(3):
            c.get_manifest("team/tok", "1")
        fetches = c.auth.token_fetches
        assert fetches <= 4  # one per scope (+ the first challenge), not one per request
        assert c.get_manifest("team/tok", digest)[2] == digest
        assert c.auth.token_fetches == fetches
        assert "team/tok" in c.catalog()
    scopes = {s for r in ts.requests for s in r["scopes"]}
    assert {
        "repository:team/tok:pull,push",
        "repository:team/tok:pull",
        "registry:catalog:*",
    } <= scopes


def test_token_auth_failures_are_clear(registry_token, docker_config):
    with RegistryClient(registry_token.host, FAST) as c, pytest.raises(RegistryError) as e:
        c.get_manifest("team/tok", "1")  # anonymous: token without access
    assert e.value.status == 401
    bad = Credentials(registry_token.user, "wrong")
    with (
        RegistryClient(registry_token.host, FAST, credentials=bad) as c,
        pytest.raises(RegistryError) as e,
    ):
        c.get_manifest("team/tok", "1")
    assert e.value.status == 401 and "authentication failed" in str(e.value)
    registry_token.token_server.bad_tokens = True
    good = Credentials(registry_token.user, registry_token.password)
    with (
        RegistryClient(registry_token.host, FAST, credentials=good) as c,
        pytest.raises(RegistryError) as e,
    ):
        c.get_manifest("team/tok", "1")
    assert e.value.status == 401 and "unauthorized" in str(e.value)


# ---------------------------------------------------------------- faults through the proxy


@pytest.fixture
def stored(registry, docker_config):
    data = os.urandom(1_500_000)
    with RegistryClient(registry.host, FAST) as c:
        d = push_blob(c, "team/f", data)
    return d, data


def test_500_twice_is_retried(fault_proxy, stored):
    d, data = stored
    fault_proxy.add(Fault("status", path=f"/blobs/{d}", method="GET", times=2, status=500))
    with RegistryClient(fault_proxy.host, FAST) as c:
        assert c.get_blob("team/f", d) == data
    statuses = [s for m, p, s in fault_proxy.log if d in p]
    assert statuses == [500, 500, 200]


def test_500_forever_gives_up(fault_proxy, stored):
    d, _ = stored
    fault_proxy.add(Fault("status", path=f"/blobs/{d}", times=100, status=503))
    with RegistryClient(fault_proxy.host, RegistryOptions(backoff=0.01, retries=2)) as c:
        with pytest.raises(RegistryError) as e:
            c.get_blob("team/f", d)
    assert e.value.status == 503


def test_dropped_download_resumes_with_range(fault_proxy, stored):
    d, data = stored
    fault_proxy.add(Fault("drop", path=f"/blobs/{d}", method="GET", offset=700_000))
    with RegistryClient(fault_proxy.host, FAST) as c:
        assert c.get_blob("team/f", d, len(data)) == data
    assert [s for m, p, s in fault_proxy.log if d in p] == [200, 206]


def test_corrupt_byte_is_rejected(fault_proxy, stored):
    d, data = stored
    fault_proxy.add(Fault("corrupt", path=f"/blobs/{d}", method="GET", offset=12345))
    got = bytearray()
    with RegistryClient(fault_proxy.host, FAST) as c, pytest.raises(RegistryError) as e:
        for chunk in c.blob_chunks("team/f", d, len(data)):
            got += chunk
    assert "does not match its digest" in str(e.value)
    assert len(got) == len(data)  # every byte arrived; the check at the end refused them


def test_corrupt_manifest_is_rejected(fault_proxy, registry, docker_config):
    with RegistryClient(registry.host, FAST) as c:
        digest, _ = push_image(c, "team/m", "1", b"abc")
    fault_proxy.add(Fault("corrupt", path="/manifests/", method="GET", offset=20, times=2))
    with RegistryClient(fault_proxy.host, FAST) as c:
        with pytest.raises(RegistryError, match="does not match"):
            c.get_manifest("team/m", digest)
        with pytest.raises(RegistryError, match="Docker-Content-Digest"):
            c.get_manifest("team/m", "1")


def test_upload_retried_after_500(fault_proxy, registry, docker_config):
    data = os.urandom(100_000)
    fault_proxy.add(Fault("status", path="/blobs/uploads/", method="PUT", times=2, status=500))
    with RegistryClient(fault_proxy.host, FAST) as c:
        d = push_blob(c, "team/up", data)
        assert c.get_blob("team/up", d) == data


def test_bad_token_401_is_clear(fault_proxy, stored):
    d, _ = stored
    fault_proxy.add(Fault("status", path=f"/blobs/{d}", status=401, times=5))
    with RegistryClient(fault_proxy.host, FAST) as c, pytest.raises(RegistryError) as e:
        c.get_blob("team/f", d)
    assert e.value.status == 401


def test_transport_seam(registry, docker_config):
    import httpx

    seen = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request):
            seen.append((request.method, request.url.path))
            return super().handle_request(request)

    with RegistryClient(registry.host, RegistryOptions(transport=Recording())) as c:
        assert c.catalog() == []
    assert ("GET", "/v2/_catalog") in seen


def test_identity_token_from_config(registry_token, docker_config):
    ts = registry_token.token_server
    ts.refresh_tokens["refresh-abc"] = registry_token.user
    (docker_config / "config.json").write_text(json.dumps(
        {"auths": {registry_token.host: {"identitytoken": "refresh-abc"}}}))
    with RegistryClient(registry_token.host, FAST) as c:  # credentials from config.json
        push_image(c, "team/oauth", "1", b"via refresh token")
        assert c.tags("team/oauth") == ["1"]
    assert ts.requests and all(r["user"] == registry_token.user for r in ts.requests)
    (docker_config / "config.json").write_text(json.dumps(
        {"auths": {registry_token.host: {"identitytoken": "revoked"}}}))
    with RegistryClient(registry_token.host, FAST) as c, pytest.raises(RegistryError) as e:
        c.tags("team/oauth")
    assert e.value.status == 401 and "authentication failed" in str(e.value)

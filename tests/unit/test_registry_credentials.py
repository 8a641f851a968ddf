"""Docker config.json credentials, credential helpers, and the auth flow's parsing."""

from __future__ import annotations

import base64
import json
import os
import stat

import httpx
import pytest

from pybuild.errors import RegistryError
from pybuild.registry import credentials as c
from pybuild.registry.auth import parse_challenge, scopes_for


def write_config(d, data):
    (d / "config.json").write_text(json.dumps(data))


def test_auths_base64(docker_config):
    auth = base64.b64encode(b"bob:pa:ss").decode()
    write_config(docker_config, {"auths": {"https://127.0.0.1:5000/v2/": {"auth": auth}}})
    got = c.lookup("127.0.0.1:5000")
    assert (got.username, got.password) == ("bob", "pa:ss")
    assert c.lookup("127.0.0.1:5001") is None
    assert "pa:ss" not in repr(got)


def test_docker_hub_aliases(docker_config):
    auth = base64.b64encode(b"hub:pw").decode()
    write_config(docker_config, {"auths": {c.DOCKER_HUB_KEY: {"auth": auth}}})
    assert c.lookup("docker.io").username == "hub"
    assert c.lookup("registry-1.docker.io").username == "hub"


def test_identity_token(docker_config):
    write_config(docker_config, {"auths": {"r.example": {"identitytoken": "refresh-me"}}})
    assert c.lookup("r.example").identity_token == "refresh-me"


@pytest.mark.parametrize("bad", ["!!!", base64.b64encode(b"no-colon").decode()])
def test_bad_auth_entry_is_clear(docker_config, bad):
    write_config(docker_config, {"auths": {"r.example": {"auth": bad}}})
    with pytest.raises(RegistryError, match="auths\\[r.example\\]"):
        c.lookup("r.example")


def test_invalid_json_names_file_and_line(docker_config):
    (docker_config / "config.json").write_text('{\n  "auths": ,\n}')
    with pytest.raises(RegistryError, match="config.json:2: invalid JSON"):
        c.lookup("r.example")


def test_store_writes_0600_and_keeps_other_keys(docker_config):
    write_config(docker_config, {"psFormat": "table", "auths": {"other.example": {"auth": "eDp5"}}})
    c.store("127.0.0.1:5000", c.Credentials("u", "p"))
    path = docker_config / "config.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["psFormat"] == "table"
    assert data["auths"]["127.0.0.1:5000"] == {"auth": base64.b64encode(b"u:p").decode()}
    assert "other.example" in data["auths"]
    assert not [p for p in docker_config.iterdir() if p.name.startswith(".config.json.")]
    assert c.erase("127.0.0.1:5000") is True
    assert c.erase("127.0.0.1:5000") is False
    assert "127.0.0.1:5000" not in json.loads(path.read_text())["auths"]


HELPER = """#!/bin/sh
store="$(dirname "$0")/store"
case "$1" in
  get) read -r url; if [ -f "$store" ]; then cat "$store"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) cat > "$store" ;;
  erase) rm -f "$store" ;;
esac
"""


@pytest.fixture
def helper_path(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "docker-credential-pbtest"
    exe.write_text(HELPER)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return bindir


@pytest.mark.parametrize("key", ["credsStore", "credHelpers"])
def test_credential_helpers(docker_config, helper_path, key):
    cfg = {"credsStore": "pbtest"} if key == "credsStore" else {"credHelpers": {"reg.example": "pbtest"}}
    write_config(docker_config, cfg)
    assert c.lookup("reg.example") is None
    assert c.store("reg.example", c.Credentials("hu", "hp")) == "docker-credential-pbtest"
    stored = json.loads((helper_path / "store").read_text())
    assert stored == {"ServerURL": "reg.example", "Username": "hu", "Secret": "hp"}
    got = c.lookup("reg.example")
    assert (got.username, got.password) == ("hu", "hp")
    assert "auths" not in json.loads((docker_config / "config.json").read_text())
    assert c.erase("reg.example")
    assert c.lookup("reg.example") is None


def test_missing_helper_is_clear(docker_config):
    write_config(docker_config, {"credsStore": "no-such-helper-xyz"})
    with pytest.raises(RegistryError, match="docker-credential-no-such-helper-xyz not found"):
        c.lookup("reg.example")


def test_parse_challenge():
    scheme, p = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push",error="insufficient_scope"')
    assert scheme == "bearer"
    assert p == {"realm": "https://auth.example/token", "service": "registry.example",
                 "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}
    assert parse_challenge('Basic realm="basic-realm"') == ("basic", {"realm": "basic-realm"})


@pytest.mark.parametrize("method,url,want", [
    ("GET", "http://r/v2/", ()),
    ("GET", "http://r/v2/_catalog?n=10", ("registry:catalog:*",)),
    ("HEAD", "http://r/v2/team/app/blobs/sha256:aa", ("repository:team/app:pull",)),
    ("PUT", "http://r/v2/a/b/c/manifests/1", ("repository:a/b/c:pull,push",)),
    ("POST", "http://r/v2/x/blobs/uploads/?mount=sha256:aa&from=y/z",
     ("repository:x:pull,push", "repository:y/z:pull")),
])
def test_scopes_for(method, url, want):
    assert scopes_for(httpx.Request(method, url)) == want

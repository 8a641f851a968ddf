"""pyrun login / logout / search / manifest inspect against real registries on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys

from pybuild.registry.client import RegistryClient
from pybuild.registry.credentials import Credentials
from tests.integration.test_registry_client import FAST, push_image


def pyrun(*args, input=None):
    return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args], input=input,
                          capture_output=True, text=True, timeout=120)


def test_login_basic_then_use_stored_credentials(registry_basic, docker_config):
    r = pyrun("login", "-u", registry_basic.user, "--password-stdin", registry_basic.host,
              input=registry_basic.password + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Login Succeeded"
    path = docker_config / "config.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    entry = json.loads(path.read_text())["auths"][registry_basic.host]
    assert base64.b64decode(entry["auth"]).decode() == f"{registry_basic.user}:{registry_basic.password}"
    with RegistryClient(registry_basic.host, FAST) as c:  # credentials come from config.json
        assert c.catalog() == []
    r = pyrun("logout", registry_basic.host)
    assert (r.returncode, r.stdout.strip()) == (0, f"Removing login credentials for {registry_basic.host}")
    r = pyrun("logout", registry_basic.host)
    assert r.stdout.strip() == f"Not logged in to {registry_basic.host}"


def test_login_wrong_password_exits_1_and_stores_nothing(registry_basic, docker_config):
    r = pyrun("login", "-u", registry_basic.user, "-p", "nope", registry_basic.host)
    assert r.returncode == 1
    assert "Using --password via the CLI is insecure" in r.stderr
    assert "unauthorized" in r.stderr and "HTTP 401" in r.stderr
    assert not (docker_config / "config.json").exists()


def test_login_token_registry(registry_token, docker_config):
    r = pyrun("login", "-u", registry_token.user, "-p", registry_token.password, registry_token.host)
    assert r.returncode == 0, r.stderr
    r = pyrun("login", "-u", registry_token.user, "-p", "bad", registry_token.host)
    assert r.returncode == 1 and "authentication failed" in r.stderr


def test_login_tls_with_ca(registry_tls, docker_config):
    r = pyrun("login", "-u", "x", "-p", "y", registry_tls.host)
    assert r.returncode == 1 and "--ca-cert" in r.stderr
    r = pyrun("login", "-u", "x", "-p", "y", "--ca-cert", str(registry_tls.ca_cert), registry_tls.host)
    assert r.returncode == 0, r.stderr
    r = pyrun("login", "-u", "x", "-p", "y", "--tls-verify=false", registry_tls.host)
    assert r.returncode == 0 and "verification is disabled" in r.stderr


def test_login_bad_flags(docker_config):
    r = pyrun("login", "-u", "a", "-p", "b", "--password-stdin", "127.0.0.1:1", input="c")
    assert r.returncode == 125 and "mutually exclusive" in r.stderr
    r = pyrun("login", "--password-stdin", "127.0.0.1:1", input="c")
    assert r.returncode == 125 and "--username" in r.stderr
    r = pyrun("login", "127.0.0.1:1", input="")
    assert r.returncode == 125 and "non TTY" in r.stderr


def test_search_and_manifest_inspect(registry, docker_config):
    with RegistryClient(registry.host, FAST) as c:
        digest, manifest = push_image(c, "team/app", "1", b"one")
        push_image(c, "team/app", "2", b"two")
        push_image(c, "other/thing", "latest", b"three")
        index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                           "digest": digest, "size": len(manifest),
                                           "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
        c.put_manifest("team/app", "multi", index, "application/vnd.oci.image.index.v1+json")
    r = pyrun("search", f"{registry.host}/team")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TAGS"]
    assert lines[1].split() == [f"{registry.host}/team/app", "1,", "2,", "multi"]
    assert len(lines) == 2
    r = pyrun("manifest", "inspect", f"{registry.host}/team/app:1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(manifest)
    r = pyrun("manifest", "inspect", "-v", f"{registry.host}/team/app:multi")
    assert r.returncode == 0, r.stderr
    entry = json.loads(r.stdout)
    assert entry["Ref"] == f"{registry.host}/team/app@{digest}"
    assert entry["Descriptor"]["platform"]["architecture"] == "amd64"
    r = pyrun("manifest", "inspect", f"{registry.host}/team/app:nope")
    assert r.returncode == 1 and "manifest unknown" in r.stderr


def test_search_needs_a_registry(docker_config):
    r = pyrun("search", "busybox")
    assert r.returncode == 1 and "REGISTRY/TERM" in r.stderr


def test_search_token_registry(registry_token, docker_config):
    creds = Credentials(registry_token.user, registry_token.password)
    with RegistryClient(registry_token.host, FAST, credentials=creds) as c:
        push_image(c, "team/tok", "v1", b"x")
    r = pyrun("search", f"{registry_token.host}/tok")
    assert r.returncode == 1 and "catalog" in r.stderr
    assert pyrun("login", "-u", creds.username, "-p", creds.password, registry_token.host).returncode == 0
    r = pyrun("search", f"{registry_token.host}/tok")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].split() == [f"{registry_token.host}/team/tok", "v1"]

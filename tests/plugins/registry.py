"""Registry test servers on 127.0.0.1: Debian's docker-registry in four modes (plain http,
htpasswd Basic auth, TLS with a CA made here, Bearer tokens from a small token server), and
a fault proxy in front of any of them. Every process is stopped by pid; nothing is left."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SERVICE = "pybuild-test-registry"
ISSUER = "pybuild-test-issuer"
USER, PASSWORD = "alice", "s3cret-pw"


def have_registry() -> bool:
    return os.access(REGISTRY_BIN, os.X_OK)


needs_registry = pytest.mark.skipif(not have_registry(), reason="docker-registry not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*argv: str, cwd: pathlib.Path | None = None) -> bytes:
    return subprocess.run(argv, check=True, capture_output=True, cwd=cwd).stdout


# ---------------------------------------------------------------- certificates (openssl CLI)


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    ca_cert: pathlib.Path
    cert: pathlib.Path
    key: pathlib.Path


def make_tls(dir: pathlib.Path) -> TLSFiles:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = dir / "ca.key", dir / "ca.crt"
    key, csr, cert = dir / "server.key", dir / "server.csr", dir / "server.crt"
    ext = dir / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    _run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
        "-days",
        "2",
        "-subj",
        "/CN=pybuild test CA",
    )
    _run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    _run(
        "openssl",
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return TLSFiles(ca_cert, cert, key)


# ---------------------------------------------------------------- token server


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(der_public_key: bytes) -> str:
    """docker/libtrust's key id: base32 of the first 240 bits of sha256(SPKI DER), in 4s."""
    b32 = base64.b32encode(hashlib.sha256(der_public_key).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def parse_scope(scope: str) -> dict:
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class TokenServer:
    """Issues RS256 JWTs that docker-registry's token auth verifies (kid = libtrust key id).
    A user with the right Basic credentials gets every action asked for; anonymous callers
    get `pull` only if `anonymous_pull`. `bad_tokens` makes it issue tokens with a broken
    signature, which the registry rejects with 401."""

    def __init__(self, dir: pathlib.Path, users: dict[str, str]):
        dir.mkdir(parents=True, exist_ok=True)
        self.key = dir / "token.key"
        self.cert = dir / "token.crt"
        _run(
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(self.key),
            "-out",
            str(self.cert),
            "-days",
            "2",
            "-subj",
            "/CN=token signer",
        )
        der = _run("openssl", "pkey", "-in", str(self.key), "-pubout", "-outform", "DER")
        self.kid = libtrust_key_id(der)
        self.users = users
        self.refresh_tokens: dict[str, str] = {}  # identity token -> user
        self.anonymous_pull = False
        self.bad_tokens = False
        self.expires_in = 300
        self.requests: list[dict] = []  # what was asked: {"user", "scopes", "service"}
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                server._handle(self)

            def do_POST(self):  # OAuth2: grant_type=refresh_token (Docker's identity tokens)
                n = int(self.headers.get("Content-Length") or 0)
                server._handle(self, urllib.parse.parse_qs(self.rfile.read(n).decode()))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
        ).stdout
        if self.bad_tokens:
            sig = bytes([sig[0] ^ 0xFF]) + sig[1:]
        return f"{signing_input}.{_b64url(sig)}"

    def _handle(self, h: BaseHTTPRequestHandler, form: dict | None = None) -> None:
        url = urllib.parse.urlsplit(h.path)
        query = form if form is not None else urllib.parse.parse_qs(url.query)
        user = None
        auth = h.headers.get("Authorization", "")
        refused = False
        if form is not None:
            refresh = (form.get("refresh_token") or [""])[0]
            user = self.refresh_tokens.get(refresh)
            refused = form.get("grant_type") != ["refresh_token"] or user is None
        elif auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            refused = self.users.get(u) != p
            user = u
        if refused:
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        scopes = [s for v in query.get("scope", []) for s in v.split(" ") if s]
        self.requests.append({"user": user, "scopes": scopes, "service": query.get("service")})
        access = []
        for s in scopes:
            sc = parse_scope(s)
            if user is None:
                sc["actions"] = [a for a in sc["actions"] if a == "pull" and self.anonymous_pull]
            access.append(sc)
        now = int(time.time())
        token = self.sign(
            {
                "iss": ISSUER,
                "sub": user or "",
                "aud": SERVICE,
                "exp": now + self.expires_in,
                "nbf": now - 10,
                "iat": now,
                "jti": os.urandom(8).hex(),
                "access": access,
            }
        )
        body = json.dumps(
            {
                "token": token,
                "access_token": token,
                "expires_in": self.expires_in,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            }
        ).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


# ---------------------------------------------------------------- docker-registry


@dataclasses.dataclass
class RegistryServer:
    mode: str  # "plain", "basic", "tls", "token"
    port: int
    root: pathlib.Path  # where its blobs live
    proc: subprocess.Popen
    log: pathlib.Path
    user: str | None = None
    password: str | None = None
    ca_cert: pathlib.Path | None = None
    token_server: TokenServer | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.mode == 'tls' else 'http'}://{self.host}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.token_server:
            self.token_server.stop()


def registry_config(
    mode: str,
    port: int,
    dir: pathlib.Path,
    tls: TLSFiles | None,
    htpasswd: pathlib.Path | None,
    token: TokenServer | None,
) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {dir / 'data'}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: pybuild-test-secret",
    ]
    if tls:
        lines += ["  tls:", f"    certificate: {tls.cert}", f"    key: {tls.key}"]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: basic-realm", f"    path: {htpasswd}"]
    if token:
        lines += [
            "auth:",
            "  token:",
            f"    realm: {token.realm}",
            f"    service: {SERVICE}",
            f"    issuer: {ISSUER}",
            f"    rootcertbundle: {token.cert}",
        ]
    return "\n".join(lines) + "\n"


def start_registry(dir: pathlib.Path, mode: str = "plain") -> RegistryServer:
    if mode not in ("plain", "basic", "tls", "token"):
        raise ValueError(mode)
    dir.mkdir(parents=True, exist_ok=True)
    tls = make_tls(dir / "tls") if mode == "tls" else None
    htpasswd = None
    if mode == "basic":
        htpasswd = dir / "htpasswd"
        _run("htpasswd", "-Bbc", str(htpasswd), USER, PASSWORD)
    token = TokenServer(dir / "token", {USER: PASSWORD}) if mode == "token" else None
    last_error = ""
    for _attempt in range(5):  # a free port can be taken between probe and bind: retry
        port = free_port()
        config = dir / "config.yml"
        config.write_text(registry_config(mode, port, dir, tls, htpasswd, token))
        log = dir / "registry.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = RegistryServer(
            mode,
            port,
            dir / "data",
            proc,
            log,
            ca_cert=tls.ca_cert if tls else None,
            token_server=token,
        )
        if mode in ("basic", "token"):
            server.user, server.password = USER, PASSWORD
        if _wait_listening(server):
            return server
        last_error = log.read_text(errors="replace")[-2000:]
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    if token:
        token.stop()
    raise RuntimeError(f"docker-registry did not start: {last_error}")


def _wait_listening(server: RegistryServer, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def registry_factory(tmp_path_factory):
    """start(mode) -> RegistryServer; every server is stopped at teardown."""
    started: list[RegistryServer] = []

    def start(mode: str = "plain") -> RegistryServer:
        if not have_registry():
            pytest.skip("docker-registry not installed")
        server = start_registry(tmp_path_factory.mktemp(f"registry-{mode}"), mode)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def registry(registry_factory) -> RegistryServer:
    return registry_factory("plain")


@pytest.fixture
def registry_basic(registry_factory) -> RegistryServer:
    return registry_factory("basic")


@pytest.fixture
def registry_tls(registry_factory) -> RegistryServer:
    return registry_factory("tls")


@pytest.fixture
def registry_token(registry_factory) -> RegistryServer:
    return registry_factory("token")


@pytest.fixture
def docker_config(tmp_path, monkeypatch) -> pathlib.Path:
    """An empty $DOCKER_CONFIG for this test, so no real credentials are read or written."""
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d


# ---------------------------------------------------------------- small images in a store


def layer_tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip tar layer holding `files` (path -> content): (blob bytes, diff id)."""
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def make_store_image(store, ref: str, layers: list[dict[str, bytes]],
                     media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> str:
    """Put an image with these layers into `store` under the full reference `ref`."""
    from pybuild.image.store import LayerBlob

    diff_ids = []
    for files in layers:
        blob, diff_id = layer_tar_gz(files)
        stored = store.put_blob(blob)
        usize = len(__import__("gzip").decompress(blob))
        store.add_layer_blob(LayerBlob(diff_id, stored.digest, "gzip", stored.size, usize, media_type))
        diff_ids.append(diff_id)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": "test"} for _ in diff_ids]}).encode()
    record = store.add_image(config)
    store.set_tag(ref, record.id)
    return record.id


@pytest.fixture
def pyrun_env(tmp_path, docker_config, monkeypatch):
    """A store root for `pyrun` subprocesses (PYBUILD_ROOT) and an empty DOCKER_CONFIG."""
    root = tmp_path / "root"
    monkeypatch.setenv("PYBUILD_ROOT", str(root))
    return root

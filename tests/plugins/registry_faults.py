"""The fault proxy: a plain-http proxy on 127.0.0.1 in front of a test registry that drops
connections mid-body, answers with an error status, flips a byte, or forges the token."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.plugins.registry import RegistryServer, free_port

# ---------------------------------------------------------------- fault proxy


@dataclasses.dataclass
class Fault:
    """One injected fault. `method`/`path` (regex, searched) pick requests; `times` is how
    many matching requests it hits (then it is spent). Kinds:
      status   answer `status` without asking the registry
      drop     forward, send headers and `offset` body bytes, then cut the connection
      corrupt  forward, flip the byte at `offset` of the body
      bad_auth forward with the Authorization header replaced by a forged Bearer token
    """

    kind: str
    path: str = ""
    method: str | None = None
    times: int = 1
    status: int = 500
    offset: int = 0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.hits >= self.times:
            return False
        if self.method and self.method != method:
            return False
        return re.search(self.path, path) is not None


_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "te",
    "upgrade",
    "trailer",
}


class FaultProxy:
    """A plain-http proxy on 127.0.0.1 in front of a registry: requests go through unchanged
    (Host included, so the registry's Location headers point back here) unless a Fault
    matches. `log` records (method, path, status) of every request."""

    def __init__(self, upstream: RegistryServer):
        if upstream.mode == "tls":
            raise ValueError("the fault proxy speaks plain http to its upstream")
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def _pick(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.matches(method, path):
                    f.hits += 1
                    return f
        return None

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method, path = h.command, h.path
        body = self._read_body(h)
        fault = self._pick(method, path)
        if fault and fault.kind == "status":
            msg = json.dumps(
                {"errors": [{"code": "UNKNOWN", "message": "injected fault"}]}
            ).encode()
            h.send_response(fault.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(msg)))
            h.end_headers()
            h.wfile.write(msg)
            self.log.append((method, path, fault.status))
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
        if fault and fault.kind == "bad_auth":
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = "Bearer forged.token.value"
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read() if method != "HEAD" else b""
        finally:
            conn.close()
        self.log.append((method, path, resp.status))
        if fault and fault.kind == "corrupt" and len(data) > fault.offset:
            data = (
                data[: fault.offset] + bytes([data[fault.offset] ^ 0x01]) + data[fault.offset + 1 :]
            )
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP and k.lower() != "content-length":
                h.send_header(k, v)
        if method == "HEAD":
            h.send_header("Content-Length", resp.getheader("Content-Length") or "0")
        else:
            h.send_header("Content-Length", str(len(data)))
        if fault and fault.kind == "drop":
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(data[: fault.offset])
            h.wfile.flush()
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(data)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def fault_proxy(registry):
    proxy = FaultProxy(registry)
    yield proxy
    proxy.stop()

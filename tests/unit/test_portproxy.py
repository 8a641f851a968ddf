"""The port proxy process on its own, relaying 127.0.0.1 -> 127.0.0.1 (no namespaces
needed): bytes arrive intact both ways, half-close passes through, UDP replies come back,
a taken port is an error, and stop leaves no process."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from pybuild.errors import ContainerError
from pybuild.runtime import portproxy
from pybuild.runtime.ports import PortBinding, parse_port_spec


@pytest.fixture
def echo_servers():
    """A TCP server that answers sha256(everything received) after the client half-closes,
    and a UDP server that echoes; both on 127.0.0.1 ephemeral ports."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve_tcp():
        while not stop.is_set():
            try:
                c, _ = tcp.accept()
            except OSError:
                return
            with c:
                h = hashlib.sha256()
                while chunk := c.recv(65536):
                    h.update(chunk)
                c.sendall(h.hexdigest().encode())

    def serve_udp():
        while not stop.is_set():
            try:
                data, peer = udp.recvfrom(65536)
            except OSError:
                return
            udp.sendto(data[::-1], peer)

    threads = [threading.Thread(target=f, daemon=True) for f in (serve_tcp, serve_udp)]
    for t in threads:
        t.start()
    yield tcp.getsockname()[1], udp.getsockname()[1]
    stop.set()
    tcp.close()
    udp.close()


def test_tcp_and_udp_relay(echo_servers):
    tcp_port, udp_port = echo_servers
    bindings = [PortBinding(tcp_port, "tcp", "127.0.0.1"),
                PortBinding(udp_port, "udp", "127.0.0.1")]
    proxy = portproxy.start(bindings, "127.0.0.1")
    try:
        t, u = proxy.forwards
        assert (t.container_port, u.container_port) == (tcp_port, udp_port)
        payload = os.urandom(3 << 20)
        with socket.create_connection(("127.0.0.1", t.host_port), timeout=10) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)  # the server answers only after the half-close
            answer = c.makefile("rb").read()
        assert answer.decode() == hashlib.sha256(payload).hexdigest()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            for msg in (b"abc", b"hello"):
                s.sendto(msg, ("127.0.0.1", u.host_port))
                assert s.recvfrom(100)[0] == msg[::-1]
    finally:
        portproxy.stop(proxy)
    assert not portproxy.alive(proxy)
    portproxy.stop(proxy)  # stopping twice is harmless


def test_taken_port_and_bad_protocol(echo_servers):
    tcp_port, _ = echo_servers
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        taken = blocker.getsockname()[1]
        with pytest.raises(ContainerError, match=f"cannot bind 127.0.0.1:{taken}/tcp"):
            portproxy.start(parse_port_spec(f"127.0.0.1:{taken}:80"), "127.0.0.1")
    with pytest.raises(ContainerError, match="sctp"):
        portproxy.start(parse_port_spec("127.0.0.1::80/sctp"), "127.0.0.1")


def test_unreachable_backend_closes_the_client():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    proxy = portproxy.start([PortBinding(dead, "tcp", "127.0.0.1")], "127.0.0.1")
    try:
        with socket.create_connection(("127.0.0.1", proxy.forwards[0].host_port),
                                      timeout=10) as c:
            c.settimeout(10)
            assert c.recv(10) == b""
    finally:
        portproxy.stop(proxy)

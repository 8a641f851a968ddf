"""Published ports (`-p`, `-P`): a userspace proxy process, like docker-proxy, that listens
on host ip:port and relays TCP connections and UDP datagrams to container ip:port.

One proxy process serves all the published ports of one container. It runs in its own
session so it outlives the pyrun that started it; whoever owns the container (later its
supervisor) stops it by pid. The child side uses the standard library only and runs with
`python -I <this file>`, so starting it imports nothing of pybuild."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

UDP_IDLE = 90.0          # seconds a UDP client's relay socket lives without traffic
CONNECT_TIMEOUT = 5.0
READY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Forward:
    """One relayed port, with the host port actually bound."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


@dataclass(frozen=True)
class Proxy:
    pid: int
    start_time: str          # /proc/<pid>/stat field 22: a recycled pid is not ours
    forwards: tuple[Forward, ...]

    def to_json(self) -> dict:
        return {"pid": self.pid, "start_time": self.start_time,
                "forwards": [asdict(f) for f in self.forwards]}

    @classmethod
    def from_json(cls, data: dict) -> Proxy:
        return cls(data["pid"], data["start_time"],
                   tuple(Forward(**f) for f in data["forwards"]))


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


# --- parent side ----------------------------------------------------------------------------

def start(bindings: Sequence, container_ip: str, *, log_path: str | None = None) -> Proxy:
    """Bind every `PortBinding` (host_port 0 = a free port; a host port range = the first free
    one in it) and relay it to `container_ip`. Raises ContainerError if a port is taken."""
    from pybuild.errors import ContainerError

    for b in bindings:
        if b.proto not in ("tcp", "udp"):
            raise ContainerError(f"publishing {b.proto} ports is not supported (tcp, udp only)")
    spec = [{"proto": b.proto, "host_ip": b.host_ip, "host_port": b.host_port,
             "host_port_end": b.host_port_end or b.host_port, "container_ip": container_ip,
             "container_port": b.container_port} for b in bindings]
    r, w = os.pipe()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), json.dumps(spec), str(w)],
            pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True, close_fds=True)
    finally:
        os.close(w)
        if log_path:
            log.close()
    try:
        data = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                proc.kill()
                proc.wait()
                raise ContainerError("the port proxy did not start in time")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    reply = json.loads(data or b'{"error": "the port proxy exited"}')
    if "error" in reply:
        proc.wait()
        raise ContainerError(reply["error"])
    forwards = tuple(Forward(s["proto"], s["host_ip"], port, container_ip, s["container_port"])
                     for s, port in zip(spec, reply["ports"], strict=True))
    return Proxy(proc.pid, _start_time(proc.pid) or "", forwards)


def alive(proxy: Proxy) -> bool:
    return _start_time(proxy.pid) == proxy.start_time


def stop(proxy: Proxy, timeout: float = 5.0) -> None:
    """SIGTERM the proxy (SIGKILL after `timeout`), and reap it if it is our child."""
    if not alive(proxy):
        return
    sig = signal.SIGTERM
    deadline = time.monotonic() + timeout
    try:
        os.kill(proxy.pid, sig)
    except ProcessLookupError:
        return
    while True:
        try:
            pid, _ = os.waitpid(proxy.pid, os.WNOHANG)
            if pid:
                return
        except ChildProcessError:  # not our child: wait for it to vanish
            if not alive(proxy):
                return
        if time.monotonic() > deadline and sig == signal.SIGTERM:
            sig = signal.SIGKILL
            os.kill(proxy.pid, sig)
        time.sleep(0.01)


# --- child side: the proxy itself -------------------------------------------------------------

def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _bind(s: dict) -> tuple[socket.socket, int]:
    ip = s["host_ip"] or "0.0.0.0"
    kind = socket.SOCK_STREAM if s["proto"] == "tcp" else socket.SOCK_DGRAM
    last: OSError | None = None
    for port in range(s["host_port"], s["host_port_end"] + 1):
        sock = socket.socket(_family(ip), kind)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError as e:
            sock.close()
            last = e
            continue
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        return sock, sock.getsockname()[1]
    where = f"{ip}:{s['host_port']}" + (f"-{s['host_port_end']}"
                                         if s["host_port_end"] != s["host_port"] else "")
    raise OSError(f"cannot bind {where}/{s['proto']}: {last.strerror if last else 'no port'}")


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)  # pass the half-close on, as docker-proxy does
        except OSError:
            pass


def _tcp_conn(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        backend = socket.create_connection(target, timeout=CONNECT_TIMEOUT)
    except OSError:
        client.close()
        return
    backend.settimeout(None)
    there = threading.Thread(target=_pump, args=(client, backend), daemon=True)
    there.start()
    _pump(backend, client)
    there.join()
    client.close()
    backend.close()


def _tcp_serve(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:  # EMFILE and friends: back off instead of spinning
            time.sleep(0.05)
            continue
        threading.Thread(target=_tcp_conn, args=(client, target), daemon=True).start()


def _udp_serve(listener: socket.socket, target: tuple[str, int]) -> None:
    relays: dict[tuple, socket.socket] = {}
    lock = threading.Lock()

    def replies(client: tuple, relay: socket.socket) -> None:
        relay.settimeout(UDP_IDLE)
        try:
            while True:
                data = relay.recv(65536)
                listener.sendto(data, client)
        except OSError:  # idle timeout or a closed relay
            pass
        finally:
            with lock:
                relays.pop(client, None)
            relay.close()

    while True:
        try:
            data, client = listener.recvfrom(65536)
        except OSError:
            time.sleep(0.05)
            continue
        with lock:
            relay = relays.get(client)
            if relay is None:
                relay = socket.socket(_family(target[0]), socket.SOCK_DGRAM)
                relay.connect(target)
                relays[client] = relay
                threading.Thread(target=replies, args=(client, relay), daemon=True).start()
        try:
            relay.send(data)
        except OSError:
            pass


def main(argv: list[str]) -> int:
    spec, ready_fd = json.loads(argv[0]), int(argv[1])
    listeners = []
    try:
        for s in spec:
            listeners.append(_bind(s))
    except OSError as e:
        os.write(ready_fd, json.dumps({"error": str(e)}).encode())
        return 1
    os.write(ready_fd, json.dumps({"ports": [port for _, port in listeners]}).encode())
    os.close(ready_fd)
    for s, (sock, _) in zip(spec, listeners, strict=True):
        serve = _tcp_serve if s["proto"] == "tcp" else _udp_serve
        target = (s["container_ip"], s["container_port"])
        threading.Thread(target=serve, args=(sock, target), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

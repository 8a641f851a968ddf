"""Container networking costs, needs root:

    .venv/bin/python bench/network.py [--runs N] [--mb M]

1. attach + detach of a network namespace on a bridge network: pybuild (pyroute2, in process,
   after its import) next to the same plumbing done with iproute2 `ip` commands.
2. the port proxy: throughput of M MB and connections per second through 127.0.0.1:hostPort
   -> proxy -> container, next to a direct connection to the container address.
Prints medians and ratios. Only 127.0.0.1 and a namespace made here are contacted."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from pybuild.runtime import nat, network, portproxy  # noqa: E402
from pybuild.runtime.netstore import NetworkStore  # noqa: E402
from pybuild.runtime.ports import parse_port_spec  # noqa: E402

SINK = textwrap.dedent("""
    import socket, sys, threading
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 9000)); s.listen(64); print("ready", flush=True)
    def serve(c):
        with c:
            n = 0
            while chunk := c.recv(1 << 16):
                n += len(chunk)
            c.sendall(str(n).encode())
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
""")


def ip_attach_detach(ns: str, bridge: str, addr: str, prefix: int, gw: str) -> None:
    host, peer = "vb" + secrets.token_hex(4), "vp" + secrets.token_hex(4)
    for cmd in (
        ["ip", "link", "add", host, "type", "veth", "peer", "name", peer],
        ["ip", "link", "set", host, "master", bridge, "up"],
        ["ip", "link", "set", peer, "netns", ns, "name", "eth0"],
        ["ip", "-n", ns, "addr", "add", f"{addr}/{prefix}", "dev", "eth0"],
        ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "-n", ns, "route", "add", "default", "via", gw],
        ["ip", "link", "del", host],
    ):
        subprocess.run(cmd, check=True)


def transfer(port: int, host: str, size: int) -> float:
    block = b"\0" * (1 << 20)
    start = time.perf_counter()
    with socket.create_connection((host, port)) as c:
        for _ in range(size >> 20):
            c.sendall(block)
        c.shutdown(socket.SHUT_WR)
        assert int(c.makefile().read()) == size
    return time.perf_counter() - start


def connects(port: int, host: str, n: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(n):
        with socket.create_connection((host, port)) as c:
            c.shutdown(socket.SHUT_WR)
            c.makefile().read()
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--mb", type=int, default=256)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pybuild-bench-net-")
    store = NetworkStore(tmp, default_bridge=f"pbb{secrets.token_hex(4)}")
    ns = f"pbb-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    net = network.create_network(store, f"bench-{secrets.token_hex(3)}")
    sink = proxy = None
    try:
        ours, theirs = [], []
        last_host = str(list(ipaddress.ip_network(net.subnet).hosts())[-1])
        for i in range(args.runs):
            t = time.perf_counter()
            network.attach(store, net.name, f"{i:064x}", ns)
            network.detach(store, net.name, f"{i:064x}")
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            ip_attach_detach(ns, net.bridge, last_host, net.prefixlen, net.gateway)
            theirs.append(time.perf_counter() - t)
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"attach+detach  pybuild {a * 1000:.1f} ms   ip(8) commands {b * 1000:.1f} ms   "
              f"ratio {a / b:.2f}   (median of {args.runs})")

        ep = network.attach(store, net.name, "f" * 64, ns)
        sink = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SINK],
                                stdout=subprocess.PIPE, text=True)
        assert sink.stdout.readline().strip() == "ready"
        proxy = portproxy.start(parse_port_spec("127.0.0.1::9000"), ep.ipv4)
        hp = proxy.forwards[0].host_port
        size = args.mb << 20
        direct = statistics.median(transfer(9000, ep.ipv4, size) for _ in range(3))
        proxied = statistics.median(transfer(hp, "127.0.0.1", size) for _ in range(3))
        print(f"throughput     proxy {args.mb / proxied:.0f} MB/s   direct {args.mb / direct:.0f}"
              f" MB/s   time ratio proxy/direct {proxied / direct:.2f}")
        cd, cp = connects(9000, ep.ipv4), connects(hp, "127.0.0.1")
        print(f"connections/s  proxy {cp:.0f}   direct {cd:.0f}   time ratio proxy/direct "
              f"{cd / cp:.2f}")
    finally:
        if proxy:
            portproxy.stop(proxy)
        if sink:
            sink.kill()
            sink.wait()
        network.detach_all(store, "f" * 64)
        network.remove_network(store, net.name)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        assert nat.present(net.id) == []


if __name__ == "__main__":
    main()

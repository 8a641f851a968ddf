"""Bridge networks on the real kernel: two network namespaces on a user network reach each
other by address and find each other by name; a server in a namespace is reached through a
published port on 127.0.0.1; afterwards no veth, bridge, rule, proxy or namespace is left.
Only 127.0.0.1 and addresses inside namespaces made here are contacted."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from pybuild.errors import NetworkError
from pybuild.runtime import nat, network, portproxy
from pybuild.runtime.ports import parse_port_spec
from tests.plugins.netcg import free_port

pytestmark = pytest.mark.root

SERVER = textwrap.dedent("""
    import socket, sys, threading
    port, proto = int(sys.argv[1]), sys.argv[2]
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        print("ready", flush=True)
        while True:
            data, peer = s.recvfrom(65536)
            s.sendto(b"udp:" + data, peer)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(8)
    print("ready", flush=True)
    def serve(c):
        with c:
            data = b""
            while not data.endswith(b"\\n"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            c.sendall(b"echo:" + data)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
""")

CLIENT = textwrap.dedent("""
    import socket, sys
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
        c.sendall(sys.argv[3].encode() + b"\\n")
        print(c.makefile().read(), end="")
""")


@pytest.fixture
def servers():
    """start(netns, port, proto) -> a server running inside the namespace (killed afterwards)."""
    procs: list[subprocess.Popen] = []

    def start(ns: str, port: int, proto: str = "tcp") -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER,
                              str(port), proto], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def _in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=30)


def _tcp(host: str, port: int, text: str) -> str:
    with socket.create_connection((host, port), timeout=5) as c:
        c.sendall(text.encode() + b"\n")
        return c.makefile().read()


def test_two_namespaces_on_a_user_network(net_store, netns_factory, servers):
    ns1, ns2 = netns_factory(), netns_factory()
    net = network.create_network(net_store, "pbtnet", labels={"t": "1"})
    assert network.bridge_exists(net.bridge)
    ep1 = network.attach(net_store, "pbtnet", "a" * 64, ns1, name="alpha")
    ep2 = network.attach(net_store, "pbtnet", "b" * 64, f"/run/netns/{ns2}", name="beta",
                         aliases=["b2"])
    assert (ep1.ifname, ep2.ifname) == ("eth0", "eth0")
    assert ep1.ipv4 != ep2.ipv4 and net.gateway not in (ep1.ipv4, ep2.ipv4)
    assert network.bridge_exists(ep1.host_veth) and network.bridge_exists(ep2.host_veth)

    addr = _in_ns(ns1, "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert f"{ep1.ipv4}/{net.prefixlen}" in addr
    assert f"default via {net.gateway}" in _in_ns(ns1, "ip", "route").stdout
    assert "UP" in _in_ns(ns1, "ip", "link", "show", "lo").stdout
    if shutil.which("busybox"):
        assert _in_ns(ns1, "busybox", "ping", "-c", "1", "-W", "3", ep2.ipv4).returncode == 0

    servers(ns2, 7000)
    out = _in_ns(ns1, sys.executable, "-c", CLIENT, ep2.ipv4, "7000", "hello")
    assert out.stdout == "echo:hello\n", out.stderr

    assert network.hosts_lines(net_store, "a" * 64) == [f"{ep2.ipv4}\tbeta b2 bbbbbbbbbbbb"]
    assert network.hosts_lines(net_store, "b" * 64) == [f"{ep1.ipv4}\talpha aaaaaaaaaaaa"]
    assert len(nat.present(net.id)) == 4
    with open(nat.IP_FORWARD) as f:
        assert f.read().strip() == "1"

    with pytest.raises(NetworkError, match="has active endpoints"):
        network.remove_network(net_store, "pbtnet")
    gone = network.detach(net_store, "pbtnet", "a" * 64)
    assert (gone.ipv4, gone.host_veth, gone.endpoint_id) == (ep1.ipv4, ep1.host_veth,
                                                             ep1.endpoint_id)
    assert network.detach(net_store, "pbtnet", "a" * 64) is None  # idempotent
    assert not network.bridge_exists(ep1.host_veth)
    assert "eth0" not in _in_ns(ns1, "ip", "link").stdout
    network.detach_all(net_store, "b" * 64)
    network.remove_network(net_store, "pbtnet")
    assert not network.bridge_exists(net.bridge)
    assert nat.present(net.id) == []
    assert net_store.list() and all(n.builtin for n in net_store.list())


def test_two_networks_give_eth0_and_eth1(net_store, netns_factory):
    ns = netns_factory()
    network.create_network(net_store, "pbt-one")
    network.create_network(net_store, "pbt-two")
    e1 = network.attach(net_store, "pbt-one", "c" * 64, ns)
    e2 = network.attach(net_store, "pbt-two", "c" * 64, ns)
    assert (e1.ifname, e2.ifname) == ("eth0", "eth1")
    assert sorted(n.name for n in network.networks_of(net_store, "c" * 64)) == [
        "pbt-one", "pbt-two"]
    assert sorted(network.detach_all(net_store, "c" * 64)) == ["pbt-one", "pbt-two"]


def test_published_ports_reach_a_server_in_a_namespace(net_store, netns_factory, servers):
    ns = netns_factory()
    network.ensure_builtins(net_store)
    ep = network.attach(net_store, "bridge", "d" * 64, ns, name="web")
    assert network.bridge_exists(net_store.default_bridge)
    servers(ns, 8080)
    servers(ns, 5353, "udp")
    host_port = free_port()
    bindings = (parse_port_spec(f"127.0.0.1:{host_port}:8080")
                + parse_port_spec("127.0.0.1::8080")           # a random host port
                + parse_port_spec("127.0.0.1::5353/udp"))
    proxy = portproxy.start(bindings, ep.ipv4)
    try:
        assert portproxy.alive(proxy)
        fixed, rand, udp = proxy.forwards
        assert fixed.host_port == host_port and rand.host_port not in (0, host_port)
        assert _tcp("127.0.0.1", fixed.host_port, "one") == "echo:one\n"
        assert _tcp("127.0.0.1", rand.host_port, "two") == "echo:two\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.sendto(b"ping", ("127.0.0.1", udp.host_port))
            assert u.recvfrom(100)[0] == b"udp:ping"
        # a port already taken is an error, and no proxy is left behind
        with pytest.raises(Exception, match="cannot bind 127.0.0.1"):
            portproxy.start(parse_port_spec(f"127.0.0.1:{host_port}:8080"), ep.ipv4)
        again = portproxy.Proxy.from_json(proxy.to_json())
        assert again == proxy
    finally:
        portproxy.stop(proxy)
    assert not portproxy.alive(proxy) and not os.path.exists(f"/proc/{proxy.pid}")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", host_port), timeout=2).close()
    network.detach(net_store, "bridge", "d" * 64)


def test_host_port_range_picks_a_free_port(net_store, netns_factory, servers):
    ns = netns_factory()
    network.create_network(net_store, "pbt-range")
    ep = network.attach(net_store, "pbt-range", "e" * 64, ns)
    servers(ns, 80)
    with socket.socket() as blocker:
        while True:  # a taken port with a free one right after it
            blocker_port = free_port()
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", blocker_port + 1))
                except OSError:
                    continue
            try:
                blocker.bind(("127.0.0.1", blocker_port))
                break
            except OSError:
                continue
        blocker.listen(1)
        base = blocker_port
        proxy = portproxy.start(parse_port_spec(f"127.0.0.1:{base}-{base + 1}:80"), ep.ipv4)
        try:
            assert proxy.forwards[0].host_port == base + 1
            assert _tcp("127.0.0.1", base + 1, "r") == "echo:r\n"
        finally:
            portproxy.stop(proxy)


def test_failed_attach_leaves_nothing(net_store, tmp_path):
    network.create_network(net_store, "pbt-fail")
    with pytest.raises(NetworkError, match="network namespace"):
        network.attach(net_store, "pbt-fail", "f" * 64, str(tmp_path / "no-such-netns"))
    assert net_store.get("pbt-fail").endpoints == {}
    with pytest.raises(NetworkError, match="cannot be attached"):
        network.attach(net_store, "host", "f" * 64, 1)


def test_stale_endpoint_is_reaped_when_its_namespace_died(net_store, netns_factory):
    ns = netns_factory()
    network.create_network(net_store, "pbt-stale")
    ep = network.attach(net_store, "pbt-stale", "9" * 64, ns)
    subprocess.run(["ip", "netns", "del", ns], check=True)
    for _ in range(500):  # the kernel tears a namespace down asynchronously
        if not network.bridge_exists(ep.host_veth):
            break
        time.sleep(0.01)
    assert not network.bridge_exists(ep.host_veth)  # the veth pair died with the namespace
    network.remove_network(net_store, "pbt-stale")


def test_pid_namespace_reference(net_store):
    """A container is named by its pid: a child in its own network namespace (unshare)."""
    network.create_network(net_store, "pbt-pid")
    child = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        for _ in range(200):  # unshare execs sleep once the namespace exists
            if os.readlink(f"/proc/{child.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        ep = network.attach(net_store, "pbt-pid", "7" * 64, child.pid)
        out = subprocess.run(["nsenter", "-t", str(child.pid), "-n", "ip", "-4", "-o", "addr"],
                             capture_output=True, text=True).stdout
        assert ep.ipv4 in out
        network.detach(net_store, "pbt-pid", "7" * 64)
    finally:
        child.kill()
        child.wait()


def test_connect_container_with_published_ports(net_store, netns_factory, servers):
    from pybuild.runtime import netsetup

    ns = netns_factory()
    network.create_network(net_store, "pbt-app")
    netsetup.check_mode(net_store, "pbt-app")
    with pytest.raises(NetworkError, match="not found"):
        netsetup.check_mode(net_store, "pbt-missing")
    servers(ns, 80)
    cn = netsetup.connect_container(net_store, "pbt-app", "ab" * 32, ns, name="web",
                                    aliases=["www"], publish=["80"], publish_all=True,
                                    exposed=["80/tcp", "443/tcp"], default_host_ip="127.0.0.1")
    try:
        again = netsetup.ContainerNetwork.from_json(cn.to_json())
        assert again == cn and cn.endpoint.name == "web"
        lines = cn.port_lines()
        assert len(lines) == 2 and lines[0].startswith("80/tcp -> 127.0.0.1:")
        assert lines[1].startswith("443/tcp -> 127.0.0.1:")
        port = int(lines[0].rsplit(":", 1)[1])
        assert _tcp("127.0.0.1", port, "via-proxy") == "echo:via-proxy\n"
    finally:
        netsetup.disconnect_container(net_store, "ab" * 32, cn)
    proxy = portproxy.Proxy.from_json(cn.proxy)
    assert not portproxy.alive(proxy)
    assert net_store.get("pbt-app").endpoints == {}
    assert netsetup.connect_container(net_store, "host", "cd" * 32, 1, publish=["80"]).mode == \
        "host"
    with pytest.raises(NetworkError, match="network-scoped alias"):
        netsetup.connect_container(net_store, "bridge", "cd" * 32, ns, aliases=["x"])
    with pytest.raises(Exception, match="invalid containerPort"):
        netsetup.connect_container(net_store, "pbt-app", "cd" * 32, ns, publish=["x"])
    assert net_store.get("pbt-app").endpoints == {}


def test_default_network_moves_off_a_taken_range(net_store, netns_factory, tmp_path):
    """Another store's bridge took this store's default subnet before first use."""
    from pybuild.runtime.netstore import NetworkStore

    network.ensure_builtins(net_store)
    mine = net_store.get("bridge")
    other = NetworkStore(str(tmp_path / "other"))
    with other.locked():
        squatter = other.create("squat", subnet=mine.subnet.replace("/16", "/24"))
    try:
        with network.host_lock():
            network.ensure_bridge(squatter)
        ep = network.attach(net_store, "bridge", "5" * 64, netns_factory())
        moved = net_store.get("bridge")
        assert moved.subnet != mine.subnet
        assert ipaddress.ip_address(ep.ipv4) in ipaddress.ip_network(moved.subnet)
        network.detach(net_store, "bridge", "5" * 64)
    finally:
        network.delete_link(squatter.bridge)


def test_internal_network_has_no_way_out(net_store, netns_factory):
    ns1, ns2 = netns_factory(), netns_factory()
    net = network.create_network(net_store, "pbt-internal", internal=True)
    e1 = network.attach(net_store, net.name, "1" * 64, ns1)
    e2 = network.attach(net_store, net.name, "2" * 64, ns2)
    assert "default" not in _in_ns(ns1, "ip", "route").stdout
    if shutil.which("busybox"):
        assert _in_ns(ns1, "busybox", "ping", "-c", "1", "-W", "3", e2.ipv4).returncode == 0
    rules = nat.present(net.id)
    assert len(rules) == 3 and not any("MASQUERADE" in r for r in rules)
    assert e1.ipv4 != e2.ipv4


def test_shared_default_bridge_sheds_addresses_of_stores_gone(tmp_path, net_store, netns_factory):
    """Every store's default bridge is the same device (pybr0, like docker0) with a subnet
    of its own. A store that is gone left its gateway address behind and nothing took it
    away: 15 test stores filled 172.17-31 and every bridge test then failed with "could not
    find an available, non-overlapping IPv4 address pool". An idle device sheds them; a
    device with a container on it keeps them (that store is alive)."""
    from pybuild.runtime.netstore import NetworkStore

    def addrs() -> set[str]:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", net_store.default_bridge],
                             capture_output=True, text=True, check=True).stdout
        return {line.split()[3] for line in out.splitlines()}

    # a store that used the shared device and is gone now: its bridge with its address
    gone = NetworkStore(str(tmp_path / "gone"), default_bridge=net_store.default_bridge)
    network.ensure_builtins(gone)
    old = gone.get("bridge")
    with network.host_lock():
        network.ensure_bridge(old)
    assert addrs() == {f"{old.gateway}/16"}
    # this store starts: the idle device loses the stale address before the pick, so the
    # pick is not pushed off it, and only this store's gateway is on the device
    network.ensure_builtins(net_store)
    net = net_store.get("bridge")
    assert net.subnet == old.subnet
    assert addrs() == set()
    ns = netns_factory()
    network.attach(net_store, "bridge", "e" * 64, ns)
    assert addrs() == {f"{net.gateway}/16"}
    # with a container attached, another store's gateway stays beside ours
    other = NetworkStore(str(tmp_path / "other"), default_bridge=net_store.default_bridge)
    network.ensure_builtins(other)
    second = other.get("bridge")
    assert second.subnet != net.subnet
    with network.host_lock():
        network.ensure_bridge(second)
    assert addrs() == {f"{net.gateway}/16", f"{second.gateway}/16"}
    network.detach(net_store, "bridge", "e" * 64)
    # idle again: the next use keeps only its own gateway
    with network.host_lock():
        network.ensure_bridge(net)
    assert addrs() == {f"{net.gateway}/16"}

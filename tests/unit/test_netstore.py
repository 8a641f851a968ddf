"""Network records and address management on disk, without the kernel: subnet choice,
allocation, release, concurrent allocation from many processes, hosts-file sections."""

from __future__ import annotations

import ipaddress
import multiprocessing

import pytest

from pybuild.errors import NetworkError
from pybuild.runtime import ipam
from pybuild.runtime.netstore import NetworkStore
from pybuild.runtime.network import hosts_lines, netns_path, write_hosts_section

N = ipaddress.ip_network


def test_pick_subnet_skips_routes_and_taken():
    used = [N("172.30.0.0/24"), N("172.30.1.0/25")]
    assert str(ipam.pick_subnet(ipam.user_subnets(), used)) == "172.30.2.0/24"
    assert str(ipam.pick_subnet(ipam.DEFAULT_BRIDGE_SUBNETS, [N("172.31.5.0/24")])) == \
        "172.30.0.0/16"
    with pytest.raises(NetworkError, match="non-overlapping"):
        ipam.pick_subnet(["10.0.0.0/24"], [N("10.0.0.0/8")])


def test_host_routes_reads_proc_format(tmp_path):
    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "br0\t0000E0AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    assert ipam.host_routes(str(route)) == [N("192.0.2.0/24"), N("172.224.0.0/16")]


@pytest.mark.parametrize("text, message", [
    ("nonsense", "invalid subnet"), ("fd00::/64", "only IPv4"),
    ("10.0.0.5/24", "host bits"), ("10.0.0.0/31", "too small")])
def test_bad_subnets(text, message):
    with pytest.raises(NetworkError, match=message):
        ipam.parse_subnet(text)


def test_allocate_lowest_free_and_wanted():
    net, gw = N("10.9.0.0/29"), ipaddress.ip_address("10.9.0.1")
    assert str(ipam.allocate(net, gw, [])) == "10.9.0.2"
    assert str(ipam.allocate(net, gw, ["10.9.0.2", "10.9.0.4"])) == "10.9.0.3"
    assert str(ipam.allocate(net, gw, [], "10.9.0.6")) == "10.9.0.6"
    for wanted, message in [("10.9.0.1", "in use"), ("10.9.0.7", "does not belong"),
                            ("10.10.0.2", "does not belong"), ("x", "invalid")]:
        with pytest.raises(NetworkError, match=message):
            ipam.allocate(net, gw, [], wanted)
    with pytest.raises(NetworkError, match="no available"):
        ipam.allocate(net, gw, [f"10.9.0.{i}" for i in range(2, 7)])
    assert ipam.mac_for(ipaddress.ip_address("172.17.0.2")) == "02:42:ac:11:00:02"


def test_gateway_checks():
    net = N("10.9.0.0/24")
    assert str(ipam.check_gateway(net, "10.9.0.254")) == "10.9.0.254"
    for bad in ("10.9.0.0", "10.9.0.255", "10.8.0.1", "gw"):
        with pytest.raises(NetworkError):
            ipam.check_gateway(net, bad)


def test_store_records(tmp_path):
    store = NetworkStore(str(tmp_path))
    store.ensure_builtins([N("172.31.0.0/16")])
    bridge = store.get("bridge")
    assert bridge.subnet == "172.30.0.0/16" and bridge.bridge == "pybr0"
    assert {n.name for n in store.list()} == {"bridge", "host", "none"}
    with store.locked():
        a = store.create("alpha", labels={"k": "v"}, host_routes=[])
        b = store.create("beta", subnet="10.50.0.0/16", gateway="10.50.0.254")
    assert a.subnet == "172.29.0.0/24"  # below the default bridge's /16
    assert a.bridge == f"pybr-{a.id[:10]}" and len(a.bridge) <= 15
    assert b.gateway == "10.50.0.254" and store.get(b.id[:8]).name == "beta"
    assert store.get(a.id) == a and store.get("alpha").labels == {"k": "v"}
    with store.locked():
        for kwargs, message in [
            ({"name": "alpha"}, "already exists"),
            ({"name": "-bad"}, "invalid network name"),
            ({"name": "x", "driver": "overlay"}, "plugin"),
            ({"name": "x", "subnet": "10.50.1.0/24"}, "overlaps"),
            ({"name": "x", "subnet": "192.0.2.0/25", "host_routes": [N("192.0.2.0/24")]},
             "host route"),
            ({"name": "x", "gateway": "10.1.1.1"}, "needs a --subnet"),
        ]:
            with pytest.raises(NetworkError, match=message):
                store.create(**kwargs)
    with pytest.raises(NetworkError, match="not found"):
        store.get("nope")
    with store.locked():
        store.remove(a.id)
    assert {n.name for n in store.list()} == {"bridge", "host", "none", "beta"}


def test_allocate_release_and_hosts(tmp_path):
    store = NetworkStore(str(tmp_path))
    with store.locked():
        store.create("net", subnet="10.60.0.0/24")
    _, e1 = store.allocate("net", "a" * 64, "web", aliases=["www"])
    _, e2 = store.allocate("net", "b" * 64, "db")
    assert (e1.ipv4, e2.ipv4) == ("10.60.0.2", "10.60.0.3")
    with pytest.raises(NetworkError, match="already exists"):
        store.allocate("net", "a" * 64, "web")
    assert hosts_lines(store, "b" * 64) == ["10.60.0.2\tweb www aaaaaaaaaaaa"]
    assert store.release("net", "a" * 64) == e1
    assert store.release("net", "a" * 64) is None
    _, e3 = store.allocate("net", "c" * 64, "cache")
    assert e3.ipv4 == "10.60.0.2"  # released addresses are reused
    store.ensure_builtins([])
    with pytest.raises(NetworkError, match="no addresses"):
        store.allocate("host", "d" * 64, "x")


def _grab(root: str, i: int, out) -> None:
    _, ep = NetworkStore(root).allocate("busy", f"{i:064x}", f"c{i}")
    out.put(ep.ipv4)


def test_concurrent_allocation_from_many_processes(tmp_path):
    store = NetworkStore(str(tmp_path))
    with store.locked():
        store.create("busy", subnet="10.70.0.0/24")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_grab, args=(str(tmp_path), i, out)) for i in range(16)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    addrs = [out.get(timeout=5) for _ in procs]
    assert len(set(addrs)) == 16
    assert len(store.get("busy").endpoints) == 16


def test_hosts_section_is_rewritten_in_place(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1\tlocalhost\n10.0.0.2\tme\n")
    inode = path.stat().st_ino
    write_hosts_section(str(path), ["10.0.0.3\tpeer"])
    write_hosts_section(str(path), ["10.0.0.3\tpeer", "10.0.0.4\tother"])
    assert path.read_text() == ("127.0.0.1\tlocalhost\n10.0.0.2\tme\n"
                                "# pybuild: peers on user-defined networks\n"
                                "10.0.0.3\tpeer\n10.0.0.4\tother\n")
    write_hosts_section(str(path), [])
    assert path.read_text() == "127.0.0.1\tlocalhost\n10.0.0.2\tme\n"
    assert path.stat().st_ino == inode


def test_netns_path_forms():
    assert netns_path(1234) == "/proc/1234/ns/net"
    assert netns_path("1234") == "/proc/1234/ns/net"
    assert netns_path("blue") == "/run/netns/blue"
    assert netns_path("/var/run/netns/x") == "/var/run/netns/x"

"""Fixtures for network and cgroup tests: uniquely named network namespaces, a network
store whose default bridge device has a unique name, and leak checks when a test ends."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess

import pytest


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@pytest.fixture
def netns_factory():
    """make() -> the name of a fresh network namespace under /run/netns (deleted afterwards)."""
    made: list[str] = []

    def make() -> str:
        name = f"pbt-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        return name

    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        assert not os.path.exists(f"/run/netns/{name}"), f"netns {name} leaked"


@pytest.fixture
def net_store(tmp_path, monkeypatch):
    """A NetworkStore in tmp_path; afterwards every network it made (and the default bridge's
    device, NAT rules) is gone, and so is every veth the test attached. Only links this test
    made are checked: other test runs may share the host."""
    from pybuild.runtime import nat, network
    from pybuild.runtime.netstore import NetworkStore

    store = NetworkStore(str(tmp_path / "store"), default_bridge=f"pbt{secrets.token_hex(4)}")
    made: set[str] = {store.default_bridge}
    real_attach = network.attach

    def recording_attach(*args, **kwargs):
        ep = real_attach(*args, **kwargs)
        made.add(ep.host_veth)
        return ep

    monkeypatch.setattr(network, "attach", recording_attach)
    yield store
    for net in store.list():
        if net.bridge:
            made.add(net.bridge)
        for cid in list(net.endpoints):
            network.detach(store, net.id, cid)
        if net.name == "bridge":
            nat.remove(net.id, net.subnet, net.bridge)
            network.delete_link(net.bridge)
        elif not net.builtin:
            network.remove_network(store, net.id)
        assert nat.present(net.id) == [], f"iptables rules of {net.name} leaked"
    leaked = made & _links()
    assert not leaked, f"links leaked: {leaked}"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

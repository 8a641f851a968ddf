"""`pyrun network connect|disconnect` on running detached containers: a second network
becomes eth1 with an address in its subnet, peers on it resolve the container by name and
alias, disconnect takes the interface away, Docker's errors, and nothing is left after rm.
Only internal networks made here (no NAT, no traffic leaves the namespaces)."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets

import pytest

from tests.plugins.lifecycle import Pyrun, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def two_nets(image_store):
    pyrun = Pyrun(image_store)
    names = [f"pbt-cn{i}-{secrets.token_hex(2)}" for i in (1, 2)]
    infos = []
    for name in names:
        pyrun.ok("network", "create", "--internal", name)
        infos.append(json.loads(pyrun.ok("network", "inspect", name))[0])
    yield names
    for name, info in zip(names, infos, strict=True):
        pyrun.ok("network", "rm", name)
        assert not os.path.exists(f"/sys/class/net/{info['Options']['com.docker.network.bridge.name']}")


def _ip(pyrun, ctr: str, ifname: str) -> str:
    out = pyrun.ok("exec", ctr, "ip", "-4", "-o", "addr", "show", "dev", ifname)
    return out.split()[3].split("/")[0]


def test_connect_then_disconnect(pyrun_lc, two_nets):
    pyrun = pyrun_lc
    one, two = two_nets
    pyrun.ok("run", "-d", "--name", "a", "--network", one, "busybox", "sleep", "600")
    pyrun.ok("run", "-d", "--name", "b", "--network", two, "busybox", "sleep", "600")
    assert pyrun("exec", "a", "ip", "link", "show", "eth1").returncode != 0
    pyrun.ok("network", "connect", "--alias", "api", two, "a")
    subnet = json.loads(pyrun.ok("network", "inspect", two))[0]["IPAM"]["Config"][0]["Subnet"]
    ip = _ip(pyrun, "a", "eth1")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet)
    # b (on `two`) now knows a by name and alias, and reaches it
    def b_hosts_name_a() -> str:
        hosts = pyrun.ok("exec", "b", "cat", "/etc/hosts")
        return hosts if "api" in hosts.split() else ""

    hosts = wait_for(b_hosts_name_a, "b's hosts to name a")
    assert ip in hosts and "a" in hosts.split()
    assert pyrun("exec", "b", "ping", "-c", "1", "-W", "5", "api").returncode == 0
    members = json.loads(pyrun.ok("network", "inspect", two))[0]["Containers"]
    assert len(members) == 2
    # Docker's errors
    again = pyrun("network", "connect", two, "a")
    assert again.returncode == 1 and "already exists in network" in again.stderr
    missing = pyrun("network", "connect", two, "nope")
    assert missing.returncode == 1 and "No such container" in missing.stderr
    pyrun.ok("network", "disconnect", two, "a")
    assert pyrun("exec", "a", "ip", "link", "show", "eth1").returncode != 0
    assert _ip(pyrun, "a", "eth0")  # its first network is untouched
    wait_for(lambda: "api" not in pyrun.ok("exec", "b", "cat", "/etc/hosts").split(),
             "b's hosts to forget a")
    gone = pyrun("network", "disconnect", two, "a")
    assert gone.returncode == 1 and "is not connected to network" in gone.stderr
    assert pyrun("network", "disconnect", "-f", two, "a").returncode == 0
    # connected again, then rm -f takes it off both networks
    pyrun.ok("network", "connect", two, "a")
    pyrun.ok("rm", "-f", "a", "b")
    for name in (one, two):
        assert not json.loads(pyrun.ok("network", "inspect", name))[0].get("Containers")


def test_connect_refuses_host_and_none(pyrun_lc, two_nets):
    pyrun = pyrun_lc
    pyrun.ok("run", "-d", "--name", "h", "--network", "host", "busybox", "sleep", "600")
    pyrun.ok("run", "-d", "--name", "n", "busybox", "sleep", "600")
    res = pyrun("network", "connect", two_nets[0], "h")
    assert res.returncode == 1 and "host network" in res.stderr
    res = pyrun("network", "connect", two_nets[0], "n")
    assert res.returncode == 1 and "private (none) mode" in res.stderr
    pyrun.ok("stop", "-t", "0", "n")  # stopped: the same refusal (not "not running")
    res = pyrun("network", "connect", two_nets[0], "n")
    assert res.returncode == 1 and "private (none) mode" in res.stderr
    pyrun.ok("rm", "-f", "h", "n")

"""`pyrun network connect|disconnect` of created and stopped containers: the connection is
recorded and applied at the next start (eth1 in the network's subnet), kept across a
restart of a container connected while running, and dropped by disconnect; Docker's errors.
Only internal networks made here."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets

import pytest

from tests.plugins.lifecycle import Pyrun

pytestmark = pytest.mark.root


@pytest.fixture
def nets(image_store):
    pyrun = Pyrun(image_store)
    names = [f"pbt-cs{i}-{secrets.token_hex(2)}" for i in (1, 2)]
    infos = []
    for name in names:
        pyrun.ok("network", "create", "--internal", name)
        infos.append(json.loads(pyrun.ok("network", "inspect", name))[0])
    yield names, [i["IPAM"]["Config"][0]["Subnet"] for i in infos]
    for name, info in zip(names, infos, strict=True):
        pyrun.ok("network", "rm", name)
        bridge = info["Options"]["com.docker.network.bridge.name"]
        assert not os.path.exists(f"/sys/class/net/{bridge}")


def _eth1(pyrun, ctr: str) -> str | None:
    res = pyrun("exec", ctr, "ip", "-4", "-o", "addr", "show", "dev", "eth1")
    return res.stdout.split()[3].split("/")[0] if res.returncode == 0 else None


def _members(pyrun, net: str) -> int:
    return len(json.loads(pyrun.ok("network", "inspect", net))[0].get("Containers") or {})


def test_connect_created_and_stopped_containers(pyrun_lc, nets):
    pyrun = pyrun_lc
    (one, two), (_subnet1, subnet2) = nets
    pyrun.ok("create", "--name", "a", "--network", one, "busybox", "sleep", "600")
    pyrun.ok("network", "connect", "--alias", "api", two, "a")  # created: recorded
    res = pyrun("network", "connect", two, "a")
    assert res.returncode == 1 and f"already exists in network {two}" in res.stderr
    res = pyrun("network", "connect", one, "a")
    assert res.returncode == 1 and "already exists" in res.stderr
    assert _members(pyrun, two) == 0  # nothing runs yet
    seen = pyrun.inspect("a")["NetworkSettings"]["Networks"]
    assert set(seen) == {one, two} and seen[two]["Aliases"] == ["api"]
    assert seen[two]["NetworkID"] and seen[two]["IPAddress"] == ""
    names = pyrun.ok("ps", "-a", "-f", f"network={two}", "--format", "{{.Names}} {{.Networks}}")
    assert names.split() == ["a", ",".join(sorted((one, two)))]

    pyrun.ok("start", "a")
    ip = _eth1(pyrun, "a")
    assert ip is not None and ipaddress.ip_address(ip) in ipaddress.ip_network(subnet2)
    assert pyrun.inspect("a")["NetworkSettings"]["Networks"][two]["IPAddress"] == ip
    members = json.loads(pyrun.ok("network", "inspect", two))[0]["Containers"]
    assert [m["Name"] for m in members.values()] == ["a"]

    # stopped: disconnect drops the record; the next start has no eth1
    pyrun.ok("stop", "-t", "0", "a")
    assert _members(pyrun, two) == 0
    pyrun.ok("network", "disconnect", two, "a")
    res = pyrun("network", "disconnect", two, "a")
    assert res.returncode == 1 and "is not connected to network" in res.stderr
    assert pyrun("network", "disconnect", "-f", two, "a").returncode == 0
    res = pyrun("network", "disconnect", one, "a")
    assert res.returncode == 1 and "the network it was created on" in res.stderr
    pyrun.ok("start", "a")
    assert _eth1(pyrun, "a") is None

    # connected while running: still there after a restart, as in Docker
    pyrun.ok("network", "connect", two, "a")
    assert _eth1(pyrun, "a") is not None
    pyrun.ok("restart", "-t", "0", "a")
    assert _eth1(pyrun, "a") is not None
    pyrun.ok("rm", "-f", "a")
    assert _members(pyrun, two) == 0

    # Docker's errors for stopped containers too
    pyrun.ok("create", "--name", "lonely", "busybox", "true")
    res = pyrun("network", "connect", two, "lonely")
    assert res.returncode == 1 and "private (none) mode" in res.stderr
    pyrun.ok("create", "--name", "hosted", "--network", "host", "busybox", "true")
    res = pyrun("network", "connect", two, "hosted")
    assert res.returncode == 1 and "host network" in res.stderr
    pyrun.ok("rm", "lonely", "hosted")


def test_start_fails_when_a_recorded_network_is_gone(pyrun_lc, nets, image_store):
    pyrun = pyrun_lc
    (one, _two), _ = nets
    extra = f"pbt-cg-{secrets.token_hex(2)}"
    pyrun.ok("network", "create", "--internal", extra)
    pyrun.ok("create", "--name", "b", "--network", one, "busybox", "sleep", "600")
    pyrun.ok("network", "connect", extra, "b")
    pyrun.ok("network", "rm", extra)
    res = pyrun("start", "b")
    assert res.returncode == 1 and f"network {extra}" in res.stderr
    assert pyrun.state("b")["Status"] == "created"
    assert _members(pyrun, one) == 0  # the primary endpoint was undone
    pyrun.ok("rm", "b")

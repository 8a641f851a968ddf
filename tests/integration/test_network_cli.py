"""`pyrun network create|ls|inspect|rm|prune`: Docker's output shapes and exit codes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from pybuild.runtime import nat
from pybuild.runtime.netstore import NetworkStore

pytestmark = pytest.mark.root


@pytest.fixture
def pyrun(tmp_path):
    root = str(tmp_path / "store")
    env = {**os.environ, "PYBUILD_ROOT": root}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args], env=env,
                              input=stdin, capture_output=True, text=True, timeout=60)

    yield run
    for net in NetworkStore(root).list():  # anything a failed test left behind
        if not net.builtin:
            run("network", "rm", net.id)
        if not net.builtin:
            assert not os.path.exists(f"/sys/class/net/{net.bridge}")
        assert nat.present(net.id) == []


def test_create_ls_inspect_rm(pyrun):
    # a random /24: other test runs on this host may hold a fixed one at the same moment
    prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
    res = pyrun("network", "create", "--subnet", f"{prefix}.0/24", "--gateway", f"{prefix}.254",
                "--label", "team=net", "--label", "flag", "pbt-cli")
    assert res.returncode == 0, res.stderr
    net_id = res.stdout.strip()
    assert len(net_id) == 64
    info = json.loads(pyrun("network", "inspect", "pbt-cli").stdout)
    assert len(info) == 1
    obj = info[0]
    assert obj["Name"] == "pbt-cli" and obj["Id"] == net_id and obj["Driver"] == "bridge"
    assert obj["Scope"] == "local" and obj["Labels"] == {"team": "net", "flag": ""}
    assert obj["IPAM"]["Config"] == [{"Subnet": f"{prefix}.0/24", "Gateway": f"{prefix}.254"}]
    assert obj["Containers"] == {}
    bridge = obj["Options"]["com.docker.network.bridge.name"]
    assert os.path.exists(f"/sys/class/net/{bridge}")

    lines = pyrun("network", "ls").stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = [line.split() for line in lines[1:]]
    assert [r[1] for r in rows] == ["bridge", "host", "none", "pbt-cli"]
    assert rows[3] == [net_id[:12], "pbt-cli", "bridge", "local"]
    assert pyrun("network", "ls", "-q").stdout.split()[3] == net_id[:12]
    assert pyrun("network", "ls", "--no-trunc", "-q").stdout.split()[3] == net_id
    fmt = pyrun("network", "ls", "--format", "{{.Name}}:{{.Driver}}").stdout.split()
    assert fmt == ["bridge:bridge", "host:host", "none:null", "pbt-cli:bridge"]
    got = pyrun("network", "inspect", "-f", "{{.Name}} {{.IPAM.Driver}} {{json .Labels}}",
                net_id[:10]).stdout
    assert got == 'pbt-cli default {"flag":"","team":"net"}\n'

    dup = pyrun("network", "create", "pbt-cli")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    res = pyrun("network", "rm", "pbt-cli", "nope")
    assert res.returncode == 1 and res.stdout == "pbt-cli\n" and "nope not found" in res.stderr
    assert not os.path.exists(f"/sys/class/net/{bridge}")
    assert nat.present(net_id) == []


def test_errors_and_builtins(pyrun):
    res = pyrun("network", "rm", "bridge")
    assert res.returncode == 1 and "pre-defined network" in res.stderr
    assert pyrun("network", "rm", "-f", "ghost").returncode == 0
    for args, message in [
        (("--subnet", "10.0.0.0/33", "x"), "invalid subnet"),
        (("-d", "overlay", "x"), "plugin"),
        (("bad name",), "invalid network name"),
    ]:
        res = pyrun("network", "create", *args)
        assert res.returncode == 1 and message in res.stderr, res.stderr
    res = pyrun("network", "inspect", "nope")
    assert res.returncode == 1 and json.loads(res.stdout) == []
    assert pyrun("network", "bogus").returncode != 0
    host = json.loads(pyrun("network", "inspect", "host").stdout)[0]
    assert host["Driver"] == "host" and host["IPAM"]["Config"] == []


def test_prune(pyrun):
    for name in ("pbt-p1", "pbt-p2"):
        assert pyrun("network", "create", name).returncode == 0
    res = pyrun("network", "prune", stdin="n\n")
    assert "Are you sure" in res.stdout and "Deleted" not in res.stdout
    assert len(pyrun("network", "ls", "-q").stdout.split()) == 5
    res = pyrun("network", "prune", "-f")
    assert res.returncode == 0
    assert res.stdout.splitlines() == ["Deleted Networks:", "pbt-p1", "pbt-p2"]
    assert len(pyrun("network", "ls", "-q").stdout.split()) == 3


def test_filters_internal_and_bridge_name(pyrun):
    import secrets

    dev = f"pbt{secrets.token_hex(4)}"
    res = pyrun("network", "create", "--internal", "-o", f"com.docker.network.bridge.name={dev}",
                "--label", "tier=back", "pbt-int")
    assert res.returncode == 0, res.stderr
    assert pyrun("network", "create", "--label", "tier=front", "pbt-ext").returncode == 0
    assert os.path.exists(f"/sys/class/net/{dev}")
    obj = json.loads(pyrun("network", "inspect", "pbt-int").stdout)[0]
    assert obj["Internal"] is True and obj["Options"] == {"com.docker.network.bridge.name": dev}
    rules = nat.present(obj["Id"])
    assert rules and not any("MASQUERADE" in r for r in rules)

    def names(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("--filter", f)]
        res = pyrun("network", "ls", *args, "--format", "{{.Name}}")
        assert res.returncode == 0, res.stderr
        return res.stdout.split()

    assert names("name=pbt-") == ["pbt-ext", "pbt-int"]
    assert names("type=builtin") == ["bridge", "host", "none"]
    assert names("type=custom", "label=tier=back") == ["pbt-int"]
    assert names("label=tier") == ["pbt-ext", "pbt-int"]
    assert names("driver=null") == ["none"]
    assert names("name=pbt-int", "name=pbt-ext") == ["pbt-ext", "pbt-int"]
    assert names(f"id={obj['Id'][:6]}") == ["pbt-int"]
    for bad in ("nope=1", "type=weird", "name"):
        assert pyrun("network", "ls", "--filter", bad).returncode == 125
    res = pyrun("network", "create", "-o", "com.docker.network.driver.mtu=9000", "pbt-mtu")
    assert res.returncode == 1 and "unsupported driver option" in res.stderr
    res = pyrun("network", "create", "-o", f"com.docker.network.bridge.name={dev}", "pbt-dup")
    assert res.returncode == 1 and "already exists" in res.stderr
    assert pyrun("network", "rm", "pbt-int", "pbt-ext").returncode == 0
    assert not os.path.exists(f"/sys/class/net/{dev}")
    assert nat.present(obj["Id"]) == []

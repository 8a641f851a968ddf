"""`ps -f` on networks, volumes and ports (network=, volume=, publish=, expose=), the
swarm/Windows filters with one answer here (is-task=, isolation=), id= as Docker's regular
expression, and their errors."""

from __future__ import annotations

import json
import os
import secrets

import pytest

from tests.plugins.lifecycle import Pyrun
from tests.plugins.netcg import free_port

pytestmark = pytest.mark.root


@pytest.fixture
def psnet(image_store):
    pyrun = Pyrun(image_store)
    name = f"pbt-ps-{secrets.token_hex(3)}"
    pyrun.ok("network", "create", "--internal", name)
    info = json.loads(pyrun.ok("network", "inspect", name))[0]
    yield name, info["Id"]
    pyrun.ok("network", "rm", name)
    assert not os.path.exists(
        f"/sys/class/net/{info['Options']['com.docker.network.bridge.name']}")


def test_network_volume_and_port_filters(pyrun_lc, psnet, tmp_path):
    pyrun = pyrun_lc
    net, net_id = psnet
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    pyrun.ok("volume", "create", "psvol")
    pyrun.ok("run", "-d", "--name", "web", "--network", net, "--expose", "9000",
             "-p", f"127.0.0.1:{port}:80", "-v", "psvol:/cache", "busybox", "sleep", "100")
    pyrun.ok("run", "-d", "--name", "lone", "-v", f"{data}:/data", "-v", "/anon",
             "busybox", "sleep", "100")
    pyrun.ok("create", "--name", "later", "--network", net, "busybox", "true")

    def names(*filters):
        args = [a for f in filters for a in ("-f", f)]
        return pyrun.ok("ps", "-a", *args, "--format", "{{.Names}}").split()

    assert names(f"network={net}") == ["later", "web"]  # created ones too
    assert names(f"network={net_id[:10]}") == ["later", "web"]
    assert names("network=none") == ["lone"]
    assert names("network=nosuchnet") == []
    assert names("volume=psvol") == ["web"]
    assert names("volume=/cache") == ["web"]
    assert names(f"volume={data}") == ["lone"]
    assert names("volume=/anon", "volume=/data") == ["lone"]
    assert names("volume=/nowhere") == []
    # publish= matches the host port, expose= the container port, of running containers
    assert names(f"publish={port}") == ["web"]
    assert names(f"publish={port}/tcp") == ["web"]
    assert names(f"publish={port}/udp") == []
    assert names("publish=80") == []
    assert names("expose=80") == ["web"]
    assert names("expose=9000") == ["web"]  # exposed, not published
    assert names("expose=8990-9010/tcp") == ["web"]
    assert names("expose=22") == []
    assert names("is-task=false") == ["later", "lone", "web"]
    assert names("is-task=true") == []
    assert names("isolation=default") == ["later", "lone", "web"]
    web = pyrun.inspect("web")["Id"]
    assert names(f"id={web[20:30]}") == ["web"]  # a regular expression found in the id
    assert names(f"id={web}") == ["web"]
    pyrun.ok("rm", "-f", "web", "lone", "later")
    pyrun.ok("volume", "rm", "psvol")


@pytest.mark.parametrize(("value", "message"), [
    ("publish=127.0.0.1:80", "filter for 'publish' should not contain ':': 127.0.0.1:80"),
    ("expose=http", "error while looking up for expose http"),
    ("expose=90-80", "error while looking up for expose 90-80"),
    ("is-task=maybe", "invalid filter 'is-task=maybe'"),
    ("isolation=hyperv", "Unrecognised filter value for isolation: hyperv"),
])
def test_filter_errors(pyrun_lc, value, message):
    res = pyrun_lc("ps", "-f", value)
    assert res.returncode == 1 and message in res.stderr, res.stderr

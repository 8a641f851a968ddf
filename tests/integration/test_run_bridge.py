"""`pyrun run --network NET -p ...` on the built-in runtime: the container gets a veth on a
user network made here, a published port reaches a server inside through 127.0.0.1, and when
pyrun ends (SIGTERM, or SIGKILL and a later pyrun's reaping) no veth, proxy process or
endpoint record is left. Only 127.0.0.1 and namespaces made here are contacted."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.plugins.netcg import free_port

pytestmark = pytest.mark.root


def _cmd(*args):
    return [sys.executable, "-m", "pybuild.cli.pyrun", *args]


def pyrun(root, *args):
    return subprocess.run(_cmd(*args), env={**os.environ, "PYBUILD_ROOT": root},
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def user_net(image_store):
    """An internal (no NAT) user network with a unique name in the test's store; removed
    afterwards, and checked gone."""
    name = f"pbt-run-{secrets.token_hex(3)}"
    res = pyrun(image_store, "network", "create", "--internal", name)
    assert res.returncode == 0, res.stderr
    info = json.loads(pyrun(image_store, "network", "inspect", name).stdout)[0]
    bridge = info["Options"]["com.docker.network.bridge.name"]
    yield name, info["IPAM"]["Config"][0]["Subnet"]
    res = pyrun(image_store, "network", "rm", name)
    assert res.returncode == 0, res.stderr
    assert not os.path.exists(f"/sys/class/net/{bridge}")


def _endpoints(root: str, name: str) -> dict:
    for entry in os.listdir(os.path.join(root, "networks")):
        if entry.endswith(".json"):
            with open(os.path.join(root, "networks", entry)) as f:
                net = json.load(f)
            if net["name"] == name:
                return net["endpoints"]
    raise AssertionError(f"network {name} not found")


def _running_state(root: str) -> dict:
    cdir = os.path.join(root, "containers")
    for entry in os.listdir(cdir):
        path = os.path.join(cdir, entry, "state.json")
        if len(entry) == 64 and os.path.exists(path):
            with open(path) as f:
                state = json.load(f)
            if state.get("network") and state.get("pid"):
                return state
    return {}


def _alive(pid: int, start: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19] == start
    except OSError:
        return False


def _wait_for(fn, what: str, limit: float = 30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _fetch(port: int) -> str:
    def get():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""
    return _wait_for(get, "the page through the published port")


def test_container_on_a_user_network_gets_eth0_in_the_subnet(image_store, user_net):
    name, subnet = user_net
    res = pyrun(image_store, "run", "--rm", "--network", name, "busybox", "sh", "-c",
                "ip -4 -o addr show eth0; cat /etc/hosts; hostname")
    assert res.returncode == 0, res.stderr
    addr = res.stdout.split("inet ", 1)[1].split()[0]
    ip = ipaddress.ip_interface(addr)
    assert ip.network == ipaddress.ip_network(subnet)
    assert f"{ip.ip}\t{res.stdout.split()[-1]}" in res.stdout  # own name in /etc/hosts
    assert _endpoints(image_store, name) == {}


def _serve(image_store, tmp_path, name):
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the bridge\n")
    port = free_port()
    # sh as pid 1 with a TERM trap: a pid 1 without a handler ignores SIGTERM (as in Docker)
    proc = subprocess.Popen(
        _cmd("run", "--rm", "--network", name, "-p", f"127.0.0.1:{port}:80",
             "-v", f"{www}:/www", "busybox", "sh", "-c",
             'trap "exit 0" TERM; httpd -f -p 80 -h /www & wait'),
        env={**os.environ, "PYBUILD_ROOT": image_store}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def _assert_gone(image_store, name, state):
    ep = state["network"]["endpoint"]
    proxy = state["network"]["proxy"]
    assert not os.path.exists(f"/sys/class/net/{ep['host_veth']}")
    assert proxy is None or not _alive(proxy["pid"], proxy["start_time"])
    assert _endpoints(image_store, name) == {}


def test_published_port_then_sigterm_leaves_nothing(image_store, user_net, tmp_path):
    name, _subnet = user_net
    proc, port = _serve(image_store, tmp_path, name)
    try:
        assert _fetch(port) == "hello from the bridge\n"
        state = _wait_for(lambda: _running_state(image_store), "the container's state")
        ep = state["network"]["endpoint"]
        assert os.path.exists(f"/sys/class/net/{ep['host_veth']}")
        assert list(_endpoints(image_store, name)) == [state["id"]]
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    _assert_gone(image_store, name, state)
    assert not os.path.exists(os.path.join(image_store, "containers", state["id"]))


def test_killed_pyrun_is_reaped_by_the_next_one(image_store, user_net, tmp_path):
    name, _subnet = user_net
    proc, port = _serve(image_store, tmp_path, name)
    try:
        assert _fetch(port) == "hello from the bridge\n"
        state = _wait_for(lambda: _running_state(image_store), "the container's state")
        proc.kill()  # no clean-up by this pyrun: the next one reaps it
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    res = pyrun(image_store, "run", "--rm", "busybox", "true")
    assert res.returncode == 0, res.stderr
    _wait_for(lambda: not _alive(state["pid"], state["pid_start"]), "the container to die")
    _assert_gone(image_store, name, state)


def test_bad_network_requests(image_store, user_net):
    name, _subnet = user_net
    res = pyrun(image_store, "run", "--rm", "--runtime", "runc", "--network", name,
                "busybox", "true")
    assert res.returncode == 125
    assert f"--network {name} is not supported with --runtime runc" in res.stderr
    res = pyrun(image_store, "run", "--rm", "--network", f"{name}-missing", "busybox", "true")
    assert res.returncode == 125 and "not found" in res.stderr
    res = pyrun(image_store, "run", "--rm", "--network", name, "-p", "99999:80", "busybox", "true")
    assert res.returncode == 125
    res = pyrun(image_store, "run", "--rm", "--network", "host", "-p", "80", "busybox", "true")
    assert res.returncode == 0
    assert "WARNING: Published ports are discarded when using host network mode" in res.stderr
    assert _endpoints(image_store, name) == {}
    assert [e for e in os.listdir(os.path.join(image_store, "containers")) if len(e) == 64] == []


def test_peers_find_each_other_by_name_and_alias(image_store, user_net, tmp_path):
    name, _subnet = user_net
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("peer page\n")
    server_name = f"srv-{secrets.token_hex(3)}"
    proc = subprocess.Popen(
        _cmd("run", "--rm", "--name", server_name, "--network", name, "--network-alias", "web",
             "-v", f"{www}:/www", "busybox", "sh", "-c",
             'trap "exit 0" TERM; httpd -f -p 80 -h /www & wait'),
        env={**os.environ, "PYBUILD_ROOT": image_store}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        state = _wait_for(lambda: _running_state(image_store), "the server's state")
        hosts = os.path.join(image_store, "containers", state["id"], "hosts")
        res = pyrun(image_store, "run", "--rm", "--network", name, "busybox", "sh", "-c",
                    f"wget -qO- http://web/index.html && wget -qO- http://{server_name}/ && "
                    "cat /etc/hosts")
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("peer page\npeer page\n")
        assert f"{state['network']['endpoint']['ipv4']}\t{server_name} web" in res.stdout
        with open(hosts) as f:
            assert "# pybuild: peers" not in f.read()  # the client left: its line is gone
        assert pyrun(image_store, "run", "--rm", "--network", "bridge", "--network-alias", "x",
                     "busybox", "true").returncode == 125
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    _assert_gone(image_store, name, {"network": {**state["network"], "proxy": None}})

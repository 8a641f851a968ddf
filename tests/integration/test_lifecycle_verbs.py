"""More of Docker's container verbs on detached busybox containers: ps columns, filters and
--format, inspect's shape, attach with detach keys (on a pty, through pexpect), and a busybox
httpd published on 127.0.0.1 from a user network that leaves no veth or proxy after rm -f."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import sys
import urllib.request

import pytest

from tests.plugins.lifecycle import wait_for
from tests.plugins.netcg import free_port

pytestmark = pytest.mark.root


def test_ps_columns_filters_and_format(pyrun_lc):
    pyrun = pyrun_lc
    alpha = pyrun.ok("run", "-d", "--name", "alpha", "-l", "tier=web", "busybox",
                     "sleep", "100").strip()
    beta = pyrun.ok("run", "-d", "--name", "beta", "-l", "tier=db", "busybox", "sh", "-c",
                    "exit 3").strip()
    assert pyrun.ok("wait", "beta") == "3\n"
    gamma = pyrun.ok("create", "--name", "gamma", "busybox", "true").strip()

    def q(*args):
        return pyrun.ok("ps", "-q", *args).split()

    assert q() == [alpha[:12]]
    assert q("-a") == [gamma[:12], beta[:12], alpha[:12]]  # newest first
    assert q("-n", "2") == [gamma[:12], beta[:12]]
    assert q("-l") == [gamma[:12]]
    assert q("-a", "--no-trunc") == [gamma, beta, alpha]
    assert q("-f", "status=exited") == [beta[:12]]
    assert q("-f", "status=created") == [gamma[:12]]
    assert q("-f", "status=created", "-f", "status=running") == [gamma[:12], alpha[:12]]
    assert q("-a", "-f", "name=alp") == [alpha[:12]]
    assert q("-a", "-f", "label=tier") == [beta[:12], alpha[:12]]
    assert q("-a", "-f", "label=tier=db") == [beta[:12]]
    assert q("-a", "-f", f"id={beta[:5]}") == [beta[:12]]
    assert q("-a", "-f", "exited=3") == [beta[:12]]
    assert q("-a", "-f", "ancestor=busybox:latest") == [gamma[:12], beta[:12], alpha[:12]]
    assert q("-a", "-f", "ancestor=nothing:here") == []
    assert q("-a", "-f", "label=tier", "-f", "status=running") == [alpha[:12]]
    res = pyrun("ps", "-f", "colour=red")
    assert res.returncode == 1 and "invalid filter" in res.stderr  # a daemon error

    table = pyrun.ok("ps", "-a").splitlines()
    header = table[0]
    for col in ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"):
        assert col in header
    rows = {line.split()[-1]: line for line in table[1:]}
    assert '"sleep 100"' in rows["alpha"] and "Up " in rows["alpha"]
    assert "Exited (3) " in rows["beta"] and " ago " in rows["beta"]
    assert "Created" in rows["gamma"]
    # columns line up under their headers (Docker's tabwriter)
    status_at = header.index("STATUS")
    assert rows["gamma"][status_at:].startswith("Created")

    out = pyrun.ok("ps", "-a", "--format", "{{.Names}}\\t{{.State}}\\t{{.Label \"tier\"}}")
    assert out.splitlines() == ["gamma\tcreated\t", "beta\texited\tdb", "alpha\trunning\tweb"]
    out = pyrun.ok("ps", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.Image}}")
    lines = out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "NAMES", "IMAGE"]
    assert lines[1].split() == [alpha[:12], "alpha", "busybox"]
    one = json.loads(pyrun.ok("ps", "--format", "{{json .}}"))
    assert one["Names"] == "alpha" and one["Labels"] == "tier=web"
    assert pyrun("ps", "--format", "{{.Nope}}").returncode == 1
    sized = pyrun.ok("ps", "-s").splitlines()
    assert sized[0].rstrip().endswith("SIZE") and "(virtual " in sized[1]
    # prune asks first; --filter narrows it; running containers stay
    out = pyrun.ok("container", "prune", input="n\n")
    assert "Are you sure you want to continue? [y/N]" in out
    assert len(q("-a")) == 3
    out = pyrun.ok("container", "prune", "-f", "--filter", "label=tier=db")
    assert out.splitlines()[:2] == ["Deleted Containers:", beta]
    assert q("-a") == [gamma[:12], alpha[:12]]
    assert pyrun("container", "prune", "-f", "--filter", "status=exited").returncode == 1
    pyrun.ok("rm", "-f", "alpha", "gamma")


def test_inspect_shape(pyrun_lc, tmp_path):
    pyrun = pyrun_lc
    data = tmp_path / "data"
    data.mkdir()
    pyrun.ok("run", "-d", "--name", "insp", "-l", "k=v", "-e", "A=1", "--restart",
             "on-failure:3", "-v", f"{data}:/data:ro", "busybox", "sleep", "100")
    info = pyrun.inspect("insp")
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "Name", "RestartCount",
                "Config", "HostConfig", "Mounts", "NetworkSettings", "LogPath"):
        assert key in info, key
    assert set(info["State"]) >= {"Status", "Running", "Paused", "Restarting", "OOMKilled",
                                  "Dead", "Pid", "ExitCode", "Error", "StartedAt",
                                  "FinishedAt"}
    assert info["Name"] == "/insp" and len(info["Id"]) == 64
    assert info["Path"] == "sleep" and info["Args"] == ["100"]
    assert info["State"]["Running"] and info["State"]["Pid"] > 0
    assert info["State"]["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert info["Image"].startswith("sha256:")
    assert info["Config"]["Labels"] == {"k": "v"} and "A=1" in info["Config"]["Env"]
    assert info["Config"]["Image"] == "busybox" and info["Config"]["Cmd"] == ["sleep", "100"]
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    mount = next(m for m in info["Mounts"] if m["Destination"] == "/data")
    assert mount["Source"] == str(data) and mount["RW"] is False
    assert "none" in info["NetworkSettings"]["Networks"]
    assert os.path.exists(info["LogPath"])
    assert pyrun.ok("inspect", "-f", "{{.State.Status}} {{.Config.Labels.k}}", "insp") == \
        "running v\n"
    assert json.loads(pyrun.ok("container", "inspect", "insp"))[0]["Id"] == info["Id"]
    res = pyrun("inspect", "insp", "ghost")
    assert res.returncode == 1 and "No such object: ghost" in res.stderr
    assert json.loads(res.stdout)[0]["Name"] == "/insp"
    res = pyrun("container", "inspect", "ghost")
    assert res.returncode == 1 and "No such container: ghost" in res.stderr
    pyrun.ok("stop", "-t", "0", "insp")
    state = pyrun.state("insp")
    assert state["Status"] == "exited" and state["Pid"] == 0 and state["ExitCode"] == 137
    assert state["FinishedAt"] != "0001-01-01T00:00:00Z"
    pyrun.ok("rm", "insp")


def test_attach_detach_keys(pyrun_lc):
    pexpect = pytest.importorskip("pexpect")
    pyrun = pyrun_lc
    pyrun.ok("run", "-d", "-it", "--name", "tty", "busybox", "sh")
    env = {**os.environ, "PYBUILD_ROOT": pyrun.root}
    child = pexpect.spawn(sys.executable, ["-m", "pybuild.cli.pyrun", "attach", "tty"],
                          env=env, timeout=20, dimensions=(30, 100))
    child.sendline("echo hel''lo")
    child.expect("hello")
    # the container's terminal takes our window size, and follows its changes
    child.sendline("stty size | tr ' ' x")
    child.expect("30x100")
    child.setwinsize(40, 120)
    child.sendline("stty size | tr ' ' x")
    child.expect("40x120")
    child.send("\x10\x11")  # Ctrl-P Ctrl-Q
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert pyrun.state("tty")["Running"]  # detaching leaves it running
    child = pexpect.spawn(sys.executable, ["-m", "pybuild.cli.pyrun", "attach",
                                           "--detach-keys", "ctrl-x,y", "tty"],
                          env=env, timeout=20)
    child.sendline("echo again$((1+1))")
    child.expect("again2")
    child.sendline("exit 3")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3  # attach ends with the container's exit code
    wait_for(lambda: pyrun.state("tty")["Status"] == "exited", "the container to exit")
    res = pyrun("attach", "tty")
    assert res.returncode == 1 and "start it first" in res.stderr
    assert pyrun("attach", "--detach-keys", "ctrl-", "tty").returncode in (1, 125)
    # what the terminal showed is in the log too
    assert "again2" in pyrun.ok("logs", "tty")
    pyrun.ok("rm", "tty")


@pytest.fixture
def user_net(image_store):
    from tests.plugins.lifecycle import Pyrun

    pyrun = Pyrun(image_store)
    name = f"pbt-lc-{secrets.token_hex(3)}"
    pyrun.ok("network", "create", "--internal", name)
    info = json.loads(pyrun.ok("network", "inspect", name))[0]
    bridge = info["Options"]["com.docker.network.bridge.name"]
    yield name, info["IPAM"]["Config"][0]["Subnet"]
    pyrun.ok("network", "rm", name)
    assert not os.path.exists(f"/sys/class/net/{bridge}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_detached_httpd_published_port_then_rm_f(pyrun_lc, user_net, tmp_path):
    pyrun = pyrun_lc
    name, subnet = user_net
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from a detached httpd\n")
    port = free_port()
    cid = pyrun.ok("run", "-d", "--name", "web", "--network", name, "--expose", "8080", "-p",
                   f"127.0.0.1:{port}:80", "-v", f"{www}:/www", "busybox", "httpd", "-f",
                   "-p", "80", "-h", "/www").strip()

    def get():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    assert wait_for(get, "the page") == "hello from a detached httpd\n"
    assert f"127.0.0.1:{port}->80/tcp, 8080/tcp " in pyrun.ok("ps")
    assert pyrun.ok("port", "web") == f"80/tcp -> 127.0.0.1:{port}\n"
    assert pyrun.ok("port", "web", "80") == f"127.0.0.1:{port}\n"
    assert pyrun("port", "web", "81").returncode == 1
    net = pyrun.inspect("web")["NetworkSettings"]
    assert net["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert net["Ports"]["8080/tcp"] is None
    ip = net["Networks"][name]["IPAddress"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet)
    with open(os.path.join(pyrun.root, "containers", cid, "state.json")) as f:
        state = json.load(f)
    veth = state["network"]["endpoint"]["host_veth"]
    proxy_pid = state["network"]["proxy"]["pid"]
    assert os.path.exists(f"/sys/class/net/{veth}") and _alive(proxy_pid)
    assert pyrun.ok("rm", "-f", "web") == "web\n"
    assert not os.path.exists(f"/sys/class/net/{veth}")
    wait_for(lambda: not _alive(proxy_pid), "the port proxy to end")
    assert get() == ""
    nets = json.loads(pyrun.ok("network", "inspect", name))[0]
    assert not nets.get("Containers")


def test_killed_supervisor_with_network_and_limits_leaves_nothing(pyrun_lc, user_net):
    from tests.plugins.lifecycle import processes_of

    pyrun = pyrun_lc
    name, _subnet = user_net
    port = free_port()
    cid = pyrun.ok("run", "-d", "--network", name, "-p", f"127.0.0.1:{port}:80",
                   "--pids-limit", "32", "-m", "64m", "busybox", "sleep", "1000").strip()
    with open(os.path.join(pyrun.root, "containers", cid, "state.json")) as f:
        state = json.load(f)
    veth = state["network"]["endpoint"]["host_veth"]
    proxy_pid = state["network"]["proxy"]["pid"]
    cgroups = list(state["cgroup"]["paths"].values()) if isinstance(
        state["cgroup"]["paths"], dict) else list(state["cgroup"]["paths"])
    assert cgroups and all(os.path.isdir(p) for p in cgroups)
    supervisor = state["supervisor"]["pid"]
    os.kill(supervisor, 9)
    wait_for(lambda: not processes_of(pyrun.root), "the container to die with its keeper")
    # the next pyrun notices and undoes everything the dead supervisor held
    assert "Exited (137)" in pyrun.ok("ps", "-a")
    assert not os.path.exists(f"/sys/class/net/{veth}")
    wait_for(lambda: not _alive(proxy_pid), "the port proxy to end")
    assert not any(os.path.isdir(p) for p in cgroups)
    assert not json.loads(pyrun.ok("network", "inspect", name))[0].get("Containers")
    pyrun.ok("rm", cid)

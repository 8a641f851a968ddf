"""`pyrun exec` into a running container: its hostname, files, pid namespace, env, user,
working directory, cgroup, capabilities, terminal, and Docker's exit codes."""

from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

pytestmark = pytest.mark.root


def test_exec_sees_the_container(run_container):
    c = run_container("-e", "FROM_RUN=yes", "-h", "box1",
                      cmd=("sh", "-c", "echo made-by-init > /tmp/mark; exec sleep 1000"))
    c.wait_for(lambda: c.cmdline() == ["sleep", "1000"])
    res = c.pyrun("exec", c.name, "sh", "-c",
                  "hostname; cat /tmp/mark; echo $FROM_RUN $HOSTNAME; ps -o pid,args | "
                  "awk '$1 == 1'; readlink /proc/1/ns/pid; readlink /proc/self/ns/pid")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:3] == ["box1", "made-by-init", "yes box1"]
    assert lines[3].split() == ["1", "sleep", "1000"]  # pid 1 is the container's command
    assert lines[4] == lines[5]  # same pid namespace
    assert lines[4] == os.readlink(f"/proc/{c.pid}/ns/pid")
    # the exec'd process writes where the container does (its upper dir)
    assert c.pyrun("exec", c.id[:10], "sh", "-c", "echo from-exec > /tmp/x").returncode == 0
    with open(os.path.join(c.dir, "upper", "tmp", "x")) as f:
        assert f.read() == "from-exec\n"


def test_exec_joins_the_cgroup_and_keeps_the_limits(run_container):
    c = run_container("--pids-limit", "20", "-m", "64m")
    res = c.pyrun("exec", c.name, "sh", "-c", "cat /proc/1/cgroup; echo --; cat /proc/self/cgroup")
    init_view, own_view = res.stdout.split("--\n")
    assert init_view.strip() and init_view == own_view  # the same cgroups as pid 1
    with open(f"/proc/{c.pid}/cgroup") as f:  # the host's view: the container's own cgroup
        host = {line.split(":")[1]: line.rstrip().split(":")[2] for line in f}
    limited = [host[k] for k in host if {"memory", "pids", ""} & set(k.split(","))]
    assert any(path.endswith(f"/pybuild/{c.id}") for path in limited), host
    # caps and no_new_privs as the container's first process
    with open(f"/proc/{c.pid}/status") as f:
        init = {k: v.strip() for k, v in (line.split(":", 1) for line in f)}
    res = c.pyrun("exec", c.name, "cat", "/proc/self/status")
    mine = {k: v.strip() for k, v in (line.split(":", 1) for line in res.stdout.splitlines())}
    for key in ("CapBnd", "CapEff", "CapPrm", "NoNewPrivs"):
        assert mine[key] == init[key], key
    res = c.pyrun("exec", "--privileged", c.name, "cat", "/proc/self/status")
    assert "NoNewPrivs:\t0" in res.stdout
    priv = next(line for line in res.stdout.splitlines() if line.startswith("CapEff"))
    assert int(priv.split()[1], 16) > int(init["CapEff"], 16)


def test_exec_user_workdir_env_and_exit_codes(run_container, tmp_path):
    c = run_container("-e", "KEEP=1", "-e", "OVER=old")
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=f\n")
    res = c.pyrun("exec", "-u", "nobody", "-w", "/tmp", "-e", "OVER=new",
                  "--env-file", str(env_file), c.name, "sh", "-c",
                  "id -u; id -g; pwd; echo $KEEP $OVER $FROM_FILE $HOME")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["65534", "65534", "/tmp", "1 new f /home"]
    res = c.pyrun("exec", "-u", "1234:5678", c.name, "sh", "-c", "id -u; id -g")
    assert res.stdout.split() == ["1234", "5678"]
    assert c.pyrun("exec", c.name, "sh", "-c", "exit 3").returncode == 3
    res = c.pyrun("exec", c.name, "no-such-command")
    assert res.returncode == 127 and "executable file not found" in res.stderr
    res = c.pyrun("exec", c.name, "/etc/passwd")
    assert res.returncode == 126 and "permission denied" in res.stderr
    res = c.pyrun("exec", "-u", "nosuchuser", c.name, "true")
    assert res.returncode == 126 and "unable to find user nosuchuser" in res.stderr
    res = c.pyrun("exec", "-w", "/no/such/dir", c.name, "true")
    assert res.returncode == 126 and "/no/such/dir" in res.stderr
    res = c.pyrun("exec", "-w", "relative", c.name, "true")
    assert res.returncode == 1 and "absolute path" in res.stderr  # an engine error
    assert c.pyrun("exec", "-d", "-t", c.name, "true").returncode == 1
    assert c.pyrun("exec", c.name).returncode == 125  # no command


def test_exec_stdin_and_detach(run_container):
    c = run_container()
    res = c.pyrun("exec", "-i", c.name, "sh", "-c", "cat; echo end", input="piped\n")
    assert res.stdout == "piped\nend\n"
    res = c.pyrun("exec", c.name, "sh", "-c", "cat; echo end", input="not read\n")
    assert res.stdout == "end\n"  # without -i stdin is empty
    res = c.pyrun("exec", "-d", c.name, "sh", "-c", "sleep 0.2; echo late > /tmp/late")
    assert res.returncode == 0 and res.stdout == ""
    late = os.path.join(c.dir, "upper", "tmp", "late")
    deadline = time.monotonic() + 10
    while not os.path.exists(late) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open(late).read() == "late\n"
    assert c.pyrun("exec", "-d", c.name, "no-such-command").returncode == 127


def test_exec_errors_for_missing_and_stopped_containers(run_container):
    c = run_container()
    res = c.pyrun("exec", "no-such-container", "true")
    assert res.returncode == 1 and "No such container: no-such-container" in res.stderr
    c.stop()
    res = c.pyrun("exec", c.name, "true")
    assert res.returncode == 1 and f"Container {c.id} is not running" in res.stderr


def test_exec_it_allocates_a_terminal(run_container):
    pexpect = pytest.importorskip("pexpect")
    c = run_container()
    child = pexpect.spawn(sys.executable, ["-m", "pybuild.cli.pyrun", "exec", "-it", c.name, "sh"],
                          env={**os.environ, "PYBUILD_ROOT": c.root}, timeout=30,
                          dimensions=(33, 101))
    try:
        child.sendline("tty; stty size; echo TERM=$TERM")
        child.expect(r"/dev/pts/\d+")
        child.expect("33 101")
        child.expect("TERM=xterm")
        child.setwinsize(40, 120)
        child.sendline("stty size")
        child.expect("40 120")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5


def test_exec_top_pause_with_runc(run_container):
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    c = run_container("--runtime", "runc", "-h", "rbox")
    res = c.pyrun("exec", c.name, "sh", "-c", "hostname; ps -o pid,args | awk '$1 == 1'")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["rbox", "1", "sleep", "1000"]
    res = c.pyrun("top", c.name)
    assert [line.split(None, 7)[7] for line in res.stdout.splitlines()[1:]] == ["sleep 1000"]
    assert c.pyrun("pause", c.name).returncode == 0
    assert c.pyrun("exec", c.name, "true").returncode == 1
    assert c.pyrun("unpause", c.name).returncode == 0
    assert c.pyrun("exec", c.name, "true").returncode == 0
    assert c.pyrun("kill", c.name).returncode == 0
    assert c.proc.wait(timeout=30) == 137


def test_exec_passes_signals_on(run_container):
    import signal
    import subprocess

    c = run_container()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pybuild.cli.pyrun", "exec", c.name, "sh", "-c",
         "trap 'echo got-term; exit 3' TERM; echo ready; sleep 1000 >/dev/null & wait"],
        env={**os.environ, "PYBUILD_ROOT": c.root}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 3
        assert proc.stdout.read() == "got-term\n"
    finally:
        proc.stdout.close()

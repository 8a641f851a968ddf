"""`pyrun top`, `stats`, `pause`/`unpause`, and the limits seen from outside: an OOM kill
recorded as OOMKilled with exit 137, a pids limit that stops a fork loop."""

from __future__ import annotations

import os
import time

import pytest

from tests.plugins.running import pyrun_cmd

pytestmark = pytest.mark.root


def test_top_lists_the_container_processes(run_container):
    c = run_container(cmd=("sh", "-c", "sleep 1000 & sleep 1001 & wait"))
    c.wait_for(lambda: len(c.members()) == 3)
    res = c.pyrun("top", c.name)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = [line.split(None, 7) for line in lines[1:]]
    assert {int(r[1]) for r in rows} == c.members()  # host pids
    cmds = sorted(r[7] for r in rows)
    assert cmds == ["sh -c sleep 1000 & sleep 1001 & wait", "sleep 1000", "sleep 1001"]
    assert next(r for r in rows if int(r[1]) == c.pid)[7].startswith("sh -c")
    res = c.pyrun("top", c.name, "-o", "pid,comm")
    assert res.stdout.split()[:2] == ["PID", "COMMAND"] and len(res.stdout.splitlines()) == 4
    res = c.pyrun("top", c.name, "-o", "comm")
    assert res.returncode == 1 and "PID field" in res.stderr
    res = c.pyrun("top", c.name, "--no-such-ps-option")
    assert res.returncode == 1 and "ps:" in res.stderr
    c.stop()
    res = c.pyrun("top", c.name)
    assert res.returncode == 1 and "is not running" in res.stderr


def test_stats_no_stream_shows_the_limit_and_counters(run_container):
    c = run_container("-m", "48m", cmd=("sh", "-c", "sleep 1000 & sleep 1000"))
    other = run_container()
    c.wait_for(lambda: len(c.members()) == 2)
    res = c.pyrun("stats", "--no-stream", c.name)
    assert res.returncode == 0, res.stderr
    header, row = res.stdout.splitlines()
    assert header.split() == ("CONTAINER ID NAME CPU % MEM USAGE / LIMIT MEM % NET I/O "
                              "BLOCK I/O PIDS").split()
    cells = row.split()
    assert cells[0] == c.id[:12] and cells[1] == c.name
    assert cells[2].endswith("%") and cells[4] == "/" and cells[5] == "48MiB"
    assert cells[-1] == "2"  # sh and sleep
    res = c.pyrun("stats", "--no-stream", "--no-trunc")
    ids = {line.split()[0] for line in res.stdout.splitlines()[1:]}
    assert ids == {c.id, other.id}  # every running container
    other.stop()
    res = c.pyrun("stats", "--no-stream")
    assert [line.split()[0] for line in res.stdout.splitlines()[1:]] == [c.id[:12]]
    res = c.pyrun("stats", "--no-stream", "-a")
    rows = {line.split()[0]: line.split()[2:] for line in res.stdout.splitlines()[1:]}
    assert rows[other.id[:12]] == ["0.00%", "0B", "/", "0B", "0.00%", "0B", "/", "0B", "0B",
                                   "/", "0B", "0"]
    res = c.pyrun("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", c.name)
    name, usage, slash, limit, pids = res.stdout.split()
    assert (name, slash, limit, pids) == (c.name, "/", "48MiB", "2") and usage.endswith("B")
    res = c.pyrun("stats", "--no-stream", "--format", "table {{.ID}}\t{{.CPUPerc}}", c.name)
    assert res.stdout.split("\n")[0].split() == ["CONTAINER", "ID", "CPU", "%"]
    res = c.pyrun("stats", "--no-stream", "--format", "{{.Nope}}", c.name)
    assert res.returncode == 1 and "Nope" in res.stderr  # Docker: a CLI error, 1
    assert c.pyrun("rename", c.name, "renamed").returncode == 0
    res = c.pyrun("stats", "--no-stream", "renamed")
    assert res.stdout.splitlines()[1].split()[:2] == [c.id[:12], "renamed"]
    c.name = "renamed"
    res = c.pyrun("stats", "--no-stream", "no-such-container")
    assert res.returncode == 1 and "No such container" in res.stderr


def test_stats_streams_until_interrupted(run_container):
    import signal
    import subprocess
    import sys

    c = run_container("-m", "40m")
    # SIGINT as from a terminal's Ctrl-C: a suite started in the background of a
    # non-interactive shell (as CI may be) hands its children SIGINT ignored
    proc = subprocess.Popen([sys.executable, "-m", "pybuild.cli.pyrun", "stats", c.name],
                            env={**os.environ, "PYBUILD_ROOT": c.root},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        out = ""
        deadline = time.monotonic() + 20
        while out.count("\033[2J\033[H") < 2 and time.monotonic() < deadline:
            out += os.read(proc.stdout.fileno(), 4096).decode()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
    frames = [f for f in out.split("\033[2J\033[H") if f]
    assert len(frames) >= 2
    assert all(f.splitlines()[1].split()[:2] == [c.id[:12], c.name] for f in frames)
    assert "/ 40MiB" in frames[-1]


def _count(c) -> int:
    try:
        with open(os.path.join(c.dir, "upper", "tmp", "count")) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def _advances(c, wait: float = 0.5) -> bool:
    first = _count(c)
    time.sleep(wait)
    return _count(c) != first


def test_pause_stops_progress_and_unpause_resumes(run_container):
    c = run_container(cmd=("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; "
                                       "sleep 0.02; done"))
    deadline = time.monotonic() + 10
    while _count(c) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _advances(c)
    res = c.pyrun("pause", c.name)
    assert res.returncode == 0 and res.stdout == f"{c.name}\n", res.stderr
    assert c.state()["paused"] is True and c.state()["status"] == "running"
    assert not _advances(c)
    res = c.pyrun("exec", c.name, "true")
    assert res.returncode == 1 and "is paused" in res.stderr
    res = c.pyrun("pause", c.name)
    assert res.returncode == 1 and "already paused" in res.stderr
    assert c.pyrun("top", c.name).returncode == 0  # top works on a paused container
    res = c.pyrun("unpause", c.name)
    assert res.returncode == 0 and res.stdout == f"{c.name}\n"
    assert c.state()["paused"] is False and c.state()["status"] == "running"
    assert _advances(c)
    res = c.pyrun("unpause", c.name)
    assert res.returncode == 1 and "is not paused" in res.stderr
    res = c.pyrun("pause", c.name, "no-such-container")
    assert res.returncode == 1 and res.stdout == f"{c.name}\n"
    assert c.state()["paused"] is True  # paused again by the line above
    res = c.pyrun("kill", c.name)  # a paused container is thawed to take the signal
    assert res.returncode == 0, res.stderr
    assert c.proc.wait(timeout=30) == 137
    state = c.state()
    assert state["status"] == "exited" and state["paused"] is False
    res = c.pyrun("unpause", c.name)
    assert res.returncode == 1 and "is not running" in res.stderr


def test_memory_hog_ends_oom_killed_with_137(image_store, tmp_path):
    from tests.plugins.runtime import child_pids, mount_points

    before = child_pids()
    res = pyrun_cmd(image_store, "run", "--name", "hog", "-m", "32m", "busybox",
                    "sh", "-c", "head -c 100m /dev/zero | tail")
    assert res.returncode == 137, res.stderr
    cid = os.readlink(os.path.join(image_store, "containers", ".names", "hog"))
    import json

    with open(os.path.join(image_store, "containers", cid, "state.json")) as f:
        state = json.load(f)
    assert state["oom_killed"] is True and state["exit_code"] == 137
    assert state["status"] == "exited"
    assert not any(os.path.isdir(p) for p in state["cgroup"]["paths"].values())
    assert child_pids() == before and mount_points(tmp_path) == set()
    # under the limit: no OOM mark
    res = pyrun_cmd(image_store, "run", "--name", "small", "-m", "32m", "busybox",
                    "sh", "-c", "head -c 4m /dev/zero | tail | wc -c")
    assert res.returncode == 0 and res.stdout.strip() == str(4 << 20)
    cid = os.readlink(os.path.join(image_store, "containers", ".names", "small"))
    with open(os.path.join(image_store, "containers", cid, "state.json")) as f:
        assert json.load(f)["oom_killed"] is False


def test_pids_limit_stops_a_fork_loop(run_container):
    c = run_container("--pids-limit", "20")
    res = c.pyrun("exec", c.name, "sh", "-c", "while :; do sleep 1000 >/dev/null 2>&1 & done",
                  timeout=60)
    assert res.returncode != 0 and "fork" in res.stderr  # the loop hits the limit
    # at the limit: the first process, the loop's shell and 18 sleeps; the shell is gone now
    res = c.pyrun("stats", "--no-stream", c.name)
    assert res.stdout.splitlines()[1].split()[-1] == "19"
    pids_dir = c.state()["cgroup"]["paths"].get("pids") or c.state()["cgroup"]["paths"][""]
    with open(os.path.join(pids_dir, "pids.events")) as f:
        assert int(f.read().split()[1]) > 0  # forks were refused
    # the container survives; killing it takes every process along (checked by the fixture)
    assert c.pyrun("top", c.name).returncode == 0
    assert len(c.members()) == 19

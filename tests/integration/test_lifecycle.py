"""Detached containers over the busybox image, as a Docker user drives them: run -d, ps,
logs -f, stop then start (files kept), rm -f, restart policies, --rm, exit codes, the stop
signal then SIGKILL, a supervisor killed with -9. The fixture checks that no process or
mount of the store is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.plugins.lifecycle import processes_of, wait_for

pytestmark = pytest.mark.root

# sh as pid 1 ignores SIGTERM unless it traps it (as in Docker)
TRAP = "trap 'echo got TERM; exit 0' TERM; "


def _loop(lines: int = 1000) -> str:
    return TRAP + f"i=0; while [ $i -lt {lines} ]; do i=$((i+1)); echo line $i; sleep 0.1; done"


def test_run_d_ps_logs_follow_stop_start_rm(pyrun_lc):
    pyrun = pyrun_lc
    cid = pyrun.ok("run", "-d", "--name", "looper", "busybox", "sh", "-c",
                   "cat /kept 2>/dev/null; echo run >> /kept; " + _loop()).strip()
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    ps = pyrun.ok("ps").splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                             "PORTS", "NAMES"]
    row = next(line for line in ps if line.startswith(cid[:12]))
    assert " busybox " in row and "Up " in row and row.endswith("looper")
    # logs -f streams lines as they come, and ends when the container stops
    follower = pyrun.popen("logs", "-f", "looper", stdout=subprocess.PIPE, text=True)
    first = [follower.stdout.readline() for _ in range(3)]
    assert first == ["line 1\n", "line 2\n", "line 3\n"]
    assert pyrun.ok("stop", "-t", "5", "looper") == "looper\n"
    rest, _ = follower.communicate(timeout=20)
    assert follower.returncode == 0 and rest.endswith("got TERM\n")
    state = pyrun.state("looper")
    assert state["Status"] == "exited" and state["ExitCode"] == 0 and not state["Running"]
    assert "Exited (0)" in pyrun.ok("ps", "-a")
    # start again: the container's own files are still there
    assert pyrun.ok("start", "looper") == "looper\n"
    wait_for(lambda: "got TERM\nrun\nline 1\n" in pyrun.ok("logs", "looper"),
             "the second run's output")
    assert pyrun.ok("logs", "looper").count("line 1\n") == 2
    assert pyrun.state("looper")["Running"]
    # rm without -f refuses a running container (exit 1); rm -f kills and removes
    res = pyrun("rm", "looper")
    assert res.returncode == 1 and "You cannot remove a running container" in res.stderr
    assert pyrun.ok("rm", "-f", "looper") == "looper\n"
    assert pyrun.ok("ps", "-a", "-q") == ""
    assert not processes_of(pyrun.root)
    res = pyrun("logs", "looper")
    assert res.returncode == 1 and "No such container: looper" in res.stderr


def test_json_log_format_and_logs_flags(pyrun_lc):
    pyrun = pyrun_lc
    cid = pyrun.ok("run", "-d", "busybox", "sh", "-c",
                   "echo out1; echo err1 >&2; echo out2; printf partial").strip()
    assert pyrun.ok("wait", cid) == "0\n"
    path = os.path.join(pyrun.root, "containers", cid, f"{cid}-json.log")
    with open(path) as f:
        entries = [json.loads(line) for line in f]
    assert [(e["log"], e["stream"]) for e in entries] == [
        ("out1\n", "stdout"), ("err1\n", "stderr"), ("out2\n", "stdout"),
        ("partial", "stdout")] or sorted(e["log"] for e in entries) == [
        "err1\n", "out1\n", "out2\n", "partial"]
    assert all(e["time"].endswith("Z") and "T" in e["time"] for e in entries)
    res = pyrun("logs", cid)
    assert res.stdout == "out1\nout2\npartial" and res.stderr == "err1\n"
    assert pyrun("logs", "--tail", "1", cid).stdout == "partial"
    stamped = pyrun("logs", "-t", cid).stdout.splitlines()[0]
    stamp, text = stamped.split(" ", 1)
    assert text == "out1" and len(stamp.split(".")[1]) == 10  # nine digits and the Z
    assert pyrun("logs", "--since", "1h", cid).stdout.startswith("out1")
    assert pyrun("logs", "--until", "2000-01-01T00:00:00Z", cid).stdout == ""
    assert pyrun("logs", "--since", "yesterday-ish", cid).returncode == 1
    pyrun.ok("rm", cid)


def test_restart_on_failure_counts_restarts(pyrun_lc):
    pyrun = pyrun_lc
    pyrun.ok("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox",
             "sh", "-c", "echo attempt; exit 3")
    wait_for(lambda: pyrun.state("flaky")["Status"] == "exited"
             and not processes_of(pyrun.root), "the retries to end")
    info = pyrun.inspect("flaky")
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 3
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert pyrun.ok("logs", "flaky") == "attempt\n" * 3
    # always: restarted after a clean exit too, until stopped
    pyrun.ok("run", "-d", "--name", "again", "--restart", "always", "busybox", "sh", "-c",
             "echo up; sleep 0.2")
    wait_for(lambda: pyrun.inspect("again")["RestartCount"] >= 2, "two restarts")
    pyrun.ok("stop", "-t", "1", "again")
    count = pyrun.inspect("again")["RestartCount"]
    time.sleep(0.5)
    assert pyrun.inspect("again")["RestartCount"] == count  # stopped by the user: no more
    assert pyrun.state("again")["Status"] == "exited"
    res = pyrun("run", "-d", "--rm", "--restart", "always", "busybox", "true")
    assert res.returncode == 125 and "Conflicting options: --restart and --rm" in res.stderr
    res = pyrun("run", "-d", "--restart", "sometimes", "busybox", "true")
    assert res.returncode == 125 and "invalid restart policy" in res.stderr
    pyrun.ok("rm", "flaky", "again")


def _has_socket(pid: int) -> bool:
    fds = f"/proc/{pid}/fd"
    try:
        return any(os.readlink(os.path.join(fds, fd)).startswith("socket:")
                   for fd in os.listdir(fds))
    except OSError:
        return False


def test_rm_flag_wait_and_exit_codes(pyrun_lc, tmp_path):
    pyrun = pyrun_lc
    trigger = tmp_path / "trigger"
    trigger.mkdir()
    cid = pyrun.ok("run", "-d", "--rm", "-v", f"{trigger}:/t", "busybox", "sh", "-c",
                   "while [ ! -e /t/go ]; do sleep 0.02; done; exit 5").strip()
    # wait gets the code of a --rm container from its supervisor, before the removal
    waiter = pyrun.popen("wait", cid, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: _has_socket(waiter.pid), "wait to reach the supervisor")
    (trigger / "go").write_text("")
    out, _ = waiter.communicate(timeout=30)
    assert waiter.returncode == 0 and out == "5\n"
    wait_for(lambda: not os.path.exists(os.path.join(pyrun.root, "containers", cid)),
             "--rm to remove the container")
    # a command that cannot be run: Docker's 127 / 126, the container stays "created"
    res = pyrun("run", "-d", "--name", "nocmd", "busybox", "no-such-command")
    assert res.returncode == 127 and "executable file not found" in res.stderr
    state = pyrun.state("nocmd")
    assert state["Status"] == "created" and state["ExitCode"] == 127
    res = pyrun("run", "-d", "busybox", "/etc/passwd")
    assert res.returncode == 126
    # verbs on missing or stopped containers
    for verb in (["stop"], ["start"], ["kill"], ["rm"], ["logs"], ["wait"], ["inspect"],
                 ["restart"], ["port"]):
        res = pyrun(*verb, "nothing-here")
        assert res.returncode == 1, verb
        assert "No such container: nothing-here" in res.stderr or \
            "No such object: nothing-here" in res.stderr, (verb, res.stderr)
    res = pyrun("kill", "nocmd")
    assert res.returncode == 1 and "is not running" in res.stderr
    # stop of a container that is not running: fine, as in Docker
    assert pyrun.ok("stop", "nocmd") == "nocmd\n"
    # several at once: each reported, exit 1 if one failed
    res = pyrun("rm", "nocmd", "nothing-here")
    assert res.returncode == 1 and res.stdout == "nocmd\n"
    for cid in pyrun.ok("ps", "-a", "-q", "--no-trunc").split():
        pyrun.ok("rm", cid)


def test_prefixes_and_ambiguity(pyrun_lc):
    pyrun = pyrun_lc
    ids = [pyrun.ok("create", "busybox", "true").strip() for _ in range(17)]
    # 17 ids over 16 hex digits: two share a first digit
    firsts = [i[0] for i in ids]
    shared = next(d for d in firsts if firsts.count(d) > 1)
    res = pyrun("inspect", shared)
    assert res.returncode == 1 and "multiple IDs found with provided prefix" in res.stderr
    unique = ids[0][:12]
    assert pyrun.inspect(unique)["Id"] == ids[0]
    pyrun.ok("rm", *ids)


def test_stop_uses_the_stop_signal_then_sigkill(pyrun_lc):
    pyrun = pyrun_lc
    # an image whose STOPSIGNAL is SIGUSR1
    from pybuild.image.images import Images

    images = Images(pyrun.root)
    try:
        base = images.resolve("busybox:latest")
        config = json.loads(images.get(base).config_bytes)
        config.setdefault("config", {})["StopSignal"] = "SIGUSR1"
        images.put(json.dumps(config).encode(), tags=["busybox:usr1"])
    finally:
        images.close()
    script = ("trap 'echo got USR1' USR1; trap 'echo got TERM' TERM; echo ready; "
              "while true; do sleep 0.1; done")
    pyrun.ok("run", "-d", "--name", "stubborn", "busybox:usr1", "sh", "-c", script)
    assert pyrun.inspect("stubborn")["Config"]["StopSignal"] == "SIGUSR1"
    wait_for(lambda: "ready" in pyrun.ok("logs", "stubborn"), "the trap")
    assert pyrun.ok("stop", "-t", "1", "stubborn") == "stubborn\n"
    # the trap ran (the stop signal came first), then SIGKILL ended it
    assert pyrun.ok("logs", "stubborn") == "ready\ngot USR1\n"
    assert pyrun.state("stubborn")["ExitCode"] == 137
    # --stop-signal overrides the image's; kill -s sends any signal and leaves it running
    pyrun.ok("run", "-d", "--name", "termed", "--stop-signal", "TERM", "busybox:usr1", "sh",
             "-c", "trap 'echo got USR2' USR2; trap 'echo bye; exit 0' TERM; echo ready; "
                   "while true; do sleep 0.1; done")
    wait_for(lambda: "ready" in pyrun.ok("logs", "termed"), "the traps")
    assert pyrun.ok("kill", "-s", "USR2", "termed") == "termed\n"
    wait_for(lambda: "got USR2" in pyrun.ok("logs", "termed"), "USR2 delivered")
    assert pyrun.state("termed")["Running"]
    assert pyrun("kill", "-s", "NOPE", "termed").returncode == 1  # a daemon error
    pyrun.ok("stop", "termed")
    assert pyrun.state("termed")["ExitCode"] == 0
    assert pyrun.ok("logs", "termed").endswith("bye\n")
    pyrun.ok("rm", "stubborn", "termed")


def test_killed_supervisor_is_detected_and_cleaned(pyrun_lc, tmp_path):
    pyrun = pyrun_lc
    cid = pyrun.ok("run", "-d", "busybox", "sleep", "1000").strip()
    supervisors = [pid for pid, cmd in processes_of(pyrun.root).items()
                   if "pybuild.runtime.supervisor" in cmd]
    assert len(supervisors) == 1
    os.kill(supervisors[0], signal.SIGKILL)
    wait_for(lambda: not processes_of(pyrun.root), "the container to die with its keeper")
    state = pyrun.state(cid)
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    assert f"{cid[:12]}" in pyrun.ok("ps", "-a", "-f", "status=exited")
    pyrun.ok("rm", cid)


def test_create_then_start_attach_and_restart(pyrun_lc):
    pyrun = pyrun_lc
    cid = pyrun.ok("create", "--name", "later", "-e", "WHO=world", "busybox", "sh", "-c",
                   "echo hello $WHO; exit 4").strip()
    assert len(cid) == 64
    assert "Created" in pyrun.ok("ps", "-a")
    assert pyrun.state("later")["Status"] == "created"
    res = pyrun("start", "-a", "later")
    assert res.returncode == 4 and res.stdout == "hello world\n"
    assert pyrun.state("later")["ExitCode"] == 4
    # start -ai: our stdin goes to the container, and its end closes the container's
    pyrun.ok("create", "-i", "--name", "catter", "busybox", "sh", "-c", "cat; echo done")
    res = pyrun("start", "-a", "-i", "catter", input="piped in\n")
    assert res.returncode == 0 and res.stdout == "piped in\ndone\n"
    pyrun.ok("rm", "catter")
    # run in the foreground with a restart policy: attached through the supervisor
    res = pyrun("run", "--name", "fg", "--restart", "on-failure:1", "busybox", "sh", "-c",
                "echo try; exit 2")
    assert res.returncode == 2 and res.stdout.startswith("try\n")
    pyrun.ok("run", "-d", "--name", "r", "busybox", "sh", "-c", TRAP + "sleep 100 & wait")
    first = pyrun.state("r")["StartedAt"]
    assert pyrun.ok("restart", "-t", "2", "r") == "r\n"
    assert pyrun.state("r")["Running"] and pyrun.state("r")["StartedAt"] != first
    assert pyrun.ok("rename", "r", "renamed") == ""
    assert pyrun.inspect("renamed")["Name"] == "/renamed"
    assert pyrun("inspect", "r").returncode == 1
    res = pyrun("rename", "renamed", "later")
    assert res.returncode != 0 and "already in use" in res.stderr
    pyrun.ok("container", "rm", "-f", "renamed")
    out = pyrun.ok("container", "prune", "-f")
    assert out.startswith("Deleted Containers:\n") and cid in out
    assert pyrun.ok("container", "ls", "-a", "-q") == ""


def test_concurrent_starts_make_one_supervisor(pyrun_lc):
    pyrun = pyrun_lc
    pyrun.ok("create", "--name", "once", "busybox", "sleep", "100")
    starters = [pyrun.popen("start", "once", stdout=subprocess.PIPE, text=True)
                for _ in range(3)]
    for p in starters:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0 and out == "once\n"
    keepers = [cmd for cmd in processes_of(pyrun.root).values()
               if "pybuild.runtime.supervisor" in cmd]
    assert len(keepers) == 1
    pyrun.ok("rm", "-f", "once")


def test_verbs_drive_a_foreground_run_too(pyrun_lc):
    pyrun = pyrun_lc
    fg = pyrun.popen("run", "--name", "fg", "busybox", "sh", "-c",
                     TRAP + "echo ready; while true; do sleep 0.1; done",
                     stdout=subprocess.PIPE, text=True)
    assert fg.stdout.readline() == "ready\n"
    assert "fg" in pyrun.ok("ps", "--format", "{{.Names}}")
    assert pyrun.state("fg")["Running"]
    assert pyrun.ok("stop", "fg") == "fg\n"
    out, _ = fg.communicate(timeout=30)
    assert fg.returncode == 0 and out == "got TERM\n"
    assert pyrun.state("fg")["ExitCode"] == 0
    assert pyrun.ok("wait", "fg") == "0\n"
    pyrun.ok("rm", "fg")

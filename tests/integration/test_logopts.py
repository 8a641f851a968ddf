"""Logging drivers and json-file rotation: --log-opt max-size/max-file/compress rotate the
log as Docker does (<id>-json.log, .1, .2 or .1.gz), `logs` reads across the rotated files
in order (also --tail and -f through a rotation), --log-driver none keeps nothing and
`logs` then gives Docker's error; bad options."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.plugins.lifecycle import wait_for

pytestmark = pytest.mark.root

PRINT_200 = "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done"


def _files(pyrun, ref: str) -> tuple[str, list[str]]:
    info = pyrun.inspect(ref)
    folder = os.path.dirname(info["LogPath"])
    return info["LogPath"], sorted(n for n in os.listdir(folder) if "-json.log" in n)


def _consecutive_tail(lines: list[str], last: int = 199) -> bool:
    first = int(lines[0].split("-")[1])
    return lines == [f"line-{i}" for i in range(first, last + 1)]


def test_rotation_across_files_and_compress(pyrun_lc):
    pyrun = pyrun_lc
    cid = pyrun.ok("run", "-d", "--name", "rot", "--log-opt", "max-size=1k",
                   "--log-opt", "max-file=3", "busybox", "sh", "-c", PRINT_200).strip()
    assert pyrun.ok("wait", "rot") == "0\n"
    path, names = _files(pyrun, "rot")
    assert names == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    for older in names[1:]:  # rotated once past 1000 bytes, by at most one entry
        assert 1000 <= os.path.getsize(os.path.join(os.path.dirname(path), older)) < 1100
    assert pyrun.inspect("rot")["HostConfig"]["LogConfig"] == {
        "Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}
    lines = pyrun.ok("logs", "rot").split()
    assert 30 < len(lines) < 200 and _consecutive_tail(lines)  # oldest file first
    assert pyrun.ok("logs", "--tail", "3", "rot").split() == ["line-197", "line-198", "line-199"]
    current = sum(1 for _ in open(path))  # about 13 lines fill 1k
    tail = pyrun.ok("logs", "--tail", str(current + 5), "rot").split()  # reaches into .1
    assert len(tail) == current + 5 and _consecutive_tail(tail)

    cid = pyrun.ok("run", "-d", "--name", "gz", "--log-opt", "max-size=1k", "--log-opt",
                   "max-file=2", "--log-opt", "compress=true", "busybox", "sh", "-c",
                   PRINT_200).strip()
    assert pyrun.ok("wait", "gz") == "0\n"
    assert _files(pyrun, "gz")[1] == [f"{cid}-json.log", f"{cid}-json.log.1.gz"]
    lines = pyrun.ok("logs", "gz").split()
    assert len(lines) > 15 and _consecutive_tail(lines)

    # one file: truncated when full
    cid = pyrun.ok("run", "-d", "--name", "one", "--log-opt", "max-size=1k", "busybox", "sh",
                   "-c", PRINT_200).strip()
    assert pyrun.ok("wait", "one") == "0\n"
    path, names = _files(pyrun, "one")
    assert names == [f"{cid}-json.log"] and os.path.getsize(path) < 1100
    lines = pyrun.ok("logs", "one").split()
    assert lines and _consecutive_tail(lines)
    pyrun.ok("rm", "rot", "gz", "one")


def test_follow_through_rotations(pyrun_lc):
    pyrun = pyrun_lc
    script = ("echo ready; while [ ! -f /go ]; do sleep 0.05; done; "
              "i=0; while [ $i -lt 60 ]; do echo line-$i; i=$((i+1)); sleep 0.05; done")
    # a rotation every ~4 lines; five files give a follower a second to catch up
    pyrun.ok("run", "-d", "--name", "fol", "--log-opt", "max-size=300", "--log-opt",
             "max-file=5", "busybox", "sh", "-c", script)
    wait_for(lambda: "ready" in pyrun.ok("logs", "fol"), "ready")
    follower = pyrun.popen("logs", "-f", "fol", stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout.readline() == "ready\n"
        pyrun.ok("exec", "fol", "touch", "/go")
        out, _ = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert out.split() == [f"line-{i}" for i in range(60)]
    assert len(_files(pyrun, "fol")[1]) == 5  # it did rotate meanwhile
    pyrun.ok("rm", "fol")


def test_attrs_from_labels_env_and_tag(pyrun_lc):
    pyrun = pyrun_lc
    cid = pyrun.ok("run", "-d", "--name", "att", "-l", "team=blue", "-l", "other=x",
                   "-e", "MODE=prod", "-e", "SECRET=s", "--log-opt", "labels=team,missing",
                   "--log-opt", "env=MODE", "--log-opt", "tag={{.Name}}/{{.ID}}",
                   "busybox", "echo", "hi").strip()
    assert pyrun.ok("wait", "att") == "0\n"
    assert pyrun.ok("logs", "att") == "hi\n"
    assert pyrun.ok("logs", "--details", "att") == \
        f"MODE=prod,tag=att/{cid[:12]},team=blue hi\n"
    with open(pyrun.inspect("att")["LogPath"]) as f:
        entry = json.loads(f.readline())
    assert list(entry) == ["log", "stream", "attrs", "time"]  # Docker's field order
    assert entry["attrs"] == {"team": "blue", "MODE": "prod", "tag": f"att/{cid[:12]}"}
    pyrun.ok("run", "-d", "--name", "rx", "-l", "app.tier=web", "-l", "app.zone=a", "-l",
             "x=y", "--log-opt", "labels-regex=^app\\.", "busybox", "echo", "hi")
    assert pyrun.ok("wait", "rx") == "0\n"
    assert pyrun.ok("logs", "--details", "rx") == "app.tier=web,app.zone=a hi\n"
    pyrun.ok("rm", "att", "rx")


def test_foreground_run_with_log_options_keeps_a_log(pyrun_lc):
    pyrun = pyrun_lc
    res = pyrun("run", "--name", "fg", "--log-opt", "max-size=1k", "--log-opt", "max-file=2",
                "busybox", "sh", "-c", PRINT_200 + "; exit 3")
    assert res.returncode == 3 and res.stdout.split()[-1] == "line-199"
    lines = pyrun.ok("logs", "fg").split()
    assert len(lines) > 15 and _consecutive_tail(lines)
    assert len(_files(pyrun, "fg")[1]) == 2
    res = pyrun("run", "--rm", "-i", "--log-driver", "json-file", "busybox", "cat",
                input="through\n")
    assert res.returncode == 0 and res.stdout == "through\n"
    pyrun.ok("rm", "fg")
    assert pyrun.ok("ps", "-aq") == ""


def test_log_driver_none(pyrun_lc):
    pyrun = pyrun_lc
    cid = pyrun.ok("run", "-d", "--name", "quiet", "--log-driver", "none", "busybox",
                   "echo", "unseen").strip()
    assert pyrun.ok("wait", "quiet") == "0\n"
    res = pyrun("logs", "quiet")
    assert res.returncode == 1
    assert "configured logging driver does not support reading" in res.stderr
    info = pyrun.inspect("quiet")
    assert info["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}
    assert info["LogPath"] == ""
    folder = os.path.join(pyrun.root, "containers", cid)
    assert not any("-json.log" in n for n in os.listdir(folder))
    pyrun.ok("rm", "quiet")


@pytest.mark.parametrize(("args", "message"), [
    (("--log-driver", "syslog"), "logger: no log driver named 'syslog' is registered"),
    (("--log-driver", "none", "--log-opt", "max-size=1k"),
     "invalid logging opts for driver none"),
    (("--log-opt", "colour=red"), "unknown log opt 'colour' for json-file log driver"),
    (("--log-opt", "max-size=abc"), "invalid size: 'abc'"),
    (("--log-opt", "max-size=0"), "max-size must be a positive number"),
    (("--log-opt", "max-file=0"), "max-file cannot be less than 1"),
    (("--log-opt", "max-file=x"), 'strconv.Atoi: parsing "x": invalid syntax'),
    (("--log-opt", "max-size=1k", "--log-opt", "compress=true"),
     "compress cannot be true when max-file is less than 2 or max-size is not set"),
    (("--log-opt", "compress=maybe"), 'strconv.ParseBool: parsing "maybe": invalid syntax'),
    (("--log-opt", "tag={{.Nope}}"), "can't evaluate field Nope"),
    (("--log-opt", "labels-regex=("), "error parsing labels-regex"),
    (("--log-opt", "mode=fast"), "logger: logging mode not supported: fast"),
])
def test_bad_log_options(pyrun_lc, args, message):
    res = pyrun_lc("run", "-d", *args, "busybox", "true")
    assert res.returncode == 125 and message in res.stderr, res.stderr
    assert pyrun_lc.ok("ps", "-aq") == ""

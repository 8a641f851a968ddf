"""Pieces of the container lifecycle that need no kernel: restart policies and back-off,
signal names, detach keys, the json-file log, time arguments, ps texts, inspect templates,
generated names."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from pybuild.cli.attach import _DetachScanner, parse_detach_keys
from pybuild.cli.inspect import render
from pybuild.cli.logs import parse_time
from pybuild.cli.ps import ellipsis, parse_filters, status_text
from pybuild.errors import ContainerError
from pybuild.runtime.lifecycle import parse_signal
from pybuild.runtime.logfile import Entry, LogWriter, follow, read_entries, rfc3339nano
from pybuild.runtime.names import ADJECTIVES, SURNAMES, generated_name
from pybuild.runtime.restart import RestartPolicy, next_backoff


@pytest.mark.parametrize("text,name,retries", [
    ("", "no", 0), ("no", "no", 0), ("always", "always", 0),
    ("unless-stopped", "unless-stopped", 0), ("on-failure", "on-failure", 0),
    ("on-failure:5", "on-failure", 5)])
def test_restart_policy_parse(text, name, retries):
    p = RestartPolicy.parse(text)
    assert (p.name, p.max_retries) == (name, retries)
    assert RestartPolicy.from_json(p.to_json()) == p


@pytest.mark.parametrize("bad", ["sometimes", "always:3", "on-failure:x", "on-failure:-1"])
def test_restart_policy_bad(bad):
    with pytest.raises(ContainerError, match="restart policy"):
        RestartPolicy.parse(bad)


def test_should_restart_like_docker():
    on_failure = RestartPolicy("on-failure", 2)
    assert on_failure.should_restart(1, 0, False)
    assert on_failure.should_restart(1, 1, False)
    assert not on_failure.should_restart(1, 2, False)
    assert not on_failure.should_restart(0, 0, False)
    assert RestartPolicy("on-failure").should_restart(1, 100, False)
    assert RestartPolicy("always").should_restart(0, 100, False)
    assert not RestartPolicy("always").should_restart(0, 0, True)
    assert not RestartPolicy().should_restart(1, 0, False)


def test_backoff_doubles_caps_and_resets():
    assert next_backoff(0, 0) == 0.1
    assert next_backoff(0.1, 0.5) == 0.2
    assert next_backoff(40, 0.5) == 60
    assert next_backoff(60, 0.5) == 60
    assert next_backoff(3.2, 11) == 0.1


@pytest.mark.parametrize("text,number", [("9", 9), ("KILL", 9), ("SIGKILL", 9),
                                         ("sigterm", 15), ("usr1", signal.SIGUSR1)])
def test_parse_signal(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("bad", ["", "0", "999", "NOPE", "SIG"])
def test_parse_signal_bad(bad):
    with pytest.raises(ContainerError, match="Invalid signal"):
        parse_signal(bad)


def test_detach_keys():
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@,ctrl-[") == b"a\x00\x1b"
    for bad in ("ctrl-", "ctrl-pp", "abc", "ctrl-1"):
        with pytest.raises(ContainerError, match="Invalid detach keys"):
            parse_detach_keys(bad)
    s = _DetachScanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)       # held back: may start the sequence
    assert s.feed(b"x") == (b"\x10x", False)        # not the sequence: released
    assert s.feed(b"\x10") == (b"", False)
    assert s.feed(b"\x11rest") == (b"", True)


def test_log_writer_lines_partials_and_streams(tmp_path):
    path = str(tmp_path / "c-json.log")
    w = LogWriter(path)
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\nthree")
    w.close()  # the unterminated last line is written as it is
    entries, offset = read_entries(path)
    assert [(e.stream, e.log) for e in entries] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n"), ("stdout", "three")]
    with open(path) as f:
        raw = [json.loads(line) for line in f]
    assert set(raw[0]) == {"log", "stream", "time"}
    assert offset == (tmp_path / "c-json.log").stat().st_size
    assert [e.log for e in read_entries(path, tail=2)[0]] == ["two\n", "three"]
    assert read_entries(path, tail=0)[0] == []
    assert read_entries(str(tmp_path / "missing"))[0] == []


def test_log_writer_splits_long_lines(tmp_path):
    path = str(tmp_path / "c-json.log")
    w = LogWriter(path)
    w.write("stdout", b"x" * (16 * 1024 + 5) + b"\n")
    w.close()
    logs = [e.log for e in read_entries(path)[0]]
    assert logs == ["x" * 16 * 1024, "xxxxx\n"]


def test_follow_sees_appended_lines_then_stops(tmp_path):
    path = str(tmp_path / "c-json.log")
    w = LogWriter(path)
    w.write("stdout", b"a\n")
    _, offset = read_entries(path)
    finished = threading.Event()

    def later():
        time.sleep(0.2)
        w.write("stdout", b"b\nc\n")
        w.close()
        finished.set()

    threading.Thread(target=later).start()
    got = [e.log for e in follow(path, offset, finished.is_set, interval=0.02)]
    assert got == ["b\n", "c\n"]


def test_times():
    assert rfc3339nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert rfc3339nano(1_700_000_000_120_000_000, fixed=True) == "2023-11-14T22:13:20.120000000Z"
    e = Entry("2023-11-14T22:13:20.12Z", "stdout", "x\n")
    assert e.fixed_time == "2023-11-14T22:13:20.120000000Z"
    assert e.timestamp == pytest.approx(1_700_000_000.12)
    now = 1_700_000_000.0
    assert parse_time("10m", now) == now - 600
    assert parse_time("1h30m", now) == now - 5400
    assert parse_time("1699999999.5", now) == 1699999999.5
    assert parse_time("2023-11-14T22:13:20Z", now) == 1_700_000_000
    assert parse_time("2023-11-14T23:13:20+01:00", now) == 1_700_000_000
    with pytest.raises(ContainerError):
        parse_time("yesterday", now)


def test_ps_texts():
    now = 1000.0
    assert status_text({"status": "created"}, now) == "Created"
    assert status_text({"status": "exited", "exit_code": 3, "finished": 995}, now) == \
        "Exited (3) 5 seconds ago"
    assert status_text({"status": "exited", "exit_code": 0, "finished": 880}, now) == \
        "Exited (0) 2 minutes ago"
    assert ellipsis("sh -c 'echo hello world'", 20) == "sh -c 'echo hello w…"
    assert ellipsis("short", 20) == "short"
    assert parse_filters(["status=exited", "label=a=b", "label=c"]) == {
        "status": ["exited"], "label": ["a=b", "c"]}
    for bad in (["status=sleeping"], ["colour=red"], ["novalue"], ["exited=x"]):
        with pytest.raises(ContainerError):
            parse_filters(bad)


def test_inspect_template():
    data = {"Name": "/web", "State": {"Status": "running", "Running": True, "Pid": 7},
            "Config": {"Labels": {"a": "b"}, "Cmd": ["sh", "-c"]}}
    assert render("{{.Name}} {{.State.Status}} {{.State.Running}}", data) == "/web running true"
    assert render('{{index .Config.Labels "a"}}', data) == "b"
    assert render("{{json .Config.Cmd}}", data) == '["sh","-c"]'  # Go: compact
    assert render("{{.Config.Cmd}}", data) == "[sh -c]"
    assert render("{{upper .State.Status}}\\t{{.State.Pid}}", data) == "RUNNING\t7"
    with pytest.raises(ContainerError, match="can't evaluate field Nope"):
        render("{{.Nope}}", data)
    with pytest.raises(ContainerError, match="not defined"):
        render("{{frobnicate .Name}}", data)


def test_generated_names():
    for retry in (0, 0, 0, 1):
        name = generated_name(retry)
        adjective, _, rest = name.partition("_")
        assert adjective in ADJECTIVES
        if retry:
            assert rest[:-1] in SURNAMES and rest[-1].isdigit()
        else:
            assert rest in SURNAMES

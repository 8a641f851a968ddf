"""Docker's health checks on busybox containers: --health-* flags and an image's HEALTHCHECK,
a check that fails until the test creates a file with exec, State.Health in inspect, the
health in ps STATUS and `ps -f health=`, timeouts, foreground runs, and bad input."""

from __future__ import annotations

import pytest

from tests.plugins.lifecycle import wait_for

pytestmark = pytest.mark.root

FAST = ("--health-interval", "300ms", "--health-retries", "2")


def _health(pyrun, ref: str) -> dict | None:
    return pyrun.state(ref).get("Health")


def _status(pyrun, ref: str) -> str | None:
    return (_health(pyrun, ref) or {}).get("Status")


def _ps_status(pyrun, name: str) -> str:
    return pyrun.ok("ps", "-a", "-f", f"name=^{name}$", "--format", "{{.Status}}").strip()


def test_check_flips_from_unhealthy_to_healthy(pyrun_lc):
    pyrun = pyrun_lc
    cid = pyrun.ok("run", "-d", "--name", "hc", "--health-cmd", "cat /tmp/ok", *FAST,
                   "busybox", "sleep", "100").strip()
    plain = pyrun.ok("run", "-d", "--name", "plain", "busybox", "sleep", "100").strip()
    config = pyrun.inspect("hc")["Config"]["Healthcheck"]
    assert config == {"Test": ["CMD-SHELL", "cat /tmp/ok"], "Interval": 300_000_000,
                      "Retries": 2}
    assert "Healthcheck" not in pyrun.inspect("plain")["Config"]
    assert "Health" not in pyrun.state("plain")

    wait_for(lambda: _status(pyrun, "hc") == "unhealthy", "unhealthy")
    health = _health(pyrun, "hc")
    assert health["FailingStreak"] >= 2
    last = health["Log"][-1]
    assert last["ExitCode"] == 1 and "/tmp/ok" in last["Output"]
    assert set(last) == {"Start", "End", "ExitCode", "Output"}
    assert last["Start"] <= last["End"]
    assert _ps_status(pyrun, "hc").endswith("(unhealthy)")
    assert pyrun.ok("ps", "-q", "-f", "health=unhealthy").split() == [cid[:12]]
    assert pyrun.ok("ps", "-q", "-f", "health=none").split() == [plain[:12]]

    pyrun.ok("exec", "hc", "sh", "-c", "echo fine > /tmp/ok")
    wait_for(lambda: _status(pyrun, "hc") == "healthy", "healthy")
    health = _health(pyrun, "hc")
    assert health["FailingStreak"] == 0
    assert health["Log"][-1]["ExitCode"] == 0 and health["Log"][-1]["Output"] == "fine\n"
    assert _ps_status(pyrun, "hc").endswith("(healthy)")
    assert pyrun.ok("ps", "-q", "-f", "health=healthy").split() == [cid[:12]]
    assert pyrun.ok("ps", "-q", "-f", "health=starting").split() == []
    # only the last five results are kept
    wait_for(lambda: len(_health(pyrun, "hc")["Log"]) == 5, "five results")
    assert len(_health(pyrun, "hc")["Log"]) == 5

    # a stopped container's monitor is closed: Docker reports it unhealthy
    pyrun.ok("stop", "-t", "0", "hc")
    assert _status(pyrun, "hc") == "unhealthy"
    assert _ps_status(pyrun, "hc").startswith("Exited")
    # a restart starts over: starting, streak 0, the log kept
    pyrun.ok("start", "hc")
    assert _status(pyrun, "hc") in ("starting", "healthy")
    pyrun.ok("rm", "-f", "hc", "plain")


def test_image_healthcheck_overrides_and_no_healthcheck(pyrun_lc, tmp_path):
    pyrun = pyrun_lc
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nHEALTHCHECK --interval=300ms --start-period=1h --start-interval=200ms "
        "CMD [\"cat\", \"/tmp/ok\"]\n")
    pyrun.ok("build", "-q", "-t", "hcimg", str(ctx))

    pyrun.ok("run", "-d", "--name", "img", "hcimg", "sleep", "100")
    config = pyrun.inspect("img")["Config"]["Healthcheck"]
    assert config["Test"] == ["CMD", "cat", "/tmp/ok"] and config["Interval"] == 300_000_000
    # within the start period failures do not count: it stays starting
    wait_for(lambda: len((_health(pyrun, "img") or {}).get("Log", ())) >= 3, "three checks")
    health = _health(pyrun, "img")
    assert health["Status"] == "starting" and health["FailingStreak"] == 0
    assert _ps_status(pyrun, "img").endswith("(health: starting)")
    assert pyrun.ok("ps", "-q", "-f", "health=starting", "--format", "{{.Names}}").split() \
        == ["img"]
    pyrun.ok("exec", "img", "touch", "/tmp/ok")
    wait_for(lambda: _status(pyrun, "img") == "healthy", "healthy")

    # flags override the image's field by field: its command and interval stay
    pyrun.ok("run", "-d", "--name", "over", "--health-retries", "1",
             "--health-start-period", "0s", "hcimg", "sleep", "100")
    config = pyrun.inspect("over")["Config"]["Healthcheck"]
    assert config == {"Test": ["CMD", "cat", "/tmp/ok"], "Interval": 300_000_000,
                      "StartPeriod": 3_600_000_000_000, "StartInterval": 200_000_000,
                      "Retries": 1}

    pyrun.ok("run", "-d", "--name", "off", "--no-healthcheck", "hcimg", "sleep", "100")
    # as Docker's merge: NONE, with the image's other fields filled in
    assert pyrun.inspect("off")["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert "Health" not in pyrun.state("off")
    assert "(" not in _ps_status(pyrun, "off")
    assert pyrun.ok("ps", "-f", "health=none", "--format", "{{.Names}}").split() == ["off"]
    pyrun.ok("rm", "-f", "img", "over", "off")


def test_timeout_and_foreground_run(pyrun_lc):
    pyrun = pyrun_lc
    pyrun.ok("run", "-d", "--name", "slow", "--health-cmd", "sleep 10",
             "--health-timeout", "200ms", "--health-interval", "100ms", "--health-retries", "1",
             "busybox", "sleep", "100")
    wait_for(lambda: _status(pyrun, "slow") == "unhealthy", "unhealthy")
    entry = _health(pyrun, "slow")["Log"][0]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (200ms)"
    pyrun.ok("rm", "-f", "slow")

    # a foreground run is checked too; afterwards it is unhealthy, its results kept
    pyrun.ok("run", "--name", "fg", "--health-cmd", "echo ran", "--health-interval", "100ms",
             "busybox", "sleep", "1")
    health = _health(pyrun, "fg")
    assert health["Status"] == "unhealthy"
    assert health["Log"] and health["Log"][0]["Output"] == "ran\n"
    pyrun.ok("rm", "fg")


@pytest.mark.parametrize(("args", "message"), [
    (("--health-interval", "abc"),
     'invalid argument "abc" for "--health-interval" flag: time: invalid duration "abc"'),
    (("--health-timeout", "5"),
     'invalid argument "5" for "--health-timeout" flag: time: missing unit in duration "5"'),
    (("--no-healthcheck", "--health-cmd", "true"),
     "--no-healthcheck conflicts with --health-* options"),
    (("--health-interval", "-1s"), "--health-interval cannot be negative"),
    (("--health-retries", "-1"), "--health-retries cannot be negative"),
    (("--health-start-period", "-1s"), "--health-start-period cannot be negative"),
    (("--health-interval", "500us"), "Interval in Healthcheck cannot be less than 1ms"),
    (("--health-start-interval", "10ns"),
     "StartInterval in Healthcheck cannot be less than 1ms"),
])
def test_bad_health_flags(pyrun_lc, args, message):
    res = pyrun_lc("create", *args, "busybox", "true")
    assert res.returncode == 125, res.stderr
    assert message in res.stderr
    assert pyrun_lc.ok("ps", "-aq") == ""


def test_bad_health_filter(pyrun_lc):
    res = pyrun_lc("ps", "-f", "health=sick")
    assert res.returncode == 1  # a daemon error (docker ps exits 1)
    assert "Unrecognised filter value for health: sick" in res.stderr

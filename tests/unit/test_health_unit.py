"""The health-check config rules that need no container: Docker's merge of flags over the
image's HEALTHCHECK, the probe's command line, the daemon's checks, Go's duration text."""

from __future__ import annotations

import pytest

from pybuild.errors import ContainerError
from pybuild.runtime import health

IMAGE = {"Test": ["CMD", "check"], "Interval": 5_000_000_000, "Retries": 4}


def test_merge_fills_what_the_user_left_zero():
    assert health.merge(None, None) is None
    assert health.merge(None, IMAGE) == IMAGE
    user = {"Test": [], "Interval": 0, "Timeout": 2_000_000_000, "Retries": 0}
    assert health.merge(user, IMAGE) == {"Test": ["CMD", "check"], "Interval": 5_000_000_000,
                                         "Timeout": 2_000_000_000, "Retries": 4}
    assert health.merge({"Test": ["CMD-SHELL", "x"]}, None) == {"Test": ["CMD-SHELL", "x"]}


def test_probe_argv():
    assert health.probe_argv(None, None) is None
    assert health.probe_argv({"Test": ["NONE"]}, None) is None
    assert health.probe_argv({"Test": ["WHAT", "x"]}, None) is None
    assert health.probe_argv({"Test": ["CMD"]}, None) is None
    assert health.probe_argv({"Test": ["CMD", "a", "b"]}, None) == ["a", "b"]
    assert health.probe_argv({"Test": ["CMD-SHELL", "a b"]}, None) == ["/bin/sh", "-c", "a b"]
    assert health.probe_argv({"Test": ["CMD-SHELL", "a"]}, ["/bin/bash", "-ec"]) == \
        ["/bin/bash", "-ec", "a"]


def test_validate():
    health.validate(None)
    health.validate({"Interval": 1_000_000, "Retries": 0})
    with pytest.raises(ContainerError, match="Timeout in Healthcheck cannot be less than 1ms"):
        health.validate({"Timeout": 999_999})
    with pytest.raises(ContainerError, match="Retries in Healthcheck cannot be negative"):
        health.validate({"Retries": -2})


@pytest.mark.parametrize(("ns", "text"), [
    (30_000_000_000, "30s"), (200_000_000, "200ms"), (1_500_000_000, "1.5s"),
    (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h0m0s"), (1_500, "1.5µs"), (7, "7ns"),
])
def test_go_duration(ns, text):
    assert health.go_duration(ns) == text


def test_status_of_a_stopped_container_is_unhealthy(tmp_path):
    assert health.current_health(str(tmp_path), True) is None
    assert health.status_word(None) == "none"
    (tmp_path / "health.json").write_text('{"Status": "healthy", "FailingStreak": 0, "Log": []}')
    assert health.current_health(str(tmp_path), True)["Status"] == "healthy"
    assert health.current_health(str(tmp_path), False)["Status"] == "unhealthy"

"""run/create's health-check flags (--health-cmd, --health-interval, ..., --no-healthcheck)
-> the Healthcheck the user asked for, with Docker's CLI checks and messages."""

from __future__ import annotations

import click

from pybuild.errors import ContainerError

_DURATIONS = ("interval", "timeout", "start_period", "start_interval")
_KEYS = {"interval": "Interval", "timeout": "Timeout", "start_period": "StartPeriod",
         "start_interval": "StartInterval"}

OPTIONS = (
    click.option("--health-cmd", "health_cmd", default=None,
                 help="Command to run to check health (run by /bin/sh -c in the container)."),
    click.option("--health-interval", "health_interval", default=None,
                 help="Time between running the check (ms|s|m|h) (default 30s)."),
    click.option("--health-timeout", "health_timeout", default=None,
                 help="Maximum time to allow one check to run (ms|s|m|h) (default 30s)."),
    click.option("--health-retries", "health_retries", default=None, type=int,
                 help="Consecutive failures needed to report unhealthy (default 3)."),
    click.option("--health-start-period", "health_start_period", default=None,
                 help="Start period for the container to initialize before failures count "
                      "(ms|s|m|h) (default 0s)."),
    click.option("--health-start-interval", "health_start_interval", default=None,
                 help="Time between running the check during the start period (ms|s|m|h) "
                      "(default 5s)."),
    click.option("--no-healthcheck", "no_healthcheck", is_flag=True,
                 help="Disable any container-specified HEALTHCHECK."),
)


def _duration(flag: str, text: str | None) -> int:
    if text is None:
        return 0
    from pybuild.builder.flags import InstructionError, parse_go_duration

    try:
        return parse_go_duration(text)
    except InstructionError as e:
        raise ContainerError(f'invalid argument "{text}" for "{flag}" flag: {e}') from None


def healthcheck_of(o: dict) -> dict | None:
    """The user's Healthcheck (Docker's HealthConfig as JSON), or None without any flag."""
    values = {name: _duration(f"--health-{name.replace('_', '-')}", o[f"health_{name}"])
              for name in _DURATIONS}
    retries = o["health_retries"] or 0
    have = bool(o["health_cmd"]) or any(values.values()) or retries != 0
    if o["no_healthcheck"]:
        if have:
            raise ContainerError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    for name in ("interval", "timeout"):
        if values[name] < 0:
            raise ContainerError(f"--health-{name} cannot be negative")
    if retries < 0:
        raise ContainerError("--health-retries cannot be negative")
    for name in ("start_period", "start_interval"):
        if values[name] < 0:
            raise ContainerError(f"--health-{name.replace('_', '-')} cannot be negative")
    config: dict = {"Test": ["CMD-SHELL", o["health_cmd"]] if o["health_cmd"] else []}
    config.update({_KEYS[name]: values[name] for name in _DURATIONS})
    config["Retries"] = retries
    return config

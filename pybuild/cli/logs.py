"""`pyrun logs`: a container's json-file log (its rotated files too), with -f, -t, --tail,
--since and --until; Docker's error for a container logging to `none`."""

from __future__ import annotations

import os
import re
import sys
import time

import click

from pybuild.cli.common import store_root
from pybuild.errors import ContainerError, ContainerStateError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_time(value: str, now: float) -> float:
    """Docker's timestamp arguments: unix seconds (with fraction), RFC3339 (date only too),
    or a Go duration ("10m", "1h30m") counted back from now."""
    from pybuild.runtime.logfile import parse_rfc3339

    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"(?:" + _DURATION.pattern + r")+", text):
        return now - sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            text += "T00:00:00"
        return parse_rfc3339(text)
    except ValueError:
        raise ContainerError(f'invalid value for "since"/"until": {value!r} (a unix time, '
                             "an RFC 3339 date or a duration such as 10m)") from None


@click.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("-n", "--tail", default="all", show_default=True,
              help="Number of lines to show from the end of the logs.")
@click.option("--since", default=None, help="Show logs since a timestamp or relative time.")
@click.option("--until", default=None, help="Show logs before a timestamp or relative time.")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.argument("container")
@click.pass_context
def logs_cmd(ctx: click.Context, follow, timestamps, tail, since, until, details,
             container) -> int:
    """Fetch the logs of a container."""
    from pybuild.runtime import lifecycle
    from pybuild.runtime.logfile import follow as follow_log
    from pybuild.runtime.logfile import log_path, read_entries

    if tail == "all" or tail == "":
        count = None
    else:
        try:
            count = int(tail)
        except ValueError:
            raise ContainerError(f"invalid value for --tail: {tail!r}") from None
        if count < 0:
            count = None
    now = time.time()
    since_t = parse_time(since, now) if since else None
    until_t = parse_time(until, now) if until else None
    root = store_root((ctx.obj or {}).get("root"))
    c = lifecycle.find(lifecycle.containers_dir(root), container)
    from pybuild.runtime.logopts import LogConfig

    if not LogConfig.from_json(c.state().get("log_config")).readable:
        raise ContainerStateError("configured logging driver does not support reading")
    path = log_path(c.dir, c.id)
    entries, offset = read_entries(path, count)

    def show(entry) -> bool:
        """False once past --until (nothing later can show)."""
        if since_t is not None or until_t is not None:
            ts = entry.timestamp
            if since_t is not None and ts < since_t:
                return True
            if until_t is not None and ts > until_t:
                return False
        text = entry.log
        if details:  # moby: the attrs (k=v,...) and a space
            text = entry.details + " " + text
        if timestamps:
            text = entry.fixed_time + " " + text
        stream = sys.stderr if entry.stream == "stderr" else sys.stdout
        stream.buffer.write(text.encode("utf-8", "replace"))
        stream.flush()
        return True

    for entry in entries:
        if not show(entry):
            return 0
    if not follow:
        return 0

    def done() -> bool:
        try:
            state = c.state()
        except (OSError, ValueError):
            return not os.path.isdir(c.dir)
        return not lifecycle.is_active(state) and not lifecycle.supervisor_alive(state)

    try:
        for entry in follow_log(path, offset, done):
            if not show(entry):
                return 0
    except BrokenPipeError:
        return 0
    return 0

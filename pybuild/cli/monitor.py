"""`pyrun top`, `stats`, `pause`, `unpause`: looking at and freezing running containers,
with Docker's columns and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import click

from pybuild.cli.common import store_root
from pybuild.errors import ContainerError, PybuildError


def _containers_dir(ctx: click.Context) -> str:
    return os.path.join(store_root((ctx.obj or {}).get("root")), "containers")


def _columns(rows: list[list[str]], minwidth: int) -> str:
    """Go's tabwriter(minwidth, tabwidth 1, padding 3): the last cell is not padded."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, minwidth), len(cell) + 3)
    return "".join("".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell
                           for i, cell in enumerate(row)) + "\n" for row in rows)


# ---- top


class TopError(ContainerError):
    """Docker's daemon refuses the ps options or output: its CLI exits 1."""

    exit_code = 1


def parse_ps(output: str, pids: set[int]) -> list[list[str]]:
    """Docker's parsePSOutput: the header's PID column picks the rows of `pids`; the last
    column (the command) keeps its spaces."""
    lines = output.splitlines()
    if not lines:
        raise TopError("ps gave no output")
    titles = lines[0].split()
    if "PID" not in titles:
        raise TopError("Couldn't find PID field in ps output")
    index = titles.index("PID")
    rows = [titles]
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= index:
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise TopError(f"Unexpected pid '{fields[index]}': not a number") from None
        if pid in pids:
            rows.append(fields)
    return rows


@click.command("top", context_settings={"help_option_names": ["--help"],
                                        "ignore_unknown_options": True,
                                        "allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top_cmd(ctx: click.Context, container: str, ps_args: tuple[str, ...]) -> int:
    """Display the running processes of a container (host pids; ps options, default -ef)."""
    from pybuild.runtime import lookup

    _c, _state, pid = lookup.running(_containers_dir(ctx), container, paused_ok=True)
    pids = set(lookup.pid_namespace_members(pid))
    out = subprocess.run(["ps", *(ps_args or ("-ef",))], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise TopError(f"ps: {out.stderr.strip() or out.stdout.strip()}")
    sys.stdout.write(_columns(parse_ps(out.stdout, pids), 20))
    return 0


# ---- stats


def _go_binary_size(n: float) -> str:
    """units.BytesSize: binary units, 4 significant digits (what Docker's MEM column uses)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024.0
        i += 1
    return f"{n:.4g}{units[i]}"


STATS_FIELDS = {"ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_HEADER = list(STATS_FIELDS.values())


def stats_fields(container_id: str, name: str, before, after, no_trunc: bool) -> dict:
    """Docker's stats formatter fields (--format names) for one container."""
    from pybuild.cli.images_fmt import human_size
    from pybuild.runtime import stats as st

    short = container_id if no_trunc else container_id[:12]
    fields = {"Container": short, "ID": short, "Name": name or "--"}
    if not after.running:
        return {**fields, "CPUPerc": "0.00%", "MemUsage": "0B / 0B", "MemPerc": "0.00%",
                "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0"}
    return {
        **fields,
        "CPUPerc": f"{st.cpu_percent(before, after) if before.running else 0.0:.2f}%",
        "MemUsage": (f"{_go_binary_size(st.memory_used(after))} / "
                     f"{_go_binary_size(after.memory_limit)}"),
        "MemPerc": f"{st.memory_percent(after):.2f}%",
        "NetIO": f"{human_size(after.net_rx)} / {human_size(after.net_tx)}",
        "BlockIO": f"{human_size(after.block_read)} / {human_size(after.block_write)}",
        "PIDs": str(after.pids),
    }


def stats_row(container_id: str, name: str, before, after, no_trunc: bool) -> list[str]:
    fields = stats_fields(container_id, name, before, after, no_trunc)
    return [str(fields[key]) for key in STATS_FIELDS]


def render_stats(rows: list[dict], template: str | None) -> str:
    """The default table, or --format (a Go template of the fields; `table ...` adds
    Docker's headers)."""
    if template is None:
        return _columns([STATS_HEADER] + [[r[k] for k in STATS_FIELDS] for r in rows], 10)
    from pybuild.cli.images_fmt import format_rows

    try:
        text = format_rows(template, rows, {**STATS_FIELDS, "Container": "CONTAINER"})
    except ValueError as e:
        raise ContainerError(f"template parsing error: {e}") from None
    return text + "\n" if text else ""


def _select(containers_dir: str, refs: tuple[str, ...], all_: bool):
    """The named containers, or every running one (every one with -a), oldest first."""
    from pybuild.runtime import lifecycle, lookup

    if refs:
        return [lifecycle.find(containers_dir, r) for r in refs]
    states = lifecycle.list_states(containers_dir)  # newest first
    return [c for c, state in reversed(states)
            if all_ or lookup.init_pid(c, state) is not None]


def _names(containers) -> list[str]:
    """Current names (`rename` changes the name links, not state.json)."""
    from pybuild.runtime.lifecycle import name_of
    from pybuild.runtime.names import names_of

    names = names_of(containers[0].containers_dir) if containers else {}
    out = []
    for c in containers:
        try:
            out.append(name_of(c, c.state(), names))
        except (OSError, ValueError):
            out.append("")
    return out


@click.command("stats", context_settings={"help_option_names": ["--help"]})
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("--format", "template", default=None,
              help="Go template of .Container .Name .ID .CPUPerc .MemUsage .MemPerc .NetIO "
                   ".BlockIO .PIDs ('table ...' for columns).")
@click.argument("containers", nargs=-1)
@click.pass_context
def stats_cmd(ctx: click.Context, all_: bool, no_stream: bool, no_trunc: bool,
              template: str | None, containers: tuple[str, ...]) -> int:
    """Display a live stream of container(s) resource usage statistics."""
    from pybuild.runtime import stats as st

    containers_dir = _containers_dir(ctx)
    chosen = _select(containers_dir, containers, all_)
    previous = {c.id: st.sample(c) for c in chosen}
    try:
        while True:
            if not containers:  # new containers come and go while streaming
                chosen = _select(containers_dir, containers, all_)
            time.sleep(1.0)  # CPU % is a delta: Docker's samples are a second apart
            current = {c.id: st.sample(c) for c in chosen}
            rows = [stats_fields(c.id, name, previous.get(c.id, current[c.id]),
                                 current[c.id], no_trunc)
                    for c, name in zip(chosen, _names(chosen), strict=True)]
            text = render_stats(rows, template)
            if no_stream:
                sys.stdout.write(text)
                return 0
            sys.stdout.write("\033[2J\033[H" + text)
            sys.stdout.flush()
            previous = current
    except KeyboardInterrupt:
        return 0


# ---- pause, unpause


def _freeze_each(ctx: click.Context, refs: tuple[str, ...], pause: bool) -> int:
    from pybuild.runtime import lookup
    from pybuild.runtime import pause as freezer

    containers_dir = _containers_dir(ctx)
    failed = False
    for ref in refs:
        try:
            container, state, pid = lookup.running(containers_dir, ref, paused_ok=True)
            (freezer.pause if pause else freezer.unpause)(container, state, pid)
            print(ref)
        except PybuildError as e:
            print(f"error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


@click.command("pause", context_settings={"help_option_names": ["--help"]})
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def pause_cmd(ctx: click.Context, containers: tuple[str, ...]) -> int:
    """Pause all processes within one or more containers."""
    return _freeze_each(ctx, containers, True)


@click.command("unpause", context_settings={"help_option_names": ["--help"]})
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def unpause_cmd(ctx: click.Context, containers: tuple[str, ...]) -> int:
    """Unpause all processes within one or more containers."""
    return _freeze_each(ctx, containers, False)

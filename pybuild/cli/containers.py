"""Container lifecycle verbs with Docker's flags and exit codes: create, start, stop, restart,
kill, rm, wait, rename, port, container prune, and the `pyrun container <verb>` group."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import click

from pybuild.cli.common import debug_enabled, store_root
from pybuild.cli.run import _options, create_container
from pybuild.errors import ContainerError, PybuildError


def _cdir(ctx: click.Context) -> str:
    from pybuild.runtime.lifecycle import containers_dir

    return containers_dir(store_root((ctx.obj or {}).get("root")))


def _each(ctx: click.Context, refs, fn: Callable) -> int:
    """Apply `fn(container, ref)` to every argument as Docker does: report each failure,
    carry on, exit 1 if any failed."""
    from pybuild.runtime.lifecycle import find

    cdir = _cdir(ctx)
    rc = 0
    for ref in refs:
        try:
            fn(find(cdir, ref), ref)
        except PybuildError as e:
            if debug_enabled():
                import traceback

                traceback.print_exception(e)
            print(f"error: {e}", file=sys.stderr)
            rc = 1
    return rc


@click.command("create", context_settings={"help_option_names": ["--help"],
                                           "allow_interspersed_args": False})
@_options
@click.pass_context
def create_cmd(ctx: click.Context, **o) -> int:
    """Create a new container (start it with `pyrun start`)."""
    container = create_container(ctx, o)
    container.update(owner=None)  # nobody runs it yet: not for reap_stale to clean
    click.echo(container.id)
    return 0


@click.command("start")
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.option("--detach-keys", default="ctrl-p,ctrl-q", help="Key sequence for detaching.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def start_cmd(ctx: click.Context, attach, interactive, detach_keys, containers) -> int:
    """Start one or more stopped containers."""
    from pybuild.runtime import lifecycle

    if (attach or interactive) and len(containers) > 1:
        raise ContainerError("you cannot start and attach multiple containers at once")
    if attach or interactive:
        from pybuild.cli.attach import start_attached

        c = lifecycle.find(_cdir(ctx), containers[0])
        state = c.state()
        return start_attached(c, stdin=interactive and not state.get("stdin_null", True),
                              tty=bool((state.get("config_opts") or {}).get("Tty")),
                              detach_keys=detach_keys)

    def one(c, ref):
        lifecycle.start(c)
        click.echo(ref)

    return _each(ctx, containers, one)


@click.command("stop")
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait before killing the container (default 10).")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def stop_cmd(ctx: click.Context, timeout, sig, containers) -> int:
    """Stop one or more running containers."""
    from pybuild.runtime import lifecycle

    if sig is not None:
        lifecycle.parse_signal(sig)

    def one(c, ref):
        lifecycle.stop(c, timeout, signal_name=sig)
        click.echo(ref)

    return _each(ctx, containers, one)


@click.command("restart")
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait before killing the container (default 10).")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def restart_cmd(ctx: click.Context, timeout, sig, containers) -> int:
    """Restart one or more containers."""
    from pybuild.runtime import lifecycle

    if sig is not None:
        lifecycle.parse_signal(sig)

    def one(c, ref):
        lifecycle.stop(c, timeout, signal_name=sig)
        lifecycle.start(c)
        click.echo(ref)

    return _each(ctx, containers, one)


@click.command("kill")
@click.option("-s", "--signal", "sig", default="KILL", show_default=True,
              help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def kill_cmd(ctx: click.Context, sig, containers) -> int:
    """Kill one or more running containers."""
    from pybuild.runtime import lifecycle

    number = lifecycle.parse_signal(sig)

    def one(c, ref):
        lifecycle.kill(c, number)
        click.echo(ref)

    return _each(ctx, containers, one)


@click.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container.")
@click.option("-v", "--volumes", is_flag=True,
              help="Remove anonymous volumes associated with the container.")
@click.option("-l", "--link", is_flag=True, hidden=True)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx: click.Context, force, volumes, link, containers) -> int:
    """Remove one or more containers."""
    from pybuild.runtime import lifecycle

    if link:
        raise ContainerError("--link is not supported (there are no legacy links)")
    def one(c, ref):
        lifecycle.remove(c, force=force, volumes=volumes)
        click.echo(ref)

    return _each(ctx, containers, one)


@click.command("wait")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait_cmd(ctx: click.Context, containers) -> int:
    """Block until one or more containers stop, then print their exit codes."""
    from pybuild.runtime import lifecycle

    return _each(ctx, containers, lambda c, _ref: click.echo(lifecycle.wait(c)))


@click.command("rename")
@click.argument("container")
@click.argument("new_name")
@click.pass_context
def rename_cmd(ctx: click.Context, container, new_name) -> int:
    """Rename a container."""
    from pybuild.runtime import lifecycle

    if not container or not new_name:
        raise ContainerError("Neither old nor new names may be empty")
    lifecycle.rename(lifecycle.find(_cdir(ctx), container), new_name.lstrip("/"))
    return 0


@click.command("port")
@click.argument("container")
@click.argument("private_port", required=False)
@click.pass_context
def port_cmd(ctx: click.Context, container, private_port) -> int:
    """List port mappings or a specific mapping for the container."""
    from pybuild.runtime import lifecycle

    c = lifecycle.find(_cdir(ctx), container)
    state = lifecycle.fresh_state(c)
    lines = port_lines(state) if lifecycle.is_active(state) else []
    if private_port:
        port, _, proto = private_port.partition("/")
        if not port.isdigit():
            raise ContainerError(f"Invalid port: {private_port}")
        want = f"{port}/{proto or 'tcp'}"
        found = [line.split(" -> ", 1)[1] for line in lines if line.split(" -> ")[0] == want]
        if not found:
            print(f"error: No public port '{want}' published for {container}", file=sys.stderr)
            return 1
        click.echo("\n".join(found))
        return 0
    if lines:
        click.echo("\n".join(lines))
    return 0


def port_lines(state: dict) -> list[str]:
    from pybuild.runtime.netsetup import ContainerNetwork

    if not state.get("network"):
        return []
    return ContainerNetwork.from_json(state["network"]).port_lines()


@click.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Filter values (until=, label=).")
@click.pass_context
def prune_cmd(ctx: click.Context, force, filters) -> int:
    """Remove all stopped containers."""
    import time

    from pybuild.cli.images_fmt import human_size
    from pybuild.cli.ps import parse_filters, until_of
    from pybuild.runtime import lifecycle

    wanted = parse_filters(filters, allowed=("until", "label", "label!"))
    if not force:
        click.echo("WARNING! This will remove all stopped containers.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return 0
    cdir = _cdir(ctx)
    deleted, reclaimed = [], 0
    for c, _state in lifecycle.list_states(cdir):
        state = lifecycle.fresh_state(c)
        if lifecycle.is_active(state) or lifecycle.supervisor_alive(state):
            continue
        if "until" in wanted and not any(state.get("created", 0) < until_of(v, time.time())
                                         for v in wanted["until"]):
            continue
        from pybuild.cli.ps import label_match

        if not label_match(state.get("labels") or {}, wanted):
            continue
        reclaimed += _dir_size(c.dir + "/upper")
        lifecycle.remove(c)
        deleted.append(c.id)
    if deleted:
        click.echo("Deleted Containers:")
        for cid in deleted:
            click.echo(cid)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def _dir_size(path: str) -> int:
    import os

    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


# `pyrun container <verb>`: Docker's management-command names for the same verbs.
_ALIASES = {"ls": "ps", "list": "ps", "remove": "rm"}
_CONTAINER_VERBS = ("attach", "commit", "cp", "create", "diff", "exec", "export", "inspect",
                    "kill", "logs", "ls", "pause", "port", "prune", "rename", "restart", "rm",
                    "run", "start", "stats", "stop", "top", "unpause", "update", "wait")


class _ContainerGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        from pybuild.cli.pyrun import COMMANDS

        return [v for v in _CONTAINER_VERBS
                if v == "prune" or _ALIASES.get(v, v) in COMMANDS]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "prune":
            return prune_cmd
        if name == "inspect":
            from pybuild.cli.inspect import inspect_container_cmd

            return inspect_container_cmd
        from pybuild.cli.pyrun import COMMANDS

        target = COMMANDS.get(_ALIASES.get(name, name))
        if target is None or name not in _CONTAINER_VERBS:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


@click.group("container", cls=_ContainerGroup)
def container_group() -> None:
    """Manage containers."""

"""`pyrun exec`: run a command in a running container, with Docker's flags and exit codes."""

from __future__ import annotations

import json
import os
import sys

import click

from pybuild.cli.common import store_root
from pybuild.errors import ContainerError


@click.command(
    "exec",
    context_settings={"help_option_names": ["--help"], "allow_interspersed_args": False},
)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables (K=V or K).")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables.")
@click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", default=None, help="Working directory inside the container.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_cmd(ctx: click.Context, detach, interactive, tty, env, env_file, user, workdir,
             privileged, container, command) -> int:
    """Execute a command in a running container."""
    from pybuild.cli.run import parse_env_items, read_env_file
    from pybuild.runtime import exec as rexec
    from pybuild.runtime import lookup, stdio

    if tty and interactive and not os.isatty(0):
        print("the input device is not a TTY", file=sys.stderr)
        ctx.exit(1)
    if detach and (tty or interactive):
        raise ContainerError("-d cannot be combined with -t or -i: a detached command's "
                             "standard streams are /dev/null")
    if workdir is not None and not workdir.startswith("/"):
        raise ContainerError(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    env_items = []
    for f in env_file:
        env_items.extend(read_env_file(f))
    env_items.extend(parse_env_items(env))
    root = store_root((ctx.obj or {}).get("root"))
    target, _state, pid = lookup.running(os.path.join(root, "containers"), container)
    with open(os.path.join(target.dir, "config.json")) as f:
        spec = json.load(f)
    request = rexec.ExecRequest(args=tuple(command), env=tuple(env_items), user=user,
                                workdir=workdir, tty=tty, interactive=interactive,
                                detach=detach, privileged=privileged)
    all_caps = ()
    if privileged:
        from pybuild.runtime.linux import bounding_set

        all_caps = bounding_set()
    process = rexec.exec_process(spec, request, all_caps)
    with stdio.forward_signals() as forwarder:
        pending: list[int] = []
        if not detach:  # signals that come before the command's pid is known wait for it
            forwarder.target = pending.append
        proc = rexec.start(pid, process, detach=detach, stdin_null=not interactive)
        if detach:
            return 0
        forwarder.target = proc.kill
        for sig in pending:
            proc.kill(sig)
        if proc.master is not None:
            stdio.copy_winsize(proc.master)
            master, proc.master = proc.master, None
            stdio.pump_pty(master, interactive)
        return proc.wait()

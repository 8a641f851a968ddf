"""`pyrun commit [-m MSG] [-a AUTHOR] [-c INSTRUCTION]... [-p] CONTAINER [REPOSITORY[:TAG]]`:
a new image from a container's changes (Docker's flags; errors exit 1 as Docker's do)."""

from __future__ import annotations

import click

from pybuild.cli.common import store_root
from pybuild.errors import PybuildError


def _bool(value: str) -> bool:
    lowered = str(value).lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise click.BadParameter(f'invalid argument "{value}" for "-p, --pause" flag: '
                             "strconv.ParseBool: parsing: invalid syntax")


@click.command("commit", context_settings={"help_option_names": ["--help"]})
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Commit message")
@click.option("-p", "--pause", "pause", is_flag=False, flag_value="true", default="true",
              help="Pause container during commit (default true; --pause=false to not)")
@click.argument("container")
@click.argument("ref", required=False)
@click.pass_context
def commit_cmd(ctx, author, changes, message, pause, container, ref):
    """Create a new image from a container's changes."""
    import os

    from pybuild.runtime.commit import commit
    from pybuild.runtime.containerref import find_container

    root = store_root((ctx.find_root().obj or {}).get("root"))
    try:
        cid = find_container(os.path.join(root, "containers"), container)
        image_id = commit(root, cid, ref=ref, message=message, author=author,
                          changes=changes, pause=_bool(pause))
    except PybuildError as e:
        e.exit_code = 1
        raise
    click.echo(image_id)

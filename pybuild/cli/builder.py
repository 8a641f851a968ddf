"""`pyrun builder prune`: drop the build cache (Docker's `docker builder prune`)."""

from __future__ import annotations

import os

import click

from pybuild.cli.common import store_root
from pybuild.cli.images_fmt import human_size


@click.group(name="builder")
def builder_group() -> None:
    """Manage the build cache."""


@builder_group.command(name="prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Also remove RUN --mount=type=cache directories.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def prune_cmd(ctx: click.Context, all_: bool, force: bool) -> None:
    """Remove the build cache: cache entries, the layers only they keep, remembered parses."""
    if not force:
        what = "all build cache" if all_ else "the build cache (cache mounts are kept)"
        try:
            sure = click.confirm(f"WARNING! This will remove {what}. Are you sure you want to "
                                 "continue?", default=False)
        except click.Abort:  # no answer (stdin closed) is a no
            sure = False
        if not sure:
            return
    from pybuild.cache.index import forget
    from pybuild.cache.usage import buildcache_dir, dir_size
    from pybuild.image.snapshots import remove_tree
    from pybuild.image.store import Store

    with Store(store_root((ctx.find_root().obj or {}).get("root"))) as store:
        removed = forget(store)
        freed = 0
        parts = ["dockerfiles"] + (["mounts"] if all_ else [])
        for part in parts:
            path = os.path.join(buildcache_dir(store), part)
            freed += dir_size(path)
            remove_tree(path)
        freed += store.gc().bytes_freed
    click.echo(f"Deleted build cache objects: {removed}")
    click.echo(f"Total reclaimed space: {human_size(freed)}")

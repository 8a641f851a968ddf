"""`pyrun system check` and `pyrun system df`: the store's health and disk usage."""

from __future__ import annotations

import importlib

import click

from pybuild.cli.common import store_root
from pybuild.cli.images_fmt import human_size

# `system df` rows: "module:function" taking a Store and returning pybuild.image.usage.Usage.
# Other areas (containers, volumes, build cache) append theirs, in Docker's row order.
DF_ROWS: list[str] = [
    "pybuild.image.usage:image_usage",
    "pybuild.runtime.volumes:volume_usage",
    "pybuild.cache.usage:cache_usage",
]


def _store(ctx: click.Context):
    from pybuild.image.store import Store

    return Store(store_root((ctx.find_root().obj or {}).get("root")))


@click.group(name="system")
def system() -> None:
    """Manage the store."""


@system.command(name="check")
@click.option("--no-verify", is_flag=True, help="Do not re-hash blobs (faster).")
@click.option("-q", "--quiet", is_flag=True, help="Print problems only, not notes.")
@click.pass_context
def check(ctx: click.Context, no_verify: bool, quiet: bool) -> int:
    """Verify blobs against their digests and meta.db against the files; exit 1 on problems."""
    from pybuild.image.check import check_store

    with _store(ctx) as store:
        findings = check_store(store, verify_blobs=not no_verify)
        problems = [f for f in findings if f.problem]
        for f in findings:
            if f.problem or not quiet:
                click.echo(f"{'problem' if f.problem else 'note'}: {f}")
        if problems:
            click.echo(f"{len(problems)} problem(s) found in {store.root}", err=True)
            ctx.exit(1)
        if not quiet:
            click.echo(f"store OK: {store.root} ({len(store.blobs())} blobs, "
                       f"{len(store.snapshots())} snapshots, {len(store.images())} images)")
    return 0


@system.command(name="df")
@click.pass_context
def df(ctx: click.Context) -> None:
    """Show disk usage, as `docker system df`."""
    with _store(ctx) as store:
        rows = []
        for target in DF_ROWS:
            module, _, attr = target.partition(":")
            rows.append(getattr(importlib.import_module(module), attr)(store))
    click.echo(f"{'TYPE':<16}{'TOTAL':<10}{'ACTIVE':<10}{'SIZE':<10}RECLAIMABLE")
    for u in rows:
        pct = f" ({int(u.reclaimable * 100 / u.size)}%)" if u.size else ""
        click.echo(f"{u.kind:<16}{u.total:<10}{u.active:<10}{human_size(u.size):<10}"
                   f"{human_size(u.reclaimable)}{pct}")

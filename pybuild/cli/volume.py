"""`pyrun volume create|ls|rm|inspect|prune`, with Docker's flags, columns and exit codes
(volume verbs exit 1 on an engine-side error)."""

from __future__ import annotations

import functools
import json
import sys

import click

from pybuild.cli.common import store_root
from pybuild.errors import PybuildError


def _volumes(ctx: click.Context):
    from pybuild.runtime.volumes import Volumes

    return Volumes(store_root((ctx.find_root().obj or {}).get("root")))


def _pairs(items, what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise click.UsageError(f"invalid {what}: {item!r}")
        out[key] = value
    return out


def _exit_1(fn):
    """Docker's volume verbs report engine errors with exit status 1, not 125."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except PybuildError as e:
            e.exit_code = 1
            raise

    return wrapper


@click.group("volume")
def volume_group():
    """Manage volumes."""


@volume_group.command("create")
@click.option("-d", "--driver", default="local", show_default=True, help="Specify volume driver name")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume")
@click.option("-o", "--opt", "opts", multiple=True,
              help="Set driver specific options (type, device, o, size)")
@click.option("--name", "name_opt", default=None, help="Specify volume name")
@click.argument("name", required=False)
@click.pass_context
@_exit_1
def create_cmd(ctx, driver, labels, opts, name_opt, name):
    """Create a volume."""
    if name and name_opt and name != name_opt:
        raise click.UsageError("conflicting options: either specify --name or provide "
                               "positional arg, not both")
    vol = _volumes(ctx).create(name or name_opt, labels=_pairs(labels, "label"),
                               options=_pairs(opts, "option"), driver=driver)
    click.echo(vol.name)


_FILTERS = ("dangling", "name", "label", "driver")


def _parse_filters(filters) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise click.UsageError(f"bad format of filter (expected name=value): {f}")
        if key not in _FILTERS:
            raise click.UsageError(f"invalid filter '{key}'")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise click.UsageError(f"invalid filter 'dangling={value}'")
        out.setdefault(key, []).append(value)
    return out


def _label_ok(labels, want: str) -> bool:
    k, sep, v = want.partition("=")
    return k in labels and (not sep or labels[k] == v)


@volume_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@click.option("--format", "fmt", help="Format output using a Go-like template")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Provide filter values (dangling=true|false, name=, label=, driver=)")
@click.pass_context
@_exit_1
def ls_cmd(ctx, quiet, fmt, filters):
    """List volumes."""
    from pybuild.cli.images_fmt import format_rows, table

    wanted = _parse_filters(filters)
    volumes = _volumes(ctx)
    listed = volumes.list()
    used: set[str] = set()
    if "dangling" in wanted:
        for vol in listed:
            if volumes.users(vol.name):
                used.add(vol.name)
    rows = []
    for vol in listed:
        if "name" in wanted and not any(n in vol.name for n in wanted["name"]):
            continue
        if "driver" in wanted and vol.driver not in wanted["driver"]:
            continue
        if "label" in wanted and not all(_label_ok(vol.labels, w) for w in wanted["label"]):
            continue
        if "dangling" in wanted:
            dangling = wanted["dangling"][-1].lower() in ("true", "1")
            if (vol.name not in used) != dangling:
                continue
        rows.append({"Name": vol.name, "Driver": vol.driver, "Scope": "local",
                     "Mountpoint": vol.mountpoint, "CreatedAt": vol.created,
                     "Labels": ",".join(f"{k}={v}" for k, v in sorted(vol.labels.items())),
                     "Links": "N/A", "Size": "N/A"})
    if quiet:
        for r in rows:
            click.echo(r["Name"])
        return
    if fmt:
        headers = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "Mountpoint": "MOUNTPOINT", "CreatedAt": "CREATED", "Labels": "LABELS",
                   "Links": "LINKS", "Size": "SIZE"}
        try:
            out = format_rows(fmt, rows, headers)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        if out:
            click.echo(out)
        return
    click.echo(table(["DRIVER", "VOLUME NAME"], [[r["Driver"], r["Name"]] for r in rows]))


@volume_group.command("inspect")
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx, fmt, names):
    """Display detailed information on one or more volumes."""
    from pybuild.cli.network import render_inspect

    volumes, found, rc = _volumes(ctx), [], 0
    for name in names:
        try:
            found.append(volumes.get(name).inspect())
        except PybuildError:
            print(f"error: No such volume: {name}", file=sys.stderr)
            rc = 1
    if fmt:
        for obj in found:
            click.echo(render_inspect(fmt, obj))
    else:
        click.echo(json.dumps(found, indent=4))
    return rc


@volume_group.command("rm")
@click.option("-f", "--force", is_flag=True, help="Do not error if the volume does not exist")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx, force, names):
    """Remove one or more volumes. You cannot remove a volume that is in use by a container."""
    volumes, rc = _volumes(ctx), 0
    for name in names:
        try:
            if force and not volumes.exists(name):
                continue
            volumes.remove(name)
            click.echo(name)
        except PybuildError as e:
            print(f"error: {e}", file=sys.stderr)
            rc = 1
    return rc


@volume_group.command("prune")
@click.option("-a", "--all", "all_volumes", is_flag=True,
              help="Remove all unused volumes, not just anonymous ones")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (label=, label!=)")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_context
@_exit_1
def prune_cmd(ctx, all_volumes, filters, force):
    """Remove unused local volumes (anonymous ones unless --all, as Docker 23+)."""
    from pybuild.cli.images_fmt import human_size

    labels = []
    for f in filters:
        key, sep, value = f.partition("=")
        if key not in ("label", "label!") or not sep:
            raise click.UsageError(f"invalid filter '{key}'")
        k, eq, v = value.partition("=")
        labels.append((k, v if eq else None, key == "label!"))
    if not force:
        what = "all local volumes" if all_volumes else "anonymous local volumes"
        click.echo(f"WARNING! This will remove {what} not used by at least one container.\n"
                   "Are you sure you want to continue? [y/N] ", nl=False)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed, freed = _volumes(ctx).prune(all_volumes, tuple(labels))
    if removed:
        click.echo("Deleted Volumes:")
        for name in removed:
            click.echo(name)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(freed)}")

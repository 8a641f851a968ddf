"""`pyrun network create|ls|rm|inspect|connect|disconnect|prune`, with Docker's flags,
columns and exit codes (network verbs exit 1 on a daemon-side error)."""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys

import click

from pybuild.cli.common import store_root
from pybuild.errors import NetworkError, PybuildError


def _store(ctx: click.Context):
    from pybuild.runtime.netstore import NetworkStore

    return NetworkStore(store_root((ctx.find_root().obj or {}).get("root")))


def _containers_dir(ctx: click.Context) -> str:
    return os.path.join(store_root((ctx.find_root().obj or {}).get("root")), "containers")


def _exit_1(fn):
    """Docker's network verbs report engine errors with exit status 1, not 125."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except NetworkError as e:
            e.exit_code = 1
            raise

    return wrapper


def _created_at(created: str) -> str:
    """Go's time.String(): `2024-05-01 10:00:00.123456 +0000 UTC`."""
    t = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    return t.strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")


def inspect_json(net) -> dict:
    """`docker network inspect`'s shape for one network."""
    prefix = f"/{net.prefixlen}" if net.subnet else ""
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": None if net.builtin else {},
            "Config": [{"Subnet": net.subnet, "Gateway": net.gateway}] if net.subnet else [],
        },
        "Internal": net.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {
            cid: {"Name": ep.name, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                  "IPv4Address": f"{ep.ipv4}{prefix}", "IPv6Address": ""}
            for cid, ep in sorted(net.endpoints.items())
        },
        "Options": {"com.docker.network.bridge.name": net.bridge} if net.bridge else {},
        "Labels": dict(net.labels),
    }


def render_inspect(template: str, obj: dict) -> str:
    """--format of `network inspect` / `volume inspect`: Go's text/template (cli/gotemplate.py)."""
    from pybuild.cli import gotemplate

    try:
        return gotemplate.render(template, obj)
    except gotemplate.TemplateError as e:
        raise click.UsageError(f"template parsing error: {e}") from None


@click.group("network")
def network_group():
    """Manage networks."""


@network_group.command("create")
@click.option("-d", "--driver", default="bridge", show_default=True,
              help="Driver to manage the Network")
@click.option("--subnet", help="Subnet in CIDR format that represents a network segment")
@click.option("--gateway", help="IPv4 Gateway for the master subnet")
@click.option("--label", "labels", multiple=True, help="Set metadata on a network")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("-o", "--opt", "opts", multiple=True,
              help="Set driver specific options (com.docker.network.bridge.name)")
@click.argument("name")
@click.pass_context
@_exit_1
def create_cmd(ctx, driver, subnet, gateway, labels, internal, opts, name):
    """Create a network."""
    from pybuild.runtime import network

    parsed = dict(_pairs(labels))
    options = dict(_pairs(opts))
    bridge_name = options.pop("com.docker.network.bridge.name", None)
    if options:
        raise NetworkError(f"unsupported driver option(s): {', '.join(sorted(options))} "
                           "(only com.docker.network.bridge.name)", name)
    net = network.create_network(_store(ctx), name, subnet=subnet, gateway=gateway,
                                 driver=driver, labels=parsed, internal=internal,
                                 bridge_name=bridge_name)
    click.echo(net.id)


def _pairs(items) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, _, value = item.partition("=")
        out.append((key, value))
    return out


_FILTER_KEYS = ("name", "id", "driver", "label", "type", "scope")


def _parse_filters(filters) -> list[tuple[str, str]]:
    out = []
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise click.UsageError(f"bad format of filter (expected name=value): {f}")
        if key not in _FILTER_KEYS:
            raise click.UsageError(f"invalid filter '{key}'")
        if key == "type" and value not in ("custom", "builtin"):
            raise click.UsageError(f"invalid filter: 'type'='{value}'")
        out.append((key, value))
    return out


def _matches(net, filters: list[tuple[str, str]]) -> bool:
    """Docker's rule: values of one key are OR'ed, different keys are AND'ed."""
    by_key: dict[str, list[str]] = {}
    for key, value in filters:
        by_key.setdefault(key, []).append(value)

    def one(key: str, value: str) -> bool:
        if key == "name":
            return value in net.name
        if key == "id":
            return net.id.startswith(value)
        if key == "driver":
            return net.driver == value
        if key == "scope":
            return value == "local"
        if key == "type":
            return net.builtin == (value == "builtin")
        k, sep, v = value.partition("=")
        return k in net.labels and (not sep or net.labels[k] == v)

    return all(any(one(k, v) for v in values) for k, values in by_key.items())


@network_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@click.option("--format", "fmt", help="Format output using a Go-like template")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Provide filter values (name, id, driver, label, type=custom|builtin, scope)")
@click.pass_context
@_exit_1
def ls_cmd(ctx, quiet, no_trunc, fmt, filters):
    """List networks."""
    from pybuild.cli.images_fmt import format_rows, table
    from pybuild.runtime import network

    wanted = _parse_filters(filters)
    store = _store(ctx)
    network.ensure_builtins(store)
    nets = sorted((n for n in store.list() if _matches(n, wanted)), key=lambda n: n.name)
    rows = [{"ID": n.id if no_trunc else n.id[:12], "Name": n.name, "Driver": n.driver,
             "Scope": "local", "IPv6": "false",
             "Internal": "true" if n.internal else "false",
             "Labels": ",".join(f"{k}={v}" for k, v in sorted(n.labels.items())),
             "CreatedAt": _created_at(n.created)} for n in nets]
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    if fmt:
        headers = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                   "CreatedAt": "CREATED"}
        try:
            out = format_rows(fmt, rows, headers)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        if out:
            click.echo(out)
        return
    click.echo(table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                     [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows]))


@network_group.command("inspect")
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx, fmt, refs):
    """Display detailed information on one or more networks."""
    from pybuild.runtime import network

    store = _store(ctx)
    network.ensure_builtins(store)
    found, rc = [], 0
    for ref in refs:
        try:
            found.append(inspect_json(store.get(ref)))
        except PybuildError as e:
            print(f"error: {e}", file=sys.stderr)
            rc = 1
    if fmt:
        for obj in found:
            click.echo(render_inspect(fmt, obj))
    else:
        click.echo(json.dumps(found, indent=4))
    return rc


@network_group.command("rm")
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx, force, refs):
    """Remove one or more networks."""
    from pybuild.runtime import network

    store, rc = _store(ctx), 0
    for ref in refs:
        try:
            network.remove_network(store, ref)
            click.echo(ref)
        except NetworkError as e:
            if force and str(e).endswith("not found"):
                continue
            print(f"error: {e}", file=sys.stderr)
            rc = 1
    return rc


@network_group.command("connect")
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container")
@click.option("--ip", help="IPv4 address (e.g., 172.30.100.104)")
@click.argument("net")
@click.argument("container")
@click.pass_context
@_exit_1
def connect_cmd(ctx, aliases, ip, net, container):
    """Connect a container to a network (its next interface: eth1, ...; a created or
    stopped container at its next start)."""
    from pybuild.runtime import netconnect

    netconnect.connect(_store(ctx), _containers_dir(ctx), net, container, aliases=aliases,
                       ipv4=ip)


@network_group.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@click.argument("net")
@click.argument("container")
@click.pass_context
@_exit_1
def disconnect_cmd(ctx, force, net, container):
    """Disconnect a container from a network."""
    from pybuild.runtime import netconnect

    netconnect.disconnect(_store(ctx), _containers_dir(ctx), net, container, force=force)


@network_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_context
@_exit_1
def prune_cmd(ctx, force):
    """Remove all unused networks."""
    from pybuild.runtime import network

    if not force:
        click.echo("WARNING! This will remove all custom networks not used by at least one "
                   "container.\nAre you sure you want to continue? [y/N] ", nl=False)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    removed = network.prune_networks(_store(ctx))
    if removed:
        click.echo("Deleted Networks:")
        for net in removed:
            click.echo(net.name)

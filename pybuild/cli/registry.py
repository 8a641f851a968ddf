"""Registry verbs: pull, push, login, logout, search, manifest inspect. Flags and messages
follow Docker's CLI; like it, these verbs exit 1 when the registry or image says no."""

from __future__ import annotations

import functools
import json
import sys

import click

from pybuild.cli.common import store_root
from pybuild.errors import PybuildError


def _exit_one(fn):
    """Docker's client exits 1 on an error response from pull/push/login."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except PybuildError as e:
            e.exit_code = 1
            raise

    return wrapper


def registry_options(fn):
    fn = click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
                      help="Use plain http for this registry if it does not speak TLS.")(fn)
    fn = click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False),
                      help="Trust this CA (PEM) for the registry's TLS certificate.")(fn)
    fn = click.option("--tls-verify", type=click.BOOL, default=True, is_flag=False,
                      flag_value=True, metavar="BOOL",
                      help="Verify TLS certificates (--tls-verify=false skips it).")(fn)
    return fn


def make_options(insecure, tls_verify, ca_cert, **kw):
    from pybuild.registry.endpoints import make_options as mk

    if not tls_verify:
        click.echo("WARNING: TLS certificate verification is disabled", err=True)
    return mk(tuple(insecure), tls_verify, ca_cert, **kw)


# ---------------------------------------------------------------- login / logout


@click.command("login")
@click.option("-u", "--username")
@click.option("-p", "--password")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@registry_options
@click.argument("server", required=False, default="docker.io")
@_exit_one
def login_command(username, password, password_stdin, insecure, tls_verify, ca_cert, server):
    """Log in to a registry (default: Docker Hub); the credentials go to config.json."""
    from pybuild.registry import credentials
    from pybuild.registry.operations import login

    if password and password_stdin:
        raise click.UsageError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise click.UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
                   err=True)
    interactive = sys.stdin.isatty()
    if not username:
        if not interactive:
            raise click.UsageError("Cannot perform an interactive login from a non TTY device")
        username = click.prompt("Username")
    if not password:
        if not interactive:
            raise click.UsageError("Cannot perform an interactive login from a non TTY device")
        password = click.prompt("Password", hide_input=True)
    server = credentials.normalize_host(server)
    opts = make_options(insecure, tls_verify, ca_cert)
    login(server, credentials.Credentials(username, password), opts)
    click.echo("Login Succeeded")


@click.command("logout")
@click.argument("server", required=False, default="docker.io")
@_exit_one
def logout_command(server):
    """Forget the credentials of a registry."""
    from pybuild.registry import credentials
    from pybuild.registry.operations import logout

    server = credentials.normalize_host(server)
    if logout(server):
        click.echo(f"Removing login credentials for {server}")
    else:
        click.echo(f"Not logged in to {server}")


# ---------------------------------------------------------------- search


@click.command("search")
@click.option("--limit", type=click.IntRange(1, 100), default=25, show_default=True)
@click.option("--no-tags", is_flag=True, help="Do not list each repository's tags.")
@registry_options
@click.argument("term")
@_exit_one
def search_command(limit, no_tags, insecure, tls_verify, ca_cert, term):
    """Search a registry's catalog: TERM is REGISTRY/TEXT."""
    from pybuild.registry.operations import search

    results = search(term, make_options(insecure, tls_verify, ca_cert), limit, not no_tags)
    rows = [("NAME", "TAGS")] + [(r.name, ", ".join(r.tags)) for r in results]
    width = max(len(r[0]) for r in rows) + 3
    for name, tags in rows:
        click.echo(f"{name:<{width}}{tags}".rstrip() if not no_tags else name)


# ---------------------------------------------------------------- manifest inspect


@click.group("manifest")
def manifest_group():
    """Inspect image manifests and manifest lists in a registry."""


@manifest_group.command("inspect")
@click.option("-v", "--verbose", is_flag=True, help="Also each platform's manifest.")
@registry_options
@click.argument("ref")
@_exit_one
def manifest_inspect(verbose, insecure, tls_verify, ca_cert, ref):
    """Show the manifest or manifest list of REF, as the registry serves it."""
    from pybuild.registry.operations import inspect_manifest

    found = inspect_manifest(ref, make_options(insecure, tls_verify, ca_cert), verbose)
    if verbose:
        out = found.platforms if len(found.platforms) != 1 else found.platforms[0]
        click.echo(json.dumps(out, indent="\t"))
    else:
        click.echo(json.dumps(json.loads(found.raw), indent="\t"))


def _root(ctx: click.Context) -> str:
    obj = ctx.find_root().obj or {}
    return store_root(obj.get("root"))


# ---------------------------------------------------------------- pull / push


@click.command("pull")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="Pull this platform of a multi-platform image (default: the host's).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image reference.")
@registry_options
@click.argument("ref")
@click.pass_context
@_exit_one
def pull_command(ctx, platform, quiet, insecure, tls_verify, ca_cert, ref):
    """Download an image from a registry into the store."""
    from pybuild.cli.transfer_progress import renderer
    from pybuild.image import reference as refs
    from pybuild.image.manifest import parse_platform
    from pybuild.image.store import Store
    from pybuild.registry.puller import pull

    parsed = refs.parse_normalized(ref)
    wanted = parse_platform(platform) if platform else None
    opts = make_options(insecure, tls_verify, ca_cert)
    if parsed.tag is None and parsed.digest is None and not quiet:
        click.echo("Using default tag: latest")
    show = renderer(quiet)
    try:
        with Store(_root(ctx)) as store:
            result = pull(store, ref, opts, wanted, show)
    finally:
        show.close()
    full = refs.parse(result.ref)
    if not quiet:
        click.echo(f"Digest: {result.digest}")
        what = "Downloaded newer image" if result.updated else "Image is up to date"
        click.echo(f"Status: {what} for {full.familiar}")
    click.echo(result.ref)


@click.command("push")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image reference.")
@registry_options
@click.argument("ref")
@click.pass_context
@_exit_one
def push_command(ctx, quiet, insecure, tls_verify, ca_cert, ref):
    """Upload an image from the store to a registry."""
    from pybuild.cli.transfer_progress import renderer
    from pybuild.image import reference as refs
    from pybuild.image.store import Store
    from pybuild.registry.pusher import push

    parsed = refs.parse_normalized(ref)
    opts = make_options(insecure, tls_verify, ca_cert)
    if parsed.tag is None and parsed.digest is None and not quiet:
        click.echo("Using default tag: latest")
    show = renderer(quiet)
    try:
        with Store(_root(ctx)) as store:
            result = push(store, ref, opts, show)
    finally:
        show.close()
    if quiet:
        click.echo(result.ref)

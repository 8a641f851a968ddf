"""`pyrun cp`, `pyrun diff`, `pyrun export`: a container's file system from the host, with
Docker's flags and path rules (engine errors exit 1, as Docker's do)."""

from __future__ import annotations

import functools
import os
import sys

import click

from pybuild.cli.common import store_root
from pybuild.errors import PybuildError


def _root(ctx: click.Context) -> str:
    return store_root((ctx.find_root().obj or {}).get("root"))


def _exit_1(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except PybuildError as e:
            e.exit_code = 1
            raise

    return wrapper


def _split_ref(arg: str) -> tuple[str | None, str]:
    """CONTAINER:PATH -> (container, path); a host path (absolute, ./, or no colon) -> (None, arg)."""
    if arg == "-" or arg.startswith(("/", ".")):
        return None, arg
    ref, sep, path = arg.partition(":")
    if not sep:
        return None, arg
    return ref, path


@click.command("cp", context_settings={"help_option_names": ["--help"]})
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", "follow", is_flag=True,
              help="Always follow symbol link in SRC_PATH")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy")
@click.argument("src")
@click.argument("dest")
@click.pass_context
@_exit_1
def cp_cmd(ctx, archive, follow, quiet, src, dest):
    """Copy files/folders between a container and the local filesystem.

    \b
    pyrun cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
    pyrun cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"""
    from pybuild.runtime import copyops

    src_ref, src_path = _split_ref(src)
    dest_ref, dest_path = _split_ref(dest)
    if src_ref is not None and dest_ref is not None:
        raise click.UsageError("copying between containers is not supported")
    if src_ref is None and dest_ref is None:
        raise click.UsageError("must specify at least one container source")
    if (src_path == "" and src_ref is not None) or (dest_path == "" and dest_ref is not None):
        raise click.UsageError("path must not be empty")
    root = _root(ctx)
    if src_ref is not None:
        cfs = copyops.open_container(root, src_ref)
        size = copyops.copy_out(cfs, src_path, dest_path, follow=follow, archive=archive)
    else:
        cfs = copyops.open_container(root, dest_ref)
        size = copyops.copy_in(cfs, src_path, dest_path, follow=follow, archive=archive)
    # as Docker's CLI: a summary line on a terminal, unless -q or a tar stream on stdout
    if not quiet and dest_path != "-" and sys.stderr.isatty():
        from pybuild.cli.images_fmt import human_size

        print(f"Successfully copied {human_size(size)} to {dest}", file=sys.stderr)


@click.command("diff", context_settings={"help_option_names": ["--help"]})
@click.argument("container")
@click.pass_context
@_exit_1
def diff_cmd(ctx, container):
    """Inspect changes to files or directories on a container's filesystem."""
    from pybuild.runtime import copyops

    for kind, path in copyops.diff(copyops.open_container(_root(ctx), container, False)):
        click.echo(f"{kind} {path}")


@click.command("export", context_settings={"help_option_names": ["--help"]})
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
@click.argument("container")
@click.pass_context
@_exit_1
def export_cmd(ctx, output, container):
    """Export a container's filesystem as a tar archive."""
    from pybuild.runtime import copyops

    cfs = copyops.open_container(_root(ctx), container, with_volumes=False)
    if output is None:
        if sys.stdout.isatty():
            raise click.UsageError("cowardly refusing to save to a terminal. Use the -o flag "
                                   "or redirect")
        sys.stdout.flush()
        copyops.export(cfs, sys.stdout.fileno())
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        copyops.export(cfs, fd)
    except BaseException:
        os.close(fd)
        os.unlink(output)
        raise
    os.close(fd)

"""The image verbs, shaped like Docker's: images, tag, rmi, history, import, save, load,
bootstrap and the `image` group (ls, rm, tag, inspect, history, prune, import, save, load)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import tempfile

import click

from pybuild.cli.common import store_root
from pybuild.cli.images_fmt import ago, format_rows, human_size, table
from pybuild.errors import ImageError, PybuildError


def _images(ctx: click.Context):
    from pybuild.image.images import Images

    root = (ctx.find_root().obj or {}).get("root")
    return Images(store_root(root))


def docker_exit(fn):
    """Docker's image verbs exit 1 on a missing image or a conflict (not 125)."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except ImageError as e:
            e.exit_code = 1
            raise

    return wrapper


def _short(image_id: str, no_trunc: bool) -> str:
    return image_id if no_trunc else image_id.split(":", 1)[1][:12]


HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}


@click.command("images")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all images (default hides intermediate images)")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--digests", is_flag=True, help="Show digests")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--format", "fmt", default=None, help="Format output using a template")
@click.argument("repository", required=False)
@click.pass_context
@docker_exit
def images_cmd(ctx, show_all, quiet, digests, no_trunc, fmt, repository):
    """List images."""
    from pybuild.image import reference as refs

    with contextlib.closing(_images(ctx)) as store:
        want = None
        if repository:
            want = refs.parse_normalized(repository)
        rows = []
        for image in store.list():
            intermediate = not image.tags and store.children(image.id)
            if intermediate and not show_all:
                continue
            names = [refs.parse(t) for t in image.tags] or [None]
            digest_of = {refs.parse(d).name: refs.parse(d).digest for d in image.digests}
            size = None if quiet else human_size(store.content_size(image))
            for r in names:
                if want is not None and (r is None or r.name != want.name or (want.tag and r.tag != want.tag)):
                    continue
                rows.append({
                    "Repository": r.familiar_name if r else "<none>",
                    "Tag": (r.tag or "<none>") if r else "<none>",
                    "Digest": digest_of.get(r.name, "<none>") if r else "<none>",
                    "ID": _short(image.id, no_trunc),
                    "CreatedSince": ago(image.created),
                    "CreatedAt": _local_time(image.created),
                    "Size": size,
                })
        if quiet:
            seen = []
            for r in rows:
                if r["ID"] not in seen:
                    seen.append(r["ID"])
            click.echo("\n".join(seen)) if seen else None
            return 0
        if fmt:
            out = _format(fmt, rows)
            if out:
                click.echo(out)
            return 0
        cols = ["Repository", "Tag"] + (["Digest"] if digests else []) + ["ID", "CreatedSince", "Size"]
        click.echo(table([HEADERS[c] for c in cols], [[r[c] for c in cols] for r in rows]))
    return 0


def _format(fmt: str, rows) -> str:
    try:
        return format_rows(fmt, rows, HEADERS)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _local_time(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(ts))


@click.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_context
@docker_exit
def tag_cmd(ctx, source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    with contextlib.closing(_images(ctx)) as store:
        store.tag(store.resolve(source), target)
    return 0


@click.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def rmi_cmd(ctx, force, no_prune, refs):
    """Remove one or more images."""
    rc = 0
    with contextlib.closing(_images(ctx)) as store:
        for text in refs:
            try:
                for kind, what in store.remove(text, force=force, prune_parents=not no_prune):
                    click.echo(f"{kind}: {what}")
            except PybuildError as e:
                click.echo(f"Error response from daemon: {e}", err=True)
                rc = 1
    return rc


@click.command("history")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("-H", "--human", default="true", show_default=True, callback=lambda c, p, v: _go_bool(v),
              help="Print sizes and dates in human readable format")
@click.option("--format", "fmt", default=None, help="Format output using a template")
@click.argument("ref")
@click.pass_context
@docker_exit
def history_cmd(ctx, no_trunc, quiet, human, fmt, ref):
    """Show the history of an image."""
    from pybuild.image.config import parse_time

    with contextlib.closing(_images(ctx)) as store:
        image_id = store.resolve(ref)
        rows = []
        for ident, entry, size in store.history(image_id):
            created = parse_time(entry.created) if entry else None
            by = entry.created_by if entry else ""
            if not no_trunc and len(by) > 45:
                by = by[:44] + "…"
            rows.append({
                "ID": ident if ident == "<missing>" else _short(ident, no_trunc),
                "CreatedSince": (ago(created) if human else _rfc(created)) if created else "N/A",
                "CreatedAt": _rfc(created) if created else "N/A",
                "CreatedBy": by,
                "Size": human_size(size) if human else str(size),
                "Comment": entry.comment if entry else "",
            })
        if quiet:
            click.echo("\n".join(r["ID"] for r in rows))
            return 0
        if fmt:
            headers = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                       "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
            try:
                click.echo(format_rows(fmt, rows, headers))
            except ValueError as e:
                raise click.UsageError(str(e)) from None
            return 0
        cols = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
        click.echo(table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                         [[r[c] for c in cols] for r in rows]))
    return 0


def _go_bool(value: str) -> bool:
    """Go's flag syntax: -H=false arrives here as '=false'."""
    v = value.lstrip("=").lower()
    if v in ("1", "t", "true", "yes", "y", "on"):
        return True
    if v in ("0", "f", "false", "no", "n", "off"):
        return False
    raise click.BadParameter(f"invalid boolean value {value!r}")


def _rfc(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))


def _inspect_dict(store, image_id: str) -> dict:
    from pybuild.image import reference as refs

    image = store.get(image_id)
    cfg = image.config.config.to_dict()
    docker_config = {
        "Hostname": "", "Domainname": "", "User": cfg.get("User", ""), "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": cfg.get("Env"), "Cmd": cfg.get("Cmd"), "Image": "",
        "Volumes": cfg.get("Volumes"), "WorkingDir": cfg.get("WorkingDir", ""),
        "Entrypoint": cfg.get("Entrypoint"), "OnBuild": cfg.get("OnBuild"), "Labels": cfg.get("Labels"),
    }
    for key in ("ExposedPorts", "StopSignal", "Healthcheck", "Shell", "ArgsEscaped"):
        if key in cfg:
            docker_config[key] = cfg[key]
    comment = image.config.history[-1].comment if image.config.history else ""
    out = {
        "Id": image.id,
        "RepoTags": [refs.familiar(t) for t in image.tags],
        "RepoDigests": [refs.familiar(d) for d in image.digests],
        "Parent": image.parent or "",
        "Comment": comment,
        "Created": image.config.created or "",
        "DockerVersion": image.config.extra.get("docker_version", ""),
        "Author": image.config.author,
        "Config": docker_config,
        "Architecture": image.config.architecture,
        "Os": image.config.os,
        "Size": store.content_size(image),  # as `images` and `history` show it
        "RootFS": {"Type": "layers", "Layers": list(image.config.diff_ids)},
        "Metadata": {"LastTagTime": _rfc(image.added)},
    }
    if image.config.variant:
        out["Variant"] = image.config.variant
    return out


@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None, help="Format output using a template")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx, fmt, refs):
    """Display detailed information on one or more images."""
    from pybuild.cli.images_fmt import render

    found, rc = [], 0
    with contextlib.closing(_images(ctx)) as store:
        for text in refs:
            try:
                found.append(_inspect_dict(store, store.resolve(text)))
            except PybuildError as e:
                click.echo(f"Error: {e}", err=True)
                rc = 1
    if fmt:
        for d in found:
            try:
                click.echo(render(fmt, d))
            except ValueError as e:
                raise click.UsageError(str(e)) from None
    else:
        click.echo(json.dumps(found, indent=4))
    return rc


@click.command("prune")
@click.option("-a", "--all", "all_images", is_flag=True, help="Remove all unused images, not just dangling ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_context
@docker_exit
def prune_cmd(ctx, all_images, force):
    """Remove unused images."""
    if not force:
        what = "all images without at least one container associated to them" if all_images else "all dangling images"
        if not click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?",
                             default=False):
            return 0
    with contextlib.closing(_images(ctx)) as store:
        events, freed = store.prune(all_images)
    if events:
        click.echo("Deleted Images:")
        for kind, what in events:
            click.echo(f"{kind}: {what}")
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(freed)}")
    return 0


@click.command("import")
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Set commit message for imported image")
@click.option("--platform", default=None, help="Set platform (only the host's is supported)")
@click.argument("source")
@click.argument("ref", required=False)
@click.pass_context
@docker_exit
def import_cmd(ctx, changes, message, platform, source, ref):
    """Import the contents from a tarball to create a filesystem image."""
    from pybuild.image.importer import import_tarball
    from pybuild.image.manifest import host_platform, parse_platform

    if platform:
        want, host = parse_platform(platform), host_platform()
        if (want.os, want.architecture) != (host.os, host.architecture):
            raise ImageError(f"platform {platform} is not this host's ({host})")
    with contextlib.closing(_images(ctx)) as store:
        if source == "-":
            image_id = import_tarball(store, sys.stdin.buffer, "-", ref, changes, message)
        else:
            if "://" in source:
                raise ImageError(f"importing from a URL is not supported: {source}")
            try:
                f = open(source, "rb")
            except OSError as e:
                raise ImageError(f"open {source}: {e.strerror}") from None
            with f:
                image_id = import_tarball(store, f, source, ref, changes, message)
    click.echo(image_id)
    return 0


@click.command("save")
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
@click.option("--format", "fmt", type=click.Choice(["docker-archive", "oci-archive"]), default="docker-archive",
              show_default=True, help="Archive format")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
@docker_exit
def save_cmd(ctx, output, fmt, refs):
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    from pybuild.image.archive import save

    with contextlib.closing(_images(ctx)) as store:
        if output is None or output == "-":
            if sys.stdout.isatty():
                raise click.UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
            save(store, list(refs), sys.stdout.buffer, fmt)
            sys.stdout.buffer.flush()
            return 0
        directory = os.path.dirname(os.path.abspath(output))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pyrun-save-")
        try:
            with os.fdopen(fd, "wb") as f:
                save(store, list(refs), f, fmt)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, output)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return 0


@click.command("load")
@click.option("-i", "--input", "input_", default=None, help="Read from tar archive file, instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@click.pass_context
@docker_exit
def load_cmd(ctx, input_, quiet):
    """Load images from a tar archive (docker or OCI, plain or compressed)."""
    from pybuild.image import reference as refs
    from pybuild.image.archive import load

    with contextlib.closing(_images(ctx)) as store:
        if input_ is None or input_ == "-":
            if sys.stdin.isatty():
                raise click.UsageError("requested load from stdin, but stdin is empty")
            loaded = load(store, sys.stdin.buffer)
        else:
            try:
                f = open(input_, "rb")
            except OSError as e:
                raise ImageError(f"open {input_}: {e.strerror}") from None
            with f:
                loaded = load(store, f)
    if not quiet:
        for item in loaded:
            if item.tags:
                for t in item.tags:
                    click.echo(f"Loaded image: {refs.familiar(t)}")
            else:
                click.echo(f"Loaded image ID: {item.image_id}")
    return 0


@click.command("bootstrap")
@click.option("--busybox", "busybox_path", default=None, help="busybox: the binary to use (default: the host's)")
@click.option("--mirror", default=None, help="debian: the Debian archive (default: the host's apt mirror)")
@click.argument("kind")
@click.argument("ref", required=False)
@click.pass_context
@docker_exit
def bootstrap_cmd(ctx, busybox_path, mirror, kind, ref):
    """Make a base image from the host: `bootstrap busybox [REF]` (offline, from the host's
    busybox-static) or `bootstrap debian:SUITE [REF]` (debootstrap from a Debian archive)."""
    name, _, tag = kind.partition(":")
    if name == "busybox":
        if mirror:
            raise click.UsageError("--mirror applies to bootstrap debian only")
        from pybuild.image.importer import bootstrap_busybox

        with contextlib.closing(_images(ctx)) as store:
            image_id = bootstrap_busybox(store, ref or (kind if tag else "busybox:latest"), busybox_path)
    elif name == "debian":
        if busybox_path:
            raise click.UsageError("--busybox applies to bootstrap busybox only")
        from pybuild.image.debootstrap import bootstrap_debian

        with contextlib.closing(_images(ctx)) as store:
            image_id = bootstrap_debian(store, tag or "bookworm", ref, mirror)
    else:
        raise ImageError(f"cannot bootstrap {kind!r}: use busybox or debian:SUITE")
    click.echo(image_id)
    return 0


@click.group("image")
def image_group():
    """Manage images."""


for _name, _cmd in (("ls", images_cmd), ("list", images_cmd), ("rm", rmi_cmd), ("tag", tag_cmd),
                    ("inspect", inspect_cmd), ("history", history_cmd), ("prune", prune_cmd),
                    ("import", import_cmd), ("save", save_cmd), ("load", load_cmd)):
    image_group.add_command(_cmd, _name)

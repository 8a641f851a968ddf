"""The `pybuild` build command: `pybuild [-t REF]... [options] CONTEXT|-` builds an image with
pybuild.builder.solver and reports progress; `--plan` prints the build graph instead."""

from __future__ import annotations

import os
import signal
import sys

import click

from pybuild.errors import PybuildError


class ContextError(PybuildError):
    """The context or the Dockerfile cannot be read. Docker's build exits 1 for these."""

    exit_code = 1


class _BuildCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `--plan` has an optional value (`--plan` or `--plan=dot`), which click options
        # cannot express without swallowing the CONTEXT that follows a bare `--plan`.
        args = ["--plan=text" if arg == "--plan" else arg for arg in args]
        return super().parse_args(ctx, args)


def _build_args(values: tuple[str, ...]) -> dict[str, str]:
    """`--build-arg K=V`; a bare `K` takes $K from the environment, or is dropped (buildx)."""
    args: dict[str, str] = {}
    for value in values:
        key, has_value, text = value.partition("=")
        if not key:
            raise click.BadParameter(
                f"invalid argument {value!r}: empty name", param_hint="'--build-arg'"
            )
        if has_value:
            args[key] = text
        elif key in os.environ:
            args[key] = os.environ[key]
    return args


def _is_archive(data: bytes) -> bool:
    return (
        data[:2] == b"\x1f\x8b"
        or data[257:262] == b"ustar"
        or data[:3] == b"BZh"
        or data[:6] == b"\xfd7zXZ\x00"
        or data[:4] == b"\x28\xb5\x2f\xfd"
    )


def extract_context(data: bytes, dest: str) -> None:
    """A context archive from stdin (tar, maybe gzip/bzip2/xz/zstd) -> files under `dest`,
    with tarfile's `data` filter: no absolute names, no `..`, no links out, no devices."""
    import io
    import tarfile

    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise ContextError(f"cannot read the build context archive from stdin: {e}") from None


def read_dockerfile(context: str, dockerfile: str | None,
                    unpack_into: str | None = None) -> tuple[bytes, str, str]:
    """-> (Dockerfile bytes, the path to show, the name errors use, as BuildKit's `Dockerfile:3`).
    A context archive on stdin is extracted into `unpack_into` (refused without one); the
    Dockerfile is then read from it (`-f` names a path inside the archive, as in Docker)."""
    if context == "-":
        if dockerfile == "-":
            raise ContextError("can't use stdin for both build context and dockerfile")
        data = sys.stdin.buffer.read()
        if _is_archive(data):
            if unpack_into is None:
                raise ContextError("a build context archive on stdin needs a place to unpack")
            extract_context(data, unpack_into)
            inside = os.path.normpath(os.path.join("/", dockerfile or "Dockerfile")).lstrip("/")
            return read_dockerfile(unpack_into, os.path.join(unpack_into, inside))
        if dockerfile is None:  # `pybuild -`: stdin is the Dockerfile, the context is empty
            return data, "-", "Dockerfile"
    elif not os.path.isdir(context):
        raise ContextError(f'unable to prepare context: path "{context}" not found')
    if dockerfile == "-":
        return sys.stdin.buffer.read(), "-", "Dockerfile"
    path = dockerfile if dockerfile is not None else os.path.join(context, "Dockerfile")
    try:
        with open(path, "rb") as f:
            return f.read(), path, os.path.basename(path)
    except FileNotFoundError:
        raise ContextError(
            f"failed to read dockerfile: open {path}: no such file or directory"
        ) from None
    except OSError as e:
        raise ContextError(
            f"failed to read dockerfile: open {path}: {e.strerror.lower()}"
        ) from None


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, _, text = value.partition("=")
        if not key:
            raise click.BadParameter(f"invalid label {value!r}: empty name", param_hint="'--label'")
        labels[key] = text
    return labels


def _source_date_epoch(args: dict[str, str]) -> int | None:
    """BuildKit takes SOURCE_DATE_EPOCH as a build arg; the environment variable works too."""
    text = args.get("SOURCE_DATE_EPOCH", os.environ.get("SOURCE_DATE_EPOCH", ""))
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise click.BadParameter(f"SOURCE_DATE_EPOCH must be whole seconds, not {text!r}") from None
    if value < 0:
        raise click.BadParameter("SOURCE_DATE_EPOCH must not be negative")
    return value


def _sigterm(signum, frame) -> None:
    # the solver cleans up on KeyboardInterrupt: a `kill` gets the same tidy exit as Ctrl-C
    raise KeyboardInterrupt


@click.command(
    cls=_BuildCommand, name="pybuild", context_settings={"help_option_names": ["-h", "--help"]}
)
@click.argument("context", metavar="CONTEXT")
@click.option("-t", "--tag", "tags", multiple=True, metavar="REF",
              help="Name and optionally a tag (name:tag) for the image (repeatable).")
@click.option(
    "-f",
    "--file",
    "dockerfile",
    metavar="FILE",
    help="Name of the Dockerfile (default: CONTEXT/Dockerfile; '-' reads stdin).",
)
@click.option("--target", metavar="STAGE", help="Build up to this stage (default: the last).")
@click.option(
    "--build-arg",
    "build_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a build-time variable (repeatable).",
)
@click.option("--no-cache", is_flag=True, help="Do not use the cache (results are still cached).")
@click.option("--pull", is_flag=True, help="Pull every base image again, even if it is stored.")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "quiet"]), default="auto",
              show_default=True, help="How to show progress (output of RUN steps included).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id on success.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="Set a label on the image (repeatable).")
@click.option("--network", type=click.Choice(["default", "none", "host"]), default="default",
              show_default=True,
              help="Network of RUN steps (default shares the host's, there is no build bridge).")
@click.option("-o", "--output", "output", metavar="SPEC",
              help="Also export the result: type=oci|docker|tar,dest=FILE or type=local,dest=DIR.")
@click.option("--iidfile", metavar="FILE", help="Write the image id to FILE.")
@click.option("--platform", metavar="PLATFORM", help="Target platform (only this host's).")
@click.option("--push", is_flag=True, help="Push every -t reference after the build.")
@click.option(
    "--plan",
    type=click.Choice(["text", "dot"]),
    default=None,
    help="Print the build graph without building: '--plan' as text, '--plan=dot' as Graphviz DOT.",
)
@click.option("--secret", "secrets", multiple=True, metavar="id=ID[,src=PATH|,env=VAR]",
              help="Lend a secret to RUN --mount=type=secret (repeatable; never stored).")
@click.option("--ssh", "ssh", multiple=True, metavar="ID[=SOCKET|KEY[,KEY...]]",
              help="Lend an ssh agent to RUN --mount=type=ssh ('default' = $SSH_AUTH_SOCK).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def build(
    context: str,
    tags: tuple[str, ...],
    dockerfile: str | None,
    target: str | None,
    build_args: tuple[str, ...],
    no_cache: bool,
    pull: bool,
    progress: str,
    quiet: bool,
    labels: tuple[str, ...],
    network: str,
    output: str | None,
    iidfile: str | None,
    platform: str | None,
    push: bool,
    plan: str | None,
    secrets: tuple[str, ...],
    ssh: tuple[str, ...],
    debug: bool,
) -> None:
    """Build an image from a Dockerfile and CONTEXT: a directory, or '-' for stdin (a
    Dockerfile and no context, or a context archive)."""
    if debug:
        os.environ["PYBUILD_DEBUG"] = "1"
    args = _build_args(build_args)
    from pybuild.image import reference as refs

    for tag in tags:
        try:
            refs.parse_tagged(tag)
        except PybuildError as e:
            raise click.BadParameter(f"invalid argument {tag!r}: {e}", param_hint="'-t'") from None
    unpacked = None
    if context == "-":
        import tempfile

        unpacked = tempfile.mkdtemp(prefix="pybuild-context-")
    try:
        data, shown, name = read_dockerfile(context, dockerfile, unpacked)
        if plan is not None:
            _plan(data, shown, name, args, target, plan)
            return
        if unpacked is not None and os.listdir(unpacked):  # the context came as an archive
            context, dockerfile = unpacked, shown
        lent: tuple = ((), ())
        if secrets or ssh:
            from pybuild.builder.secrets import parse_secret, parse_ssh

            lent = (tuple(parse_secret(s) for s in secrets), tuple(parse_ssh(s) for s in ssh))
        _build(context, tags, dockerfile, data, args, target, no_cache, pull, progress, quiet,
               labels, network, output, iidfile, platform, push, lent)
    finally:
        if unpacked is not None:
            import shutil

            shutil.rmtree(unpacked, ignore_errors=True)


def _build(context, tags, dockerfile, data, args, target, no_cache, pull, progress, quiet,
           labels, network, output, iidfile, platform, push, lent=((), ())) -> None:
    if push and not tags:
        raise click.UsageError("--push needs at least one -t reference to push")
    output_spec = None
    if output is not None:
        from pybuild.builder.export import parse_output

        output_spec = parse_output(output)

    from pybuild.builder.solver import BuildOptions
    from pybuild.builder.solver import build as solve
    from pybuild.cli.common import store_root

    has_context = context != "-"
    options = BuildOptions(
        context_dir=os.path.abspath(context) if has_context else None,
        dockerfile=os.path.abspath(dockerfile) if dockerfile not in (None, "-") else None,
        dockerfile_text=data,
        tags=tags,
        build_args=args,
        target=target,
        no_cache=no_cache,
        pull=pull,
        network=network,
        labels=_labels(labels),
        platform=platform,
        source_date_epoch=_source_date_epoch(args),
        secrets=lent[0],
        ssh=lent[1],
    )
    parent = click.get_current_context().find_root().obj  # `pyrun --root R build ...`
    root = store_root(parent.get("root") if isinstance(parent, dict) else None)
    printer = _progress("quiet" if quiet else progress)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        try:
            result = solve(root, options, printer)
        finally:
            printer.close()
    except PybuildError as e:
        if e.exit_code == 125:  # whatever fails while solving fails the build: docker's 1
            e.exit_code = 1
        _show_excerpt(e, data, dockerfile)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if iidfile:
        _write_file(iidfile, result.image_id)
    if output_spec is not None:
        from pybuild.builder.export import export

        export(root, result.image_id, output_spec, result.tags)
    if push:
        _push(root, result.tags, quiet)
    if quiet:
        # stdout may be carrying the exported archive (-o -): the id must not end up in it
        to_stdout = output_spec is not None and output_spec.dest == "-"
        click.echo(result.image_id, err=to_stdout)


def _show_excerpt(error: PybuildError, data: bytes | str, dockerfile: str | None) -> None:
    """The failing step's Dockerfile lines, as BuildKit prints them above the error."""
    from pybuild.cli.build_excerpt import error_lines, excerpt

    name = os.path.basename(dockerfile) if dockerfile not in (None, "-") else "Dockerfile"
    lines = error_lines(error, name)
    if lines is not None:
        raw = data.encode() if isinstance(data, str) else data
        click.echo(excerpt(raw, name, *lines), err=True, nl=False)


def _plan(data: bytes, shown: str, name: str, args: dict[str, str], target: str | None,
          plan: str) -> None:
    from pybuild.builder import plan as render
    from pybuild.builder.graph import build_graph
    from pybuild.grammar import parse

    graph = build_graph(parse(data, path=name), build_args=args, target=target)
    for warning in graph.warnings:
        click.echo(f"warning: {warning}", err=True)
    text = render.render_dot(graph, shown) if plan == "dot" else render.render_text(graph, shown)
    click.echo(text, nl=False)


def _write_file(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _push(root: str, tags: tuple[str, ...], quiet: bool) -> None:
    from pybuild.image.store import Store
    from pybuild.registry import push
    from pybuild.registry.endpoints import make_options

    options = make_options()  # insecure registries from the environment, as `pyrun push`
    with Store(root) as store:
        for tag in tags:
            result = push(store, tag, options)
            if not quiet:
                click.echo(f"{result.ref}: digest: {result.digest} size: {result.size}", err=True)


def _progress(mode: str):
    from pybuild.cli.build_progress import make_progress

    return make_progress(mode)

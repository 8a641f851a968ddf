"""The `pybuild` build command. `--plan` prints the build graph (stages, bases, steps,
dependencies) without building; building itself is not implemented yet and says so."""

from __future__ import annotations

import os
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


def read_dockerfile(context: str, dockerfile: str | None) -> tuple[bytes, str, str]:
    """-> (Dockerfile bytes, the path to show, the name errors use, as BuildKit's `Dockerfile:3`)."""
    if context == "-":
        if dockerfile == "-":
            raise ContextError("can't use stdin for both build context and dockerfile")
        data = sys.stdin.buffer.read()
        if _is_archive(data):
            raise ContextError("a build context archive on stdin is not supported yet")
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


@click.command(
    cls=_BuildCommand, name="pybuild", context_settings={"help_option_names": ["-h", "--help"]}
)
@click.argument("context", metavar="CONTEXT")
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
@click.option(
    "--plan",
    type=click.Choice(["text", "dot"]),
    default=None,
    help="Print the build graph without building: '--plan' as text, '--plan=dot' as Graphviz DOT.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def build(
    context: str,
    dockerfile: str | None,
    target: str | None,
    build_args: tuple[str, ...],
    plan: str | None,
    debug: bool,
) -> None:
    """Build an image from a Dockerfile and CONTEXT (a directory, or '-').

    Only --plan works so far: building images is not implemented yet."""
    if debug:
        os.environ["PYBUILD_DEBUG"] = "1"
    args = _build_args(build_args)
    if plan is None:
        raise PybuildError(
            "building images is not available yet in pybuild; use --plan to print the build graph"
        )
    data, shown, name = read_dockerfile(context, dockerfile)

    from pybuild.builder import plan as render
    from pybuild.builder.graph import build_graph
    from pybuild.grammar import parse

    graph = build_graph(parse(data, path=name), build_args=args, target=target)
    for warning in graph.warnings:
        click.echo(f"warning: {warning}", err=True)
    text = render.render_dot(graph, shown) if plan == "dot" else render.render_text(graph, shown)
    click.echo(text, nl=False)

"""`pybuild parse [--dump] FILE`: parse a Dockerfile and print its instructions."""

from __future__ import annotations

import sys

import click

from pybuild.errors import DockerfileError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dump",
    "dump_tree",
    is_flag=True,
    help='Print BuildKit\'s parse tree, (keyword [flags] "item"...), as its parser '
    "tests do; unknown keywords are part of it, not errors.",
)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def parse(dump_tree: bool, file: str) -> None:
    """Parse FILE (`-` for standard input). Without --dump, check the keywords as a build
    would and print one line per instruction: its line span and its text as written."""
    from pybuild.grammar import dump
    from pybuild.grammar import parse as parse_dockerfile
    from pybuild.grammar.parser import require_known

    if file == "-":
        source, path = sys.stdin.buffer.read(), "-"
    else:
        path = file
        try:
            with open(file, "rb") as f:
                source = f.read()
        except OSError as e:
            raise DockerfileError(f"cannot read: {e.strerror}", path=path) from None
    tree = parse_dockerfile(source, path)
    out = sys.stdout
    if dump_tree:
        out.buffer.write(dump(tree).encode("utf-8", "surrogateescape"))
        return
    require_known(tree)
    for instr in tree.instructions:
        span = (
            f"{instr.start_line}"
            if instr.start_line == instr.end_line
            else f"{instr.start_line}-{instr.end_line}"
        )
        text = instr.original.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        out.write(f"{span}\t{text}\n")

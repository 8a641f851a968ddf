"""`pybuild`: build an image from a Dockerfile (`pybuild -t REF CONTEXT`), show its plan
(`pybuild --plan CONTEXT`), or dump a Dockerfile's syntax tree (`pybuild parse --dump FILE`)."""

from __future__ import annotations

import sys

from pybuild.cli.common import run_guarded

# `pybuild SUBCOMMAND ...` for the few non-build verbs; anything else is a build.
SUBCOMMANDS: dict[str, str] = {
    "parse": "pybuild.cli.parse:parse",
}


def main(argv: list[str] | None = None) -> None:
    import importlib

    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in SUBCOMMANDS:
        module, _, attr = SUBCOMMANDS[args[0]].partition(":")
        command = getattr(importlib.import_module(module), attr)
        sys.exit(
            run_guarded(
                lambda: command.main(
                    args=args[1:], prog_name=f"pybuild {args[0]}", standalone_mode=False
                )
            )
        )
    from pybuild.cli.build_command import build  # the build command itself (issues 2 and 5)

    sys.exit(run_guarded(lambda: build.main(args=args, prog_name="pybuild", standalone_mode=False)))


if __name__ == "__main__":
    main()

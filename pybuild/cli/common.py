"""What every command shares: error reporting with Docker's exit codes, and the store root."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click

from pybuild.errors import PybuildError


def debug_enabled() -> bool:
    return os.environ.get("PYBUILD_DEBUG", "") not in ("", "0")


def report(exc: BaseException) -> int:
    """Print `error: ...` for a user-facing failure and return its exit code."""
    if debug_enabled():
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, PybuildError):
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        return 130
    print(f"error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
    if not debug_enabled():
        print("(run with --debug or PYBUILD_DEBUG=1 for a traceback)", file=sys.stderr)
    return 125


def run_guarded(fn: Callable[[], int | None]) -> int:
    """Run a command body; turn errors into a message and an exit code."""
    try:
        rc = fn()
        return rc if isinstance(rc, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except click.UsageError as e:  # Docker exits 125 on a bad flag or argument
        e.show()
        return 125
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except SystemExit as e:  # click's own exits (usage errors: 2 -> Docker uses 125)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return code
    except BaseException as e:  # noqa: BLE001 - the one place errors become exit codes
        return report(e)


def store_root(option: str | None = None) -> str:
    """--root, else $PYBUILD_ROOT, else /var/lib/pybuild as root, else $XDG_DATA_HOME/pybuild."""
    if option:
        return option
    env = os.environ.get("PYBUILD_ROOT")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/pybuild"
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(xdg, "pybuild")

"""`make demo`: a newcomer's first look. It shows what works today, through the real CLIs:
the build plans of the fixtures, then (as root) an offline busybox base image, a container
run from it, and the image's history. The builder itself (issue 5) joins here when it lands."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
PYBUILD = [sys.executable, "-m", "pybuild.cli.build"]
PYRUN = [sys.executable, "-m", "pybuild.cli.pyrun"]


def show(title: str, argv: list[str], shown: str) -> int:
    print(f"\n$ {shown}" if not title else f"\n# {title}\n$ {shown}", flush=True)
    return subprocess.run(argv, cwd=REPO).returncode


def plans() -> int:
    rc = 0
    for dockerfile in sorted((REPO / "fixtures" / "dockerfiles").glob("*/Dockerfile")):
        context = str(dockerfile.parent.relative_to(REPO))
        rc |= show("", [*PYBUILD, "--plan", context], f"pybuild --plan {context}")
    print("\n(The same graph as Graphviz: pybuild --plan=dot fixtures/dockerfiles/multi-stage"
          " | dot -Tsvg > plan.svg)")
    return rc


def containers() -> int:
    steps = [
        ("an offline base image from the host's busybox", ["bootstrap", "busybox"]),
        ("", ["images"]),
        ("a container: its own pid, uts, ipc, mount and net namespaces over overlayfs",
         ["run", "--rm", "--hostname", "demo", "busybox",
          "sh", "-c", "echo \"hello from $(hostname), I am pid $$\"; ps; ip addr 2>/dev/null | grep inet"]),
        ("Docker's exit codes: the command's own, 127 when it is not found",
         ["run", "--rm", "busybox", "sh", "-c", "exit 3"]),
        ("", ["run", "--rm", "busybox", "no-such-command"]),
        ("", ["history", "busybox"]),
    ]
    rc = 0
    for title, args in steps:
        code = show(title, [*PYRUN, *args], "pyrun " + " ".join(_quote(a) for a in args))
        if code and "exit" not in title and args[-1] != "no-such-command":
            rc = code
        elif code:
            print(f"(exit code {code})")
    return rc


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " $;\"'|()") else arg


def main() -> int:
    rc = plans()
    if os.geteuid() != 0:
        print("\n(run `make demo` as root to see images and containers too)")
        return rc
    return rc or containers()


if __name__ == "__main__":
    sys.exit(main())

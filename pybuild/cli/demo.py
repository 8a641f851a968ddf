"""`make demo`: a newcomer's first look. It shows what works today, through the real CLIs:
the build plans of the fixtures; then (as root) an offline busybox base image, the seed
example built by `pybuild`, rebuilt from the cache, run detached with a published port on a
network of its own, its page fetched from the host, `ps`, `logs`, `exec`, `history`; a
multi-stage build; Docker's exit codes. Everything it starts it stops and removes."""

from __future__ import annotations

import os
import pathlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
PYBUILD = [sys.executable, "-m", "pybuild.cli.build"]
PYRUN = [sys.executable, "-m", "pybuild.cli.pyrun"]
SEED = "fixtures/dockerfiles/busybox-net-http"


def show(title: str, argv: list[str], shown: str) -> int:
    print(f"\n$ {shown}" if not title else f"\n# {title}\n$ {shown}", flush=True)
    return subprocess.run(argv, cwd=REPO, stdin=subprocess.DEVNULL).returncode


def pyrun(title: str, *args: str) -> int:
    return show(title, [*PYRUN, *args], "pyrun " + " ".join(_quote(a) for a in args))


def pybuild(title: str, *args: str) -> int:
    return show(title, [*PYBUILD, *args], "pybuild " + " ".join(_quote(a) for a in args))


def plans() -> int:
    rc = 0
    for dockerfile in sorted((REPO / "fixtures" / "dockerfiles").glob("*/Dockerfile")):
        context = str(dockerfile.parent.relative_to(REPO))
        rc |= show("", [*PYBUILD, "--plan", context], f"pybuild --plan {context}")
    print("\n(The same graph as Graphviz: pybuild --plan=dot fixtures/dockerfiles/multi-stage"
          " | dot -Tsvg > plan.svg)")
    return rc


class Failed(Exception):
    pass


def must(code: int) -> None:
    if code:
        raise Failed(f"the step above failed (exit code {code})")


def build_and_serve() -> None:
    must(pyrun("an offline base image from the host's busybox", "bootstrap", "busybox"))
    must(pybuild("the seed example: a page served by busybox httpd (plain progress, as in CI)",
                 "--progress", "plain", "-t", "busybox-net-http", SEED))
    must(pybuild("the same build again: every step comes from the cache", "--progress", "plain",
                 "-t", "busybox-net-http", SEED))
    must(pyrun("", "images"))
    must(pyrun("a row per instruction, as `docker history`", "history", "busybox-net-http"))
    net, name = f"demo-{secrets.token_hex(3)}", f"demo-web-{secrets.token_hex(3)}"
    port = _free_port()
    must(pyrun("a network of its own (a bridge, addresses, names)", "network", "create", net))
    try:
        must(pyrun("run it detached, port 80 published on 127.0.0.1", "run", "-d", "--name",
                   name, "--network", net, "-p", f"127.0.0.1:{port}:80", "busybox-net-http"))
        try:
            url = f"http://127.0.0.1:{port}/"
            print(f"\n# the page, fetched from the host\n$ curl {url}")
            print(_fetch(url), end="", flush=True)
            must(pyrun("", "ps"))
            if _has_verb("exec"):
                must(pyrun("a command inside the running container", "exec", name,
                           "sh", "-c", "hostname; ls -l /www"))
            must(pyrun("", "logs", name))
            must(pyrun("", "stop", "-t", "1", name))
            must(pyrun("", "ps", "-a", "--filter", f"name={name}"))
        finally:
            subprocess.run([*PYRUN, "rm", "-f", name], cwd=REPO, capture_output=True)
    finally:
        must(pyrun("", "network", "rm", net))


def multi_stage() -> None:
    must(pyrun("the multi-stage fixture wants busybox:1.36: tag our base so", "tag", "busybox",
               "busybox:1.36"))
    must(pybuild("two independent stages built side by side, COPY --from both",
                 "--progress", "plain", "-t", "hello", "fixtures/dockerfiles/multi-stage"))
    must(pyrun("", "run", "--rm", "hello"))


def exit_codes() -> None:
    code = pyrun("Docker's exit codes: the command's own, 127 when it is not found",
                 "run", "--rm", "busybox", "sh", "-c", "exit 3")
    print(f"(exit code {code})")
    code = pyrun("", "run", "--rm", "busybox", "no-such-command")
    print(f"(exit code {code})")


def _fetch(url: str, limit: float = 10.0) -> str:
    deadline = time.monotonic() + limit
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise Failed(f"nothing answered at {url}") from None
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _has_verb(verb: str) -> bool:
    from pybuild.cli.pyrun import COMMANDS

    return verb in COMMANDS


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " $;\"'|()") else arg


def main() -> int:
    rc = plans()
    if os.geteuid() != 0:
        print("\n(run `make demo` as root to see builds, images and containers too)")
        return rc
    try:
        build_and_serve()
        multi_stage()
        exit_codes()
    except Failed as e:
        print(f"\ndemo: {e}", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())

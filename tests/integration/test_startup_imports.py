"""Start-up guards: what a fully cached `pybuild` rebuild and the container lifecycle verbs
load. Each command runs in a fresh interpreter that records sys.modules when it exits; the
libraries a command does not use (lark, httpx, rich, pyroute2) and our own heavy modules
(the Dockerfile parser, the container machinery) must stay out. Behaviour, not timing: the
speed itself is measured by bench/build.py and bench/lifecycle.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.plugins.solver import needs_copy

pytestmark = pytest.mark.root

# run a CLI entry point, then write the names of every loaded module to argv[1]
_RECORD = (
    "import atexit, json, runpy, sys\n"
    "out, module = sys.argv[1], sys.argv[2]\n"
    "atexit.register(lambda: json.dump(sorted(sys.modules), open(out, 'w')))\n"
    "sys.argv = [module, *sys.argv[3:]]\n"
    "runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)

NEVER = ("lark", "httpx", "rich", "pyroute2", "zstandard", "isal")


def _loaded(tmp_path, root: str, module: str, *args: str) -> set[str]:
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    res = subprocess.run([sys.executable, "-c", _RECORD, str(out), module, *args],
                         env={**os.environ, "PYBUILD_ROOT": root}, capture_output=True,
                         text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    return set(json.loads(out.read_text()))


def _packages(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@needs_copy
def test_cached_rebuild_loads_no_parser_and_no_heavy_library(builder, tmp_path):
    ctx = builder.context(
        "FROM busybox\nENV A=1\nWORKDIR /app\nCOPY . /app/src\nRUN ls /app/src > /n\n"
        "LABEL x=y\nCMD [\"sh\"]\n",
        {"a.txt": "a\n", "d/b.txt": "b\n"},
    )
    first = builder.cli("-q", "-t", "cached:latest", ctx)
    assert first.returncode == 0, first.stderr
    modules = _loaded(tmp_path, builder.root, "pybuild.cli.build", "-q", "-t", "cached:latest",
                      ctx)
    assert not _packages(modules) & set(NEVER), sorted(_packages(modules) & set(NEVER))
    heavy = {"pybuild.grammar.parser", "pybuild.runtime.container", "pybuild.runtime.spec",
             "pybuild.runtime.sandbox", "pybuild.image.layers", "pybuild.image.unpack",
             "concurrent.futures", "tarfile"}
    assert not modules & heavy, sorted(modules & heavy)
    # the same build, the same image: the shortcut changed nothing
    again = builder.cli("-q", "-t", "cached:latest", ctx)
    assert again.returncode == 0 and again.stdout == first.stdout


def test_lifecycle_verbs_load_no_heavy_library(pyrun_lc, tmp_path):
    root = pyrun_lc.root
    run = ("sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait")
    steps = [("create", "--name", "guard", "--network", "none", "busybox", *run),
             ("start", "guard"), ("ps", "-a"), ("stop", "guard"), ("rm", "guard")]
    for args in steps:
        modules = _loaded(tmp_path, root, "pybuild.cli.pyrun", *args)
        assert not _packages(modules) & set(NEVER), (args, sorted(_packages(modules) & set(NEVER)))
        assert "pybuild.grammar.parser" not in modules, args
        assert "pybuild.builder" not in modules, args
        # no network named: neither the network store nor the netlink code
        assert not modules & {"pybuild.runtime.netstore", "pybuild.runtime.network"}, args
        if args[0] in ("stop", "rm"):  # no supervisor to launch or talk to
            assert not modules & {"subprocess", "socket", "pybuild.runtime.sandbox"}, (
                args, sorted(modules & {"subprocess", "socket", "pybuild.runtime.sandbox"}))

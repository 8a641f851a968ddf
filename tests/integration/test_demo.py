"""`make demo` end to end, in a store of its own: every fixture's plan, and as root the seed
example built, rebuilt from the cache, served on a published port and fetched, a multi-stage
build run, Docker's exit codes; afterwards no container, network or mount is left."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_demo(tmp_path):
    root = tmp_path / "store"
    env = dict(os.environ, PYBUILD_ROOT=str(root))
    r = subprocess.run([sys.executable, "-m", "pybuild.cli.demo"], cwd=REPO, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = r.stdout.decode()  # build progress goes to stderr, as BuildKit's: both, in order
    assert r.returncode == 0, out[-5000:]
    names = sorted(p.parent.name for p in (REPO / "fixtures" / "dockerfiles").glob("*/Dockerfile"))
    assert {"busybox-net-http", "centos-net-http", "heredoc", "multi-stage", "bench"} <= set(names)
    for name in names:
        assert f"$ pybuild --plan fixtures/dockerfiles/{name}\n" in out
    if os.geteuid() != 0:
        return
    first, _, rest = out.partition("# the same build again")
    cached, _, _ = rest.partition("$ pyrun images")
    # RUN and COPY ran the first time and came from the cache the second time
    for section, state in ((first, "DONE"), (cached, "CACHED")):
        steps = re.findall(r"^#(\d+) \[\d/3\] (?:RUN|COPY) ", section, re.M)
        assert len(steps) == 2, section
        for n in steps:
            assert re.search(rf"^#{n} {state}\b", section, re.M), (n, section)
    assert "<h1>Hello from a pybuild image</h1>" in out
    assert "busybox-net-http" in out and "Up " in out and "127.0.0.1:" in out
    assert "COPY index.html /www/index.html" in out  # the history row
    assert "hello from pybuild\n" in out
    assert "(exit code 3)" in out and "(exit code 127)" in out
    # nothing left: no container, no user network, no mount under the store
    containers = root / "containers"
    left = [e for e in os.listdir(containers) if len(e) == 64] if containers.exists() else []
    assert left == []
    nets = subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", "network", "ls"],
                          env=env, capture_output=True, text=True)
    assert nets.returncode == 0 and "demo-" not in nets.stdout
    with open("/proc/self/mounts") as f:
        assert str(root) not in f.read()

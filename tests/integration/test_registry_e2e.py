"""The private-registry flow end to end with the CLI only: bootstrap busybox, tag it for a
registry on 127.0.0.1, push, find it in the catalog, remove it locally, pull it back, run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def pyrun(*args):
    return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not any(os.path.isfile(p) for p in ("/bin/busybox", "/usr/bin/busybox"))
                    and not shutil.which("busybox"), reason="busybox-static not installed")
def test_private_registry_flow(registry, pyrun_env):
    ref = f"{registry.host}/team/app:1"
    r = pyrun("bootstrap", "busybox")
    assert r.returncode == 0, r.stderr
    assert pyrun("tag", "busybox", ref).returncode == 0
    r = pyrun("push", ref)
    assert r.returncode == 0, r.stderr
    pushed = r.stdout.splitlines()[-1].split()[2]
    r = pyrun("search", f"{registry.host}/team")
    assert r.returncode == 0 and f"{registry.host}/team/app" in r.stdout and " 1" in r.stdout
    image_id = pyrun("images", "-q", "--no-trunc").stdout.split()[0]
    r = pyrun("rmi", "-f", image_id)
    assert r.returncode == 0, r.stderr
    assert pyrun("images", "-q").stdout.strip() == ""
    r = pyrun("pull", ref)
    assert r.returncode == 0, r.stderr
    assert f"Digest: {pushed}" in r.stdout
    assert r.stdout.splitlines()[-1] == ref
    assert pyrun("images", "-q", "--no-trunc").stdout.split() == [image_id]
    fresh = pyrun_env.parent / "fresh-root"  # nothing cached: every layer comes over the wire
    r = subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", "--root", str(fresh), "pull", ref],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert ": Pull complete" in r.stdout and ": Already exists" not in r.stdout
    if os.geteuid() == 0:
        for root in (str(pyrun_env), str(fresh)):
            r = subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", "--root", root, "run", "--rm",
                                ref, "echo", "pulled and running"], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == "pulled and running"

"""pybuild with a real registry (Debian's docker-registry on 127.0.0.1): the seed's
private-registry flow with a built image (build, push, catalog, rmi, pull, run), skopeo
reading what we pushed, and `--pull` picking up a newer base that the local tag does not
know about (without it the build stays on the local base and is cached)."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.root

REPO = pathlib.Path(__file__).resolve().parents[2]
SEED = str(REPO / "fixtures" / "dockerfiles" / "busybox-net-http")


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def test_seed_flow_build_push_catalog_rmi_pull_run(builder, registry, docker_config):
    ref = f"{registry.host}/team/app:1"
    built = ok(builder.cli("-q", "-t", ref, SEED)).stdout.strip()
    pushed = ok(builder.pyrun("push", ref)).stdout
    assert "Pushed" in pushed and "digest: sha256:" in pushed
    catalog = ok(builder.pyrun("search", f"{registry.host}/team")).stdout
    assert f"{registry.host}/team/app" in catalog
    if shutil.which("skopeo"):  # interop: another client reads the built image
        res = ok(subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                                capture_output=True, text=True, timeout=60))
        info = json.loads(res.stdout)
        assert info["Digest"] in pushed and len(info["Layers"]) == 3
    ok(builder.pyrun("rmi", ref))
    assert ref not in builder.tags()
    assert built not in ok(builder.pyrun("images", "-q", "--no-trunc")).stdout  # not <none>
    ok(builder.pyrun("pull", ref))
    assert builder.config(ref)["config"]["Cmd"] == ["httpd", "-f", "-p", "80", "-h", "/www"]
    assert "Hello from a pybuild image" in builder.cat(ref, "/www/index.html")


def test_pull_flag_fetches_a_newer_base(builder, registry, docker_config):
    base = f"{registry.host}/base/bb:1"
    ok(builder.pyrun("tag", "busybox", base))
    ok(builder.pyrun("push", base))
    app = builder.context(f"FROM {base}\nRUN ls / > /listing\n")
    first = ok(builder.cli("--progress", "plain", "-t", "app:1", app))
    assert "RUN ls" in first.stderr and "v2" not in builder.cat("app:1", "/listing").split()
    # a newer base appears in the registry under the same tag; the local tag stays old
    newer = builder.context("FROM busybox\nRUN echo v2 > /v2\n")
    ok(builder.cli("-q", "-t", base, newer))
    ok(builder.pyrun("push", base))
    ok(builder.pyrun("tag", "busybox", base))
    same = ok(builder.cli("--progress", "plain", "-t", "app:1", app))
    assert "v2" not in builder.cat("app:1", "/listing").split()
    assert _step_state(same.stderr, "RUN ls") == "CACHED"
    fresh = ok(builder.cli("--progress", "plain", "--pull", "-t", "app:1", app))
    assert _step_state(fresh.stderr, "RUN ls") == "DONE"  # a new base: the step ran again
    assert "v2" in builder.cat("app:1", "/listing").split()


def _step_state(progress: str, instruction: str) -> str:
    """DONE or CACHED for the vertex whose name holds `instruction` (plain progress)."""
    lines = progress.splitlines()
    ids = [line.split()[0] for line in lines if instruction in line and line.startswith("#")]
    assert ids, progress
    for line in lines:
        if line.startswith(ids[0] + " ") and line.split()[1] in ("DONE", "CACHED", "ERROR:"):
            return line.split()[1]
    raise AssertionError(progress)

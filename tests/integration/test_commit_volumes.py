"""`commit` keeps Config.Volumes as Docker does: the image's VOLUMEs plus the container's
`-v /path` anonymous volumes; binds, named volumes and --mount are HostConfig only."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.root


def test_commit_records_anonymous_volume_targets(pyrun_lc, tmp_path):
    pyrun = pyrun_lc
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nVOLUME /imgvol\n")
    pyrun.ok("build", "-q", "-t", "volimg", str(ctx))
    host = tmp_path / "host"
    host.mkdir()
    pyrun.ok("create", "--name", "c", "-v", "/anon", "-v", "named:/named", "-v",
             f"{host}:/bind", "--mount", "type=volume,target=/m", "volimg", "true")
    want = {"/anon": {}, "/imgvol": {}}
    assert pyrun.inspect("c")["Config"]["Volumes"] == want
    pyrun.ok("commit", "c", "committed")
    config = json.loads(pyrun.ok("image", "inspect", "committed"))[0]["Config"]
    assert config["Volumes"] == want
    # and a container of the committed image gets them as anonymous volumes
    pyrun.ok("create", "--name", "d", "committed", "true")
    targets = {m["Destination"] for m in pyrun.inspect("d")["Mounts"]}
    assert targets == {"/anon", "/imgvol"}
    pyrun.ok("rm", "-v", "c", "d")
    pyrun.ok("volume", "rm", "named")

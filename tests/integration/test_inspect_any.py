"""`pyrun inspect` as `docker inspect`: a name is looked up as a container, an image, a
network, then a volume (`--type` narrows it); --format is Go's text/template everywhere
(range over networks, if, json compact as Go prints it); Docker's errors and exit codes."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.root


def test_inspect_finds_every_kind_of_object(pyrun_lc):
    pyrun = pyrun_lc
    pyrun.ok("volume", "create", "pbt-inspect-vol")
    cid = pyrun.ok("run", "-d", "--name", "pbt-web", "--network", "bridge", "busybox", "sleep", "60").strip()
    try:
        # a container: Go template control flow over its JSON
        out = pyrun.ok("inspect", "-f", "{{.Id}} {{if .State.Running}}up{{else}}down{{end}} "
                       "{{range $n, $v := .NetworkSettings.Networks}}{{$n}}={{$v.IPAddress}}{{end}} "
                       "{{json .Config.Cmd}}", "pbt-web").strip()
        ident, state, net, cmd = out.split(" ")
        assert ident == cid and state == "up" and cmd == '["sleep","60"]'
        assert net.startswith("bridge=") and net.count(".") == 3
        # an image by name, in the same call as the container
        both = json.loads(pyrun.ok("inspect", "pbt-web", "busybox"))
        assert [b["Id"][:7] for b in both] == [cid[:7], "sha256:"]
        assert both[1]["RepoTags"] == ["busybox:latest"]
        assert pyrun.ok("inspect", "-f", "{{.Config.Cmd}} {{len .RootFS.Layers}}", "busybox").strip() == "[sh] 1"
        # a network and a volume
        assert pyrun.ok("inspect", "-f", "{{.Name}}/{{.Driver}}", "bridge").strip() == "bridge/bridge"
        assert pyrun.ok("inspect", "-f", "{{.Name}} {{.Driver}}", "pbt-inspect-vol").strip() == \
            "pbt-inspect-vol local"
        # --type narrows the look-up, and says which kind was missing
        res = pyrun("inspect", "--type", "image", "pbt-web")
        assert res.returncode == 1 and "No such image: pbt-web" in res.stderr
        res = pyrun("container", "inspect", "busybox")
        assert res.returncode == 1 and "No such container: busybox" in res.stderr
        assert pyrun.ok("inspect", "--type", "volume", "-f", "{{.Name}}", "pbt-inspect-vol").strip() == \
            "pbt-inspect-vol"
        # a missing name among found ones: the found ones print, exit 1
        res = pyrun("inspect", "-f", "{{.Name}}", "pbt-web", "pbt-nosuch")
        assert res.returncode == 1 and res.stdout.strip() == "/pbt-web"
        assert "No such object: pbt-nosuch" in res.stderr
        res = pyrun("inspect", "--type", "bogus", "pbt-web")
        assert res.returncode != 0 and '"bogus" is not a valid value for --type' in res.stderr
        # a bad template is an error, not the template echoed back
        res = pyrun("image", "inspect", "-f", "{{.Config.Nope}}", "busybox")
        assert res.returncode != 0 and "can't evaluate field Nope" in res.stderr
    finally:
        pyrun.ok("rm", "-f", "pbt-web")
        pyrun.ok("volume", "rm", "pbt-inspect-vol")

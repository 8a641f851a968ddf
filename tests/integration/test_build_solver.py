"""Real builds over the bootstrap busybox: FROM, RUN, the config-only instructions, history,
stages, ONBUILD, and failure clean-up. Images are checked by their config and their files."""

from __future__ import annotations

import os

import pytest

from pybuild.builder.events import VertexCached, VertexDone, VertexFailed, VertexStarted, Warning
from pybuild.errors import BuildError, DockerfileError, ImageError
from tests.plugins.runtime import child_pids, mount_points

pytestmark = pytest.mark.root


def _history(config: dict) -> list[tuple[str, bool]]:
    return [(h["created_by"], bool(h.get("empty_layer"))) for h in config["history"]]


def test_meta_instructions_config_and_history(builder):
    ctx = builder.context(
        "FROM busybox\n"
        "ARG V=1\n"
        "ENV A=hello B=$V\n"
        "WORKDIR /app\n"
        'RUN echo "$A $B $V" > out.txt\n'
        "USER nobody\n"
        "EXPOSE 80 90/udp\n"
        "VOLUME /data\n"
        "LABEL org.example.k=v\n"
        "STOPSIGNAL SIGINT\n"
        "HEALTHCHECK --interval=5s CMD true\n"
        "MAINTAINER someone\n"
        'ENTRYPOINT ["cat"]\n'
        'CMD ["/app/out.txt"]\n'
    )
    built = builder.build(ctx, tags=("meta:1",))
    config = builder.config("meta:1")
    c = config["config"]
    assert c["Env"][-2:] == ["A=hello", "B=1"] and c["Env"][0].startswith("PATH=")
    assert c["WorkingDir"] == "/app" and c["User"] == "nobody"
    assert c["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}}
    assert c["Volumes"] == {"/data": {}} and c["Labels"] == {"org.example.k": "v"}
    assert c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert c["Entrypoint"] == ["cat"] and c["Cmd"] == ["/app/out.txt"]
    assert config["author"] == "someone"
    new = _history(config)[-13:]
    assert new[0] == ("ARG V=1", True)
    assert new[1] == ("ENV A=hello B=1", True)
    assert new[2] == ("WORKDIR /app", False)  # busybox has no /app: the step made it
    assert new[3] == ('RUN |1 V=1 /bin/sh -c echo "$A $B $V" > out.txt # buildkit', False)
    assert new[4:7] == [("USER nobody", True), ("EXPOSE map[80/tcp:{} 90/udp:{}]", True),
                        ("VOLUME [/data]", True)]
    assert new[-2:] == [('ENTRYPOINT ["cat"]', True), ('CMD ["/app/out.txt"]', True)]
    assert len(config["rootfs"]["diff_ids"]) == 3  # busybox + WORKDIR + RUN
    assert sum(not e for _, e in _history(config)) == len(config["rootfs"]["diff_ids"])
    assert built.names(VertexDone)[-1] == "exporting to image"
    res = builder.pyrun("run", "--rm", "meta:1")
    assert res.returncode == 0 and res.stdout == "hello 1 1\n", res.stderr
    hist = builder.pyrun("history", "--no-trunc", "meta:1")
    assert "RUN |1 V=1 /bin/sh -c echo" in hist.stdout


def test_workdir_env_arg_interplay(builder):
    ctx = builder.context(
        "ARG GLOBAL=g1\n"
        "FROM busybox\n"
        "ARG GLOBAL\n"
        "ARG OVER=default\n"
        "ARG SAME=from-arg\n"
        "ENV SAME=from-env\n"
        "WORKDIR base\n"
        "WORKDIR sub/../deeper\n"
        "ENV DIR=/x/$GLOBAL\n"
        "WORKDIR $DIR\n"
        'RUN pwd > /out && echo "$GLOBAL $OVER $SAME $DIR" >> /out\n'
    )
    builder.build(ctx, tags=("interplay:1",), build_args={"OVER": "given"})
    assert builder.cat("interplay:1", "/out") == "/x/g1\ng1 given from-env /x/g1\n"
    assert builder.config("interplay:1")["config"]["WorkingDir"] == "/x/g1"
    res = builder.pyrun("run", "--rm", "interplay:1", "sh", "-c", "ls -d /base/deeper; pwd")
    assert res.stdout == "/base/deeper\n/x/g1\n", res.stderr
    owned = builder.context("FROM busybox\nUSER nobody\nWORKDIR /srv/app\nWORKDIR /tmp\n")
    builder.build(owned, tags=("owned:1",))
    res = builder.pyrun("run", "--rm", "owned:1", "stat", "-c", "%U %a", "/srv", "/srv/app", "/tmp")
    assert res.stdout == "nobody 755\nnobody 755\nroot 1777\n", res.stderr


def test_user_and_shell(builder):
    ctx = builder.context(
        "FROM busybox\n"
        "RUN id -u > /root-uid\n"
        "USER nobody\n"
        "RUN id -u > /tmp/nobody-uid\n"
        "USER root\n"
        'SHELL ["/bin/sh", "-c", "echo via-shell > /shell.txt; eval \\"$1\\"", "shell"]\n'
        "RUN echo hi >> /shell.txt\n"
        "CMD echo from-cmd\n"
    )
    builder.build(ctx, tags=("usershell:1",))
    assert builder.cat("usershell:1", "/root-uid") == "0\n"
    assert builder.cat("usershell:1", "/tmp/nobody-uid") == "65534\n"
    assert builder.cat("usershell:1", "/shell.txt") == "via-shell\nhi\n"
    c = builder.config("usershell:1")["config"]
    assert c["Shell"][:2] == ["/bin/sh", "-c"]
    assert c["Cmd"] == [*c["Shell"], "echo from-cmd"]  # a shell-form CMD goes through SHELL


def test_entrypoint_cmd_inheritance(builder):
    ctx = builder.context(
        "FROM busybox AS ep\n"  # busybox's CMD ["sh"] is dropped by ENTRYPOINT
        'ENTRYPOINT ["echo", "ep"]\n'
        "FROM busybox AS both\n"
        'CMD ["kept"]\n'
        'ENTRYPOINT ["echo"]\n'
        "FROM both AS child\n"  # inherits both; a new ENTRYPOINT drops the inherited CMD
        'ENTRYPOINT ["printf"]\n'
        "FROM both AS plain\n"
        "LABEL only=label\n"
    )
    builder.build(ctx, tags=("ep:1",), target="ep")
    builder.build(ctx, tags=("both:1",), target="both")
    builder.build(ctx, tags=("child:1",), target="child")
    builder.build(ctx, tags=("plain:1",), target="plain")
    assert "Cmd" not in builder.config("ep:1")["config"]
    assert builder.config("both:1")["config"]["Cmd"] == ["kept"]
    assert "Cmd" not in builder.config("child:1")["config"]
    assert builder.config("child:1")["config"]["Entrypoint"] == ["printf"]
    plain = builder.config("plain:1")["config"]
    assert plain["Cmd"] == ["kept"] and plain["Entrypoint"] == ["echo"]
    assert builder.pyrun("run", "--rm", "ep:1").stdout == "ep\n"


def test_onbuild_from_an_image_and_from_a_stage(builder):
    base = builder.context(
        "FROM busybox\n"
        "ONBUILD ARG WHO=trigger\n"
        "ONBUILD RUN echo $WHO > /onbuild.txt\n"
        "RUN echo base > /base.txt\n"
    )
    builder.build(base, tags=("onbase:1",))
    assert builder.config("onbase:1")["config"]["OnBuild"] == ["ARG WHO=trigger",
                                                               "RUN echo $WHO > /onbuild.txt"]
    child = builder.context("FROM onbase:1\nRUN cat /onbuild.txt /base.txt > /both.txt\n")
    builder.build(child, tags=("onchild:1",))
    assert builder.cat("onchild:1", "/both.txt") == "trigger\nbase\n"
    assert "OnBuild" not in builder.config("onchild:1")["config"]  # triggers fire once
    staged = builder.context(
        "FROM busybox AS parent\n"
        "ONBUILD RUN echo from-stage > /staged.txt\n"
        "FROM parent\n"
        "RUN cat /staged.txt\n"
    )
    builder.build(staged, tags=("onstage:1",))
    assert builder.cat("onstage:1", "/staged.txt") == "from-stage\n"


def test_stages_target_and_parallel_levels(builder):
    ctx = builder.context(
        "FROM busybox AS a\n"
        "RUN echo a > /a\n"
        "FROM busybox AS b\n"
        "RUN echo b > /b\n"
        "FROM busybox AS unused\n"
        "RUN exit 9\n"
        "FROM a AS final\n"
        "RUN cat /a > /final\n"
    )
    built = builder.build(ctx, tags=("stages:b",), target="b")
    started = built.names(VertexStarted)
    assert any("[b 2/2] RUN echo b" in n for n in started)
    assert not any("[a " in n or "unused" in n for n in started)
    assert builder.cat("stages:b", "/b") == "b\n"
    built = builder.build(ctx, tags=("stages:final",))
    assert builder.cat("stages:final", "/final") == "a\n"
    assert not any("unused" in n for n in built.names(VertexStarted))
    # one and two are independent (one graph level, built side by side); the last stage
    # reads both through RUN --mount=from
    parallel = builder.context(
        "FROM busybox AS one\nRUN sleep 2; echo 1 > /1\n"
        "FROM busybox AS two\nRUN sleep 2; echo 2 > /2\n"
        "FROM busybox\n"
        "RUN --mount=from=one,target=/m1 --mount=type=bind,from=two,source=/2,target=/m2 "
        "cat /m1/1 /m2 > /both\n"
    )
    built = builder.build(parallel, tags=("par:1",))
    assert builder.cat("par:1", "/both") == "1\n2\n"
    order = [(type(e).__name__, e.vertex.name) for e in built.events
             if isinstance(e, VertexStarted | VertexDone) and "sleep" in e.vertex.name]
    assert [kind for kind, _ in order] == ["VertexStarted", "VertexStarted", "VertexDone",
                                           "VertexDone"]  # both ran at once
    again = builder.build(parallel)
    assert again.image_id == built.image_id and len(again.names(VertexCached)) == 6


def test_cache_matrix(builder):
    text = (
        "FROM busybox\n"
        "RUN echo one > /one\n"
        "ARG X=1\n"
        "RUN echo $X > /x\n"
        "LABEL l=1\n"
        "RUN echo three > /three\n"
    )
    ctx = builder.context(text)
    first = builder.build(ctx, tags=("cache:1",))
    assert len(first.names(VertexDone)) == 6  # definition, metadata, 3 RUNs, export
    again = builder.build(ctx, tags=("cache:2",))
    assert len(again.names(VertexCached)) == 4  # FROM and all three RUNs
    assert again.names(VertexStarted) == ["[internal] load build definition from Dockerfile",
                                          "[internal] load metadata for docker.io/library/"
                                          "busybox:latest", "exporting to image"]
    assert again.image_id == first.image_id  # nothing changed: the same image
    # a changed build arg invalidates the steps that see it, not those before
    arg = builder.build(ctx, build_args={"X": "2"})
    assert arg.names(VertexCached) == ["[1/4] FROM docker.io/library/busybox:latest",
                                       "[2/4] RUN echo one > /one"]
    # an unchanged arg value given explicitly equals the default: all cached
    same = builder.build(ctx, build_args={"X": "1"})
    assert len(same.names(VertexCached)) == 4
    # a config-only change invalidates nothing
    label = builder.build(builder.context(text.replace("l=1", "l=2")))
    assert len(label.names(VertexCached)) == 4 and label.image_id != first.image_id
    # a changed instruction invalidates itself and what follows
    changed = builder.build(builder.context(text.replace("echo $X", "echo x=$X")))
    assert len(changed.names(VertexCached)) == 2
    assert any("RUN echo three" in n for n in changed.names(VertexStarted))
    # --no-cache runs everything, and still records: the next build is all cached
    nocache = builder.build(ctx, no_cache=True)
    assert nocache.names(VertexCached) == [] and len(nocache.names(VertexStarted)) == 7
    assert len(builder.build(ctx).names(VertexCached)) == 4


def test_reproducible_with_source_date_epoch(builder):
    ctx = builder.context(
        "FROM busybox\n"
        "RUN mkdir -p /w && echo same > /w/f && touch /w/g\n"
        "ENV E=1\n"
        "WORKDIR /made\n"
    )
    one = builder.build(ctx, no_cache=True, source_date_epoch=1_700_000_000)
    two = builder.build(ctx, no_cache=True, source_date_epoch=1_700_000_000)
    assert one.image_id == two.image_id
    config = builder.config(one.image_id)
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert all(h["created"] == "2023-11-14T22:13:20Z" for h in config["history"][-3:])
    other = builder.build(ctx, no_cache=True, source_date_epoch=1_700_000_001)
    assert other.image_id != one.image_id


def test_failed_run_leaves_nothing_and_keeps_earlier_steps(builder, tmp_path):
    before = mount_points(tmp_path), child_pids()
    text = "FROM busybox\nRUN echo ok > /ok\nRUN echo line1; echo oops >&2; exit 3\n"
    ctx = builder.context(text)
    with pytest.raises(BuildError) as info:
        builder.build(ctx, tags=("fails:1",))
    message = str(info.value)
    assert "Dockerfile:3" in message and "RUN echo line1" in message
    assert "exit code: 3" in message and "oops" in message and "line1" in message
    assert info.value.exit_code == 1
    assert "docker.io/library/fails:1" not in builder.tags()
    assert (mount_points(tmp_path), child_pids()) == before
    assert [n for n in os.listdir(os.path.join(builder.root, "tmp")) if n.startswith("build-")] == []
    fixed = builder.build(builder.context(text.replace("exit 3", "exit 0")), tags=("fails:1",))
    assert "[2/3] RUN echo ok > /ok" in fixed.names(VertexCached)
    assert "docker.io/library/fails:1" in builder.tags()


def test_failure_event_and_missing_base(builder):
    from pybuild.builder.events import Recorder
    from pybuild.builder.solver import BuildOptions, build

    recorder = Recorder()
    ctx = builder.context("FROM busybox\nRUN false\n")
    with pytest.raises(BuildError):
        build(builder.root, BuildOptions(context_dir=ctx), recorder)
    failed = recorder.of(VertexFailed)
    assert len(failed) == 1 and "exit code: 1" in failed[0].error
    with pytest.raises(ImageError) as info:
        builder.build(builder.context("FROM nosuchimage:9\n"))
    assert "pyrun pull nosuchimage:9" in str(info.value)
    with pytest.raises(DockerfileError):
        builder.build(builder.context("FROM busybox\nRUNN x\n"))


def test_scratch_heredocs_and_unused_arg_warning(builder):
    ctx = builder.context(
        "FROM scratch AS empty\n"
        "WORKDIR /a/b\n"
        "ENV X=1\n"
        "FROM busybox\n"
        "RUN <<EOF\n"
        "echo plain > /plain.txt\n"
        "EOF\n"
        "RUN <<EOF\n"
        "#!/bin/sh\n"
        'echo "shebang $0" > /shebang.txt\n'
        "EOF\n"
        "RUN cat <<A > /inline.txt\n"
        "inline $HOME\n"
        "A\n"
    )
    built = builder.build(ctx, tags=("scratch:1",), target="empty", build_args={"NOPE": "1"})
    config = builder.config("scratch:1")
    assert len(config["rootfs"]["diff_ids"]) == 1 and config["config"]["Env"][-1] == "X=1"
    warnings = [e.message for e in built.events if isinstance(e, Warning)]
    assert any("[NOPE]" in w for w in warnings)
    builder.build(ctx, tags=("heredoc:1",))
    assert builder.cat("heredoc:1", "/plain.txt") == "plain\n"
    assert builder.cat("heredoc:1", "/shebang.txt") == "shebang /dev/pipes/EOF\n"
    assert builder.cat("heredoc:1", "/inline.txt") == "inline /root\n"


def test_run_cache_mount_and_network_none(builder):
    ctx = builder.context(
        "FROM busybox\n"
        "RUN --mount=type=cache,target=/cache sh -c 'date +%s%N >> /cache/runs; "
        "wc -l < /cache/runs > /seen'\n"
        "RUN --network=none sh -c 'ls /sys/class/net > /nets'\n"
    )
    builder.build(ctx, tags=("mounts:1",))
    builder.build(ctx, tags=("mounts:2",), no_cache=True)
    assert builder.cat("mounts:2", "/seen").strip() == "2"  # the cache dir outlived build 1
    res = builder.pyrun("run", "--rm", "mounts:2", "ls", "/cache")
    assert res.stdout == ""  # the cache mount is not part of the layer
    assert builder.cat("mounts:2", "/nets") == "lo\n"  # --network=none: loopback only
    owned = builder.context(
        "FROM busybox\n"
        "RUN --mount=type=cache,id=own,target=/c,uid=65534,gid=65534,mode=0700,sharing=locked "
        "stat -c '%u %g %a' /c > /own\n"
    )
    builder.build(owned, tags=("mounts:3",))
    assert builder.cat("mounts:3", "/own") == "65534 65534 700\n"
    # a read-write bind of the context: the step writes, the context stays as it was
    rw = builder.context(
        "FROM busybox\n"
        "RUN --mount=type=bind,target=/ctx,rw echo x >> /ctx/data && "
        "rm /ctx/Dockerfile && cat /ctx/data > /seen\n"
        "RUN --mount=type=bind,source=data,target=/d.txt,rw echo y >> /d.txt\n",
        {"data": "orig\n"})
    builder.build(rw, tags=("mounts:4",))
    assert builder.cat("mounts:4", "/seen") == "orig\nx\n"
    assert open(os.path.join(rw, "data")).read() == "orig\n"
    assert os.path.exists(os.path.join(rw, "Dockerfile"))


def test_a_failing_stage_stops_its_parallel_sibling(builder, tmp_path):
    from pybuild.builder.events import Recorder
    from pybuild.builder.solver import BuildOptions, build

    before = mount_points(tmp_path), child_pids()
    ctx = builder.context(
        "FROM busybox AS slow\nRUN echo slow-started; sleep 30\n"
        "FROM busybox AS bad\nRUN sleep 1; exit 5\n"
        "FROM busybox\n"
        "RUN --mount=from=slow,target=/s --mount=from=bad,target=/b true\n"
    )
    recorder = Recorder()
    with pytest.raises(BuildError) as info:
        build(builder.root, BuildOptions(context_dir=ctx), recorder)
    assert "exit code: 5" in str(info.value)  # the first failure is the one reported
    failed = {e.vertex.name for e in recorder.of(VertexFailed)}
    started = {e.vertex.name for e in recorder.of(VertexStarted)}
    slow = {n for n in started if "sleep 30" in n}
    assert slow <= failed  # killed, not waited for (if it had started at all)
    assert not any("sleep 30" in e.vertex.name for e in recorder.of(VertexDone))
    assert (mount_points(tmp_path), child_pids()) == before

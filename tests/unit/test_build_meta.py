"""Config-only instructions on a stage's config, with Docker's semantics (no root needed)."""

from __future__ import annotations

import pytest

from pybuild.builder.convert import type_dockerfile
from pybuild.builder.steps.meta import MetaContext, StageConfig, apply_meta, resolve_workdir
from pybuild.builder.steps.run import plan_run
from pybuild.errors import DockerfileError
from pybuild.grammar import parse
from pybuild.image.config import ContainerConfig


def _apply(text: str, config: ContainerConfig | None = None, build_args=None, meta_args=None):
    typed = type_dockerfile(parse(("FROM busybox\n" + text).encode()))
    ctx = MetaContext("Dockerfile", "\\", build_args or {}, meta_args or {})
    stage = StageConfig(config or ContainerConfig(cmd=("sh",), env=("PATH=/bin",)))
    shown = [apply_meta(c, stage, ctx) for c in typed.stages[0].commands]
    return stage, shown, ctx, typed


def test_env_pairs_see_the_env_before_the_instruction():
    stage, shown, _, _ = _apply("ENV A=1\nENV A=2 B=$A\n")
    assert stage.config.env == ("PATH=/bin", "A=2", "B=1")
    assert shown == ["ENV A=1", "ENV A=2 B=1"]


def test_arg_precedence_build_arg_default_global():
    stage, shown, _, _ = _apply(
        "ARG A=default\nARG B=default\nARG G\nARG TARGETARCH\nARG NONE\n",
        build_args={"B": "given"}, meta_args={"G": "global", "TARGETARCH": "amd64"})
    assert stage.args == {"A": "default", "B": "given", "G": "global", "TARGETARCH": "amd64",
                          "NONE": None}
    assert shown[-1] == "ARG NONE"
    stage, _, _, _ = _apply("ARG X=arg\nENV X=env\n")
    assert stage.env()["X"] == "env"  # ENV wins over an ARG of the same name


def test_entrypoint_clears_only_an_inherited_cmd():
    stage, shown, _, _ = _apply('ENTRYPOINT ["a"]\n')
    assert stage.config.cmd is None and stage.config.entrypoint == ("a",)
    assert shown == ['ENTRYPOINT ["a"]']
    stage, _, _, _ = _apply('CMD ["c"]\nENTRYPOINT b\n')
    assert stage.config.cmd == ("c",) and stage.config.entrypoint == ("/bin/sh", "-c", "b")


def test_workdir_expose_volume_shell_user_label():
    stage, shown, _, _ = _apply(
        "WORKDIR a\nWORKDIR ../b/./c\nEXPOSE 80 8000-8001/udp\nVOLUME [\"/v\", \"/w\"]\n"
        'SHELL ["/bin/bash", "-c"]\nCMD echo\nUSER 1:2\nLABEL "k k"="v v"\n')
    c = stage.config
    assert c.working_dir == "/b/c"
    assert c.exposed_ports == ("80/tcp", "8000/udp", "8001/udp")
    assert shown[2] == "EXPOSE map[80/tcp:{} 8000/udp:{} 8001/udp:{}]"
    assert c.volumes == ("/v", "/w") and shown[3] == "VOLUME [/v /w]"
    assert c.cmd == ("/bin/bash", "-c", "echo") and c.user == "1:2"
    assert c.labels == {"k k": "v v"}
    assert resolve_workdir("", "x") == "/x" and resolve_workdir("/a", "/") == "/"


def test_stopsignal_names_and_numbers():
    for good in ("SIGTERM", "term", "9", "SIGRTMIN+3"):
        stage, _, _, _ = _apply(f"STOPSIGNAL {good}\n")
        assert stage.config.stop_signal == good
    with pytest.raises(DockerfileError, match="Invalid signal: SIGNOPE"):
        _apply("STOPSIGNAL SIGNOPE\n")


@pytest.mark.parametrize("ports", ["abc", "0", "70000", "80/icmp", "90-80"])
def test_bad_expose_is_an_error_with_the_line(ports):
    with pytest.raises(DockerfileError) as info:
        _apply(f"EXPOSE {ports}\n")
    assert info.value.line == 2


def test_run_plan_env_key_and_created_by():
    stage, _, ctx, typed = _apply("ARG V=1\nENV E=e\n", build_args={"http_proxy": "http://p:1"})
    run = type_dockerfile(parse(b"FROM x\nRUN echo $V\n")).stages[0].commands[0]
    plan = plan_run(run, stage, ctx, "default")
    assert plan.argv == ("/bin/sh", "-c", "echo $V") and plan.network == "host"
    assert plan.env == ("PATH=/bin", "E=e", "V=1", "http_proxy=http://p:1")
    assert plan.created_by == "RUN |1 V=1 /bin/sh -c echo $V # buildkit"
    assert "http://p:1" not in plan.key_text and plan.args["V"] == "1"
    none = type_dockerfile(parse(b"FROM x\nRUN --network=none true\n")).stages[0].commands[0]
    assert plan_run(none, stage, ctx, "host").network == "none"
    for text in (b"RUN --mount=type=tmpfs,target=/t,from=x true",
                 b"RUN --security=insecure true"):
        refused = type_dockerfile(parse(b"FROM x\n" + text + b"\n")).stages[0].commands[0]
        with pytest.raises(DockerfileError, match="not supported"):
            plan_run(refused, stage, ctx, "default")

"""RUN --mount=type=secret|ssh planned as BuildKit's dispatchSecret/dispatchSSH do, and the
`--secret` / `--ssh` values parsed as buildx does."""

from __future__ import annotations

import pytest

from pybuild.builder.convert import type_dockerfile
from pybuild.builder.secrets import SecretSource, parse_secret, parse_ssh, read_secret
from pybuild.builder.steps.meta import MetaContext, StageConfig
from pybuild.builder.steps.run import plan_run
from pybuild.errors import DockerfileError, PybuildError
from pybuild.grammar import parse
from pybuild.image.config import ContainerConfig


def _plan(line: str, env=("PATH=/bin",), workdir=""):
    run = type_dockerfile(parse(f"FROM x\n{line}\n".encode())).stages[0].commands[0]
    stage = StageConfig(ContainerConfig(env=env, working_dir=workdir))
    return plan_run(run, stage, MetaContext("Dockerfile", "\\", {}, {}), "default")


def test_secret_targets_ids_and_modes():
    plan = _plan("RUN --mount=type=secret,id=a --mount=type=secret,target=/etc/t "
                 "--mount=type=secret,src=b,mode=0440,uid=1,gid=2,required "
                 "--mount=type=secret,id=c,env=C --mount=type=secret,id=d,env=D,target=rel "
                 "true", workdir="/w")
    got = [(m.kind, m.source, m.target, m.mode, m.uid, m.gid, m.required, m.env)
           for m in plan.mounts]
    assert got == [("secret", "a", "/run/secrets/a", 0o400, 0, 0, False, None),
                   ("secret", "t", "/etc/t", 0o400, 0, 0, False, None),
                   ("secret", "b", "/run/secrets/b", 0o440, 1, 2, True, None),
                   ("secret", "c", "", 0o400, 0, 0, False, "C"),
                   ("secret", "d", "/w/rel", 0o400, 0, 0, False, "D")]
    assert "SSH_AUTH_SOCK" not in " ".join(plan.env)
    # the mount is in the key (its id, target, mode), the secret's content never is
    assert plan.key_text != _plan("RUN --mount=type=secret,id=a,mode=0444 true").key_text


def test_ssh_targets_and_auth_sock():
    plan = _plan("RUN --mount=type=ssh --mount=type=ssh,id=gh,required=true "
                 "--mount=type=ssh,target=/a true")
    got = [(m.kind, m.source, m.target, m.required) for m in plan.mounts]
    assert got == [("ssh", "default", "/run/buildkit/ssh_agent.0", False),
                   ("ssh", "gh", "/run/buildkit/ssh_agent.1", True),
                   ("ssh", "default", "/a", False)]
    assert plan.env[-1] == "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"
    own = _plan("RUN --mount=type=ssh true", env=("PATH=/bin", "SSH_AUTH_SOCK=/mine"))
    assert own.env == ("PATH=/bin", "SSH_AUTH_SOCK=/mine")  # ENV wins, as in BuildKit


def test_secret_mount_errors():
    for line, message in (("RUN --mount=type=secret,id=a,from=s true", "should not have a from"),
                          ("RUN --mount=type=secret,id=a,src=b true", "both source and id"),
                          ("RUN --mount=type=secret true", "one of source, target")):
        with pytest.raises((DockerfileError, PybuildError), match=message):
            _plan(line)


def test_parse_secret_like_buildx(tmp_path):
    f = tmp_path / "s"
    f.write_text("v")
    assert parse_secret(f"id=a,src={f}") == SecretSource("a", str(f), None)
    assert parse_secret(f"id=a,source={f},type=file") == SecretSource("a", str(f), None)
    assert parse_secret("id=a,env=HOME", {}) == SecretSource("a", None, "HOME")
    assert parse_secret("type=env,id=a,src=X", {}) == SecretSource("a", None, "X")
    assert parse_secret("id=X", {"X": "1"}) == SecretSource("X", None, "X")
    assert read_secret(SecretSource("X", None, "X"), {"X": "1"}) == b"1"
    assert read_secret(SecretSource("X", None, "X"), {}) is None
    assert read_secret(SecretSource("a", str(f), None)) == b"v"
    big = tmp_path / "big"
    big.write_bytes(b"x" * (500 * 1024 + 1))
    for text, message in (("id=a,src=/nonexistent", "failed to stat /nonexistent"),
                          ("src=/x", "secret missing ID"), ("id=a,type=x", "unsupported"),
                          ("id=a,bogus=1", "unexpected key 'bogus'"), ("id", "key=value"),
                          (f"id=a,src={tmp_path}", "not a regular file"),
                          (f"id=a,src={big}", "too big"), ('"id=a', "invalid --secret")):
        with pytest.raises(PybuildError, match=message):
            parse_secret(text, {})


def test_parse_ssh(tmp_path):
    key = tmp_path / "k"
    key.write_text("")
    assert parse_ssh("default").paths == ()
    assert parse_ssh(f"gh={key},{key}").paths == (str(key), str(key))
    with pytest.raises(PybuildError, match="empty id"):
        parse_ssh("=x")
    with pytest.raises(PybuildError, match="no such file"):
        parse_ssh("default=/nonexistent/sock")


def test_tmpfs_size_as_go_units():
    from pybuild.builder.steps.run import ram_in_bytes

    assert [ram_in_bytes(t) for t in ("1024", "64m", "1.5g", "2GiB", "3 kb", "1K")] == [
        1024, 64 << 20, 3 << 29, 2 << 30, 3072, 1024]
    for text in ("", "m", "1x", "-1m", "1.m"):
        with pytest.raises(ValueError):
            ram_in_bytes(text)
    plan = _plan("RUN --mount=type=tmpfs,target=/t,size=64m --mount=type=tmpfs,target=/u true")
    assert [(m.kind, m.target, m.size) for m in plan.mounts] == [
        ("tmpfs", "/t", 64 << 20), ("tmpfs", "/u", None)]
    with pytest.raises(DockerfileError, match="invalid value for size: 1q"):
        _plan("RUN --mount=type=tmpfs,target=/t,size=1q true")

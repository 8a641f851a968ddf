"""RUN --mount=type=secret and type=ssh with `pybuild --secret` / `--ssh`, as BuildKit: the
secret is readable in the step and in no layer, history or cache key; an ssh agent is
reachable through $SSH_AUTH_SOCK (a real ssh-agent, listed with ssh-add inside the step)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile

import pytest

pytestmark = pytest.mark.root

SECRET = "s3cr3t-value-4f1c"
ENV_SECRET = "env-secret-9b2d"


def _layer_bytes(builder, ref: str, tmp_path) -> list[tuple[list[str], bytes]]:
    """(member names, raw bytes) of every layer of `ref`, from `pyrun save`."""
    out = tmp_path / "saved.tar"
    res = builder.pyrun("save", "-o", str(out), ref)
    assert res.returncode == 0, res.stderr
    layers = []
    with tarfile.open(out) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for name in manifest[0]["Layers"]:
            data = outer.extractfile(name).read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=__import__("io").BytesIO(data)) as layer:
                names = layer.getnames()
            layers.append((names, data))
    return layers


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest() + "\n"


def test_secret_mounts_readable_never_stored_and_out_of_the_cache_key(builder, tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET)
    ctx = builder.context(
        "FROM busybox\n"
        "RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /sum && "
        "stat -c '%a %u %g' /run/secrets/tok > /default && "
        "(echo x > /run/secrets/tok 2>/dev/null && echo writable || echo ro) > /ro\n"
        "RUN --mount=type=secret,id=tok,target=/s/t,mode=0440,uid=7,gid=8 "
        "--mount=type=secret,id=envtok,env=TOKEN "
        "sh -c 'stat -c \"%a %u %g\" /s/t > /custom; printf %s \"$TOKEN\" | sha256sum "
        "| cut -d\" \" -f1 > /envsum; test ! -e /run/secrets/envtok'\n"
        "RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && touch /skipped\n")
    env = {"PB_TEST_ENV_SECRET": ENV_SECRET}
    args = ("--progress", "plain", "--secret", f"id=tok,src={secret_file}",
            "--secret", "id=envtok,env=PB_TEST_ENV_SECRET", "-t", "sec:1", ctx)
    res = _cli(builder, env, *args)
    assert res.returncode == 0, res.stderr
    assert builder.cat("sec:1", "/default") == "400 0 0\n"
    assert builder.cat("sec:1", "/ro") == "ro\n"
    assert builder.cat("sec:1", "/custom") == "440 7 8\n"
    assert builder.cat("sec:1", "/sum") == _sha256(SECRET)
    assert builder.cat("sec:1", "/envsum") == _sha256(ENV_SECRET)
    assert builder.cat("sec:1", "/skipped") == ""
    # in no layer (no file, no bytes, no empty mount point), no history, no config
    for names, data in _layer_bytes(builder, "sec:1", tmp_path)[-3:]:
        tops = {n.removeprefix("./").split("/")[0] for n in names}
        assert not tops & {"run", "s"}, names
        assert SECRET.encode() not in data and ENV_SECRET.encode() not in data
    config = json.dumps(builder.config("sec:1"))
    assert SECRET not in config and ENV_SECRET not in config
    assert "type=secret" not in config  # history shows the command, as BuildKit's does
    history = builder.pyrun("history", "--no-trunc", "sec:1")
    assert history.returncode == 0 and SECRET not in history.stdout
    # a new secret value does not invalidate the cache (BuildKit's rule)
    secret_file.write_text("another value")
    again = _cli(builder, env, *args[:-3], "-t", "sec:2", ctx)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("CACHED") == 4  # FROM and the three RUNs
    assert builder.config("sec:2") == builder.config("sec:1")


def test_secret_sources_and_errors(builder, tmp_path):
    ctx = builder.context("FROM busybox\n"
                          "RUN --mount=type=secret,id=FROMENV cat /run/secrets/FROMENV > /v\n"
                          "RUN --mount=type=secret,id=need,required=true true\n")
    # a bare id takes $ID when it is set (BuildKit's file store)
    res = _cli(builder, {"FROMENV": "from-the-env"}, "--secret", "id=FROMENV",
               "--secret", "type=env,id=need,src=FROMENV", "-t", "sec:env", ctx)
    assert res.returncode == 0, res.stderr
    assert builder.cat("sec:env", "/v") == "from-the-env"
    # checked when the step runs (a cache hit mounts nothing, as in BuildKit)
    res = _cli(builder, {"FROMENV": "x"}, "--secret", "id=FROMENV", "--no-cache", "-t",
               "sec:req", ctx)
    assert res.returncode == 1
    assert "Dockerfile:3" in res.stderr and "secret need: not found" in res.stderr
    assert "sec:req" not in builder.tags()
    bad = [("id=a,src=/nonexistent/x", "failed to stat /nonexistent/x"),
           ("src=/etc/hostname", "secret missing ID"),
           ("id=a,type=vault", 'unsupported secret type "vault"'),
           ("id=a,color=red", "unexpected key 'color'")]
    for spec, message in bad:
        res = _cli(builder, {}, "--secret", spec, ctx)
        assert res.returncode == 1 and message in res.stderr, (spec, res.stderr)


def _cli(builder, env: dict[str, str], *args) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "pybuild.cli.build", *args],
                          env={**os.environ, "PYBUILD_ROOT": builder.root, **env},
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def _ssh_tools(ctx: str) -> None:
    """ssh-add and the libraries it needs, into ctx/tools (busybox has no agent client)."""
    tools = os.path.join(ctx, "tools")
    os.makedirs(tools)
    shutil.copy(shutil.which("ssh-add"), tools)
    out = subprocess.run(["ldd", shutil.which("ssh-add")], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            shutil.copy(path, os.path.join(tools, os.path.basename(path)))


@pytest.fixture
def ssh_key(tmp_path):
    if not (shutil.which("ssh-agent") and shutil.which("ssh-keygen") and shutil.which("ldd")):
        pytest.skip("openssh-client is not installed (make debs)")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pybuild-test",
                    "-f", str(key)], check=True)
    fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True,
                                 text=True, check=True).stdout.split()[1]
    return key, fingerprint


def test_ssh_mount_forwards_an_agent(builder, tmp_path, ssh_key):
    key, fingerprint = ssh_key
    sock = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if os.path.exists(sock):
                break
            __import__("time").sleep(0.01)
        subprocess.run(["ssh-add", "-q", str(key)], env={**os.environ, "SSH_AUTH_SOCK": sock},
                       check=True, capture_output=True)
        dockerfile = (
            "FROM busybox\n"
            "RUN --mount=type=ssh --mount=type=bind,source=tools,target=/tools "
            "test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock && "
            "stat -c '%a %u %g' \"$SSH_AUTH_SOCK\" > /sockmode && "
            "/tools/ld-linux-x86-64.so.2 --library-path /tools /tools/ssh-add -l > /keys\n"
            "RUN --mount=type=ssh,id=other test ! -e /run/buildkit/ssh_agent.0 && touch /skip\n"
            # ssh-agent answers only its own uid and root: the step's socket relays for it
            "RUN mkdir -m 1777 /out\n"
            "USER 65534\n"
            "RUN --mount=type=ssh,target=/a,uid=65534,mode=0600 "
            "--mount=type=bind,source=tools,target=/tools "
            "stat -c '%a %u' /a > /out/mode && /tools/ld-linux-x86-64.so.2 --library-path "
            "/tools /tools/ssh-add -l > /out/keys\n")
        ctx = builder.context(dockerfile)
        _ssh_tools(ctx)
        # `default` is $SSH_AUTH_SOCK
        res = _cli(builder, {"SSH_AUTH_SOCK": sock}, "--ssh", "default", "-t", "ssh:1", ctx)
        assert res.returncode == 0, res.stderr
        assert builder.cat("ssh:1", "/sock") == "/run/buildkit/ssh_agent.0\n"
        assert fingerprint in builder.cat("ssh:1", "/keys")
        assert builder.cat("ssh:1", "/skip") == ""
        assert builder.cat("ssh:1", "/sockmode") == "600 0 0\n"  # BuildKit's defaults
        assert builder.cat("ssh:1", "/out/mode") == "600 65534\n"
        assert fingerprint in builder.cat("ssh:1", "/out/keys")
        assert sock not in json.dumps(builder.config("ssh:1"))
        names = [n for layer, _ in _layer_bytes(builder, "ssh:1", tmp_path)[-4:] for n in layer]
        assert not any("run" in n.split("/")[:2] for n in names), names
    finally:
        agent.terminate()
        agent.wait()


def test_ssh_keys_get_a_private_agent_and_required_fails(builder, tmp_path, ssh_key):
    key, fingerprint = ssh_key
    ctx = builder.context(
        "FROM busybox\n"
        "RUN --mount=type=ssh,target=/agent --mount=type=bind,source=tools,target=/tools "
        "SSH_AUTH_SOCK=/agent /tools/ld-linux-x86-64.so.2 --library-path /tools "
        "/tools/ssh-add -l > /keys\n")
    _ssh_tools(ctx)
    env = {"SSH_AUTH_SOCK": ""}
    res = _cli(builder, env, "--ssh", f"default={key}", "--no-cache", "-t", "ssh:2", ctx)
    assert res.returncode == 0, res.stderr
    assert fingerprint in builder.cat("ssh:2", "/keys")
    required = builder.context("FROM busybox\nRUN --mount=type=ssh,required=true true\n")
    res = _cli(builder, env, "-t", "ssh:3", required)
    assert res.returncode == 1
    assert 'Dockerfile:2' in res.stderr
    assert 'no SSH key "default" forwarded from the client' in res.stderr
    res = _cli(builder, env, "--ssh", "default", required)
    assert res.returncode == 1 and "SSH_AUTH_SOCK" in res.stderr
    res = _cli(builder, env, "--ssh", "default=/nonexistent/key", required)
    assert res.returncode == 1 and "/nonexistent/key" in res.stderr

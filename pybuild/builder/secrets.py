"""What a build may lend its RUN steps without keeping it: `--secret` sources (a file or an
environment variable, read only when a step mounts it) and `--ssh` agents (a socket, or a
private ssh-agent holding the given keys for the length of the build), as buildx parses them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from pybuild.errors import PybuildError

__all__ = ["SecretSource", "SshSource", "parse_secret", "parse_ssh", "read_secret",
           "ssh_agents", "MAX_SECRET_SIZE"]

MAX_SECRET_SIZE = 500 * 1024  # BuildKit's limit on one secret


class SecretError(PybuildError):
    """A --secret or --ssh value that cannot be used (Docker's build exits 1)."""

    exit_code = 1


@dataclass(frozen=True)
class SecretSource:
    id: str
    path: str | None = None  # a file on this host
    env: str | None = None  # or the value of an environment variable of this process


@dataclass(frozen=True)
class SshSource:
    id: str
    paths: tuple[str, ...] = ()  # an agent socket, or private key files; () = $SSH_AUTH_SOCK


def _fields(text: str, flag: str) -> list[str]:
    import csv

    try:
        return next(csv.reader([text], strict=True), [])
    except csv.Error as e:
        raise SecretError(f"invalid {flag} {text!r}: {e}") from None


def parse_secret(text: str, environ: Mapping[str, str] | None = None) -> SecretSource:
    """One `--secret id=ID[,src=PATH|,env=VAR][,type=file|env]` (buildx's parseSecret and
    BuildKit's file store: without src or env, $ID if it is set, else the file ID)."""
    environ = os.environ if environ is None else environ
    kind = ident = path = env = None
    for field in _fields(text, "--secret"):
        key, eq, value = field.partition("=")
        key = key.lower()
        if not eq:
            raise SecretError(f"invalid --secret {text!r}: field '{field}' must be a key=value "
                              "pair")
        if key == "type":
            if value not in ("file", "env"):
                raise SecretError(f'invalid --secret {text!r}: unsupported secret type "{value}"')
            kind = value
        elif key == "id":
            ident = value
        elif key in ("source", "src"):
            path = value
        elif key == "env":
            env = value
        else:
            raise SecretError(f"invalid --secret {text!r}: unexpected key '{key}' in '{field}'")
    if kind == "env" and not env:
        env, path = path, None
    if not ident:
        raise SecretError(f"invalid --secret {text!r}: secret missing ID")
    if not path and not env:
        if ident in environ:
            env = ident
        else:
            path = ident
    if env and not path:
        return SecretSource(ident, None, env)
    assert path is not None
    try:
        st = os.stat(path)
    except OSError as e:
        raise SecretError(f"failed to stat {path}: {e.strerror.lower()}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretError(f"secret {ident}: {path} is not a regular file")
    if st.st_size > MAX_SECRET_SIZE:
        raise SecretError(f"secret {ident}: {path} is too big (over {MAX_SECRET_SIZE} bytes)")
    return SecretSource(ident, os.path.abspath(path), None)


def read_secret(source: SecretSource, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The secret's bytes now (a step reads it when it runs); None if it has gone."""
    environ = os.environ if environ is None else environ
    if source.env is not None:
        value = environ.get(source.env)
        return None if value is None else value.encode()
    try:
        with open(source.path or "", "rb") as f:
            data = f.read(MAX_SECRET_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SecretError(f"secret {source.id}: cannot read {source.path}: "
                          f"{e.strerror.lower()}") from None
    if len(data) > MAX_SECRET_SIZE:
        raise SecretError(f"secret {source.id}: {source.path} is too big")
    return data


def parse_ssh(text: str) -> SshSource:
    """One `--ssh ID[=SOCKET|KEY[,KEY...]]` (buildx's parseSSH)."""
    ident, eq, rest = text.partition("=")
    if not ident:
        raise SecretError(f"invalid --ssh {text!r}: empty id")
    paths = tuple(p for p in rest.split(",") if p) if eq else ()
    for p in paths:
        if not os.path.exists(p):
            raise SecretError(f"invalid --ssh {text!r}: {p}: no such file or directory")
    return SshSource(ident, tuple(os.path.abspath(p) for p in paths))


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def ssh_agents(sources: Sequence[SshSource],
               environ: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """id -> agent socket for the length of a build. A source of key files gets its own
    ssh-agent (from openssh-client) holding those keys; it is stopped (by pid) afterwards."""
    import shutil
    import subprocess

    environ = os.environ if environ is None else environ
    sockets: dict[str, str] = {}
    agents: list[tuple[subprocess.Popen, str]] = []
    try:
        for source in sources:
            if not source.paths:
                sock = environ.get("SSH_AUTH_SOCK", "")
                if not sock:
                    raise SecretError("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK "
                                      "is set")
                if not _is_socket(sock):
                    raise SecretError(f"--ssh {source.id}: SSH_AUTH_SOCK {sock} is not a socket")
                sockets[source.id] = sock
            elif len(source.paths) == 1 and _is_socket(source.paths[0]):
                sockets[source.id] = source.paths[0]
            else:
                sockets[source.id] = _start_agent(source, agents)
        yield sockets
    finally:
        for proc, tmp in agents:
            proc.terminate()  # by its pid: only the agent we started
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)


def _start_agent(source: SshSource, agents: list) -> str:
    import shutil
    import subprocess
    import tempfile
    import time

    agent, add = shutil.which("ssh-agent"), shutil.which("ssh-add")
    if not agent or not add:
        raise SecretError(f"--ssh {source.id}: key files need ssh-agent and ssh-add "
                          "(openssh-client) on PATH")
    tmp = tempfile.mkdtemp(prefix="pybuild-ssh-")
    sock = os.path.join(tmp, "agent.sock")
    # -D: stay in the foreground as our child, so its pid is the one we stop
    proc = subprocess.Popen([agent, "-D", "-a", sock], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agents.append((proc, tmp))
    for _ in range(500):
        if _is_socket(sock) or proc.poll() is not None:
            break
        time.sleep(0.01)
    if not _is_socket(sock):
        raise SecretError(f"--ssh {source.id}: ssh-agent did not start")
    env = {**os.environ, "SSH_AUTH_SOCK": sock}
    for key in source.paths:
        res = subprocess.run([add, "-q", key], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise SecretError(f"--ssh {source.id}: cannot load key {key}: "
                              f"{res.stderr.strip() or res.returncode}")
    return sock

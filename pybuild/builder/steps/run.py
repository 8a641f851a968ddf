"""RUN: the step's argv, environment, user, working dir, network and mounts worked out from the
stage (BuildKit's dispatchRun), and running it in a build sandbox with its output streamed.

- shell form through SHELL (default /bin/sh -c); exec form as given; a RUN that is only a
  heredoc runs the heredoc as the script (a `#!` heredoc runs as its own program), heredocs
  inside a longer command are handed to the shell with the command, as BuildKit does;
- env: the config's ENV, the ARGs in scope (ENV wins), and proxy build args; the ARGs and
  proxies reach the cache key only through step_key's build args (proxies never);
- `--mount=type=cache` (a dir kept in the store per id), `type=tmpfs` (a tmpfs of its own,
  `size=` as its limit), `type=bind` from the context, a stage or an image, `type=secret` (a file on
  a private tmpfs, bound read-only, or an env var; read when the step runs, so its content is
  in no layer, no history and no cache key) and `type=ssh` (a socket relaying to the
  build's agent, SSH_AUTH_SOCK pointing at the first one), as BuildKit's dispatchRun does;
  those two are set up by steps/run_lent.py.
"""

from __future__ import annotations

import collections
import json
import os
import posixpath
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pybuild.builder.instructions import Run
from pybuild.builder.steps.meta import MetaContext, StageConfig, expander
from pybuild.cache.keys import PROXY_ARGS
from pybuild.errors import BuildError, DockerfileError, PybuildError

if TYPE_CHECKING:
    from pybuild.builder.secrets import SecretSource

__all__ = ["RunPlan", "plan_run", "execute_run", "TAIL_LINES"]

TAIL_LINES = 10  # output lines a failed RUN shows in the error
_ONLY_HEREDOC = re.compile(r"""^\s*<<-?(["']?)([^\s"']+)\1\s*$""")


@dataclass(frozen=True)
class RunMount:
    kind: str  # cache | tmpfs | bind | secret | ssh
    target: str  # secret: "" when it only goes into `env`
    source: str = ""  # cache, secret, ssh: its id; bind: the path in the context (or `from_`)
    readonly: bool = False
    from_: str | None = None  # bind: a stage or an image instead of the context
    sharing: str = "shared"  # cache: shared | locked | private
    mode: int = 0o755  # cache: the mode, owner and group of a new cache dir; secret: file's
    uid: int = 0
    gid: int = 0
    required: bool = False  # secret, ssh: fail when the build was not given it
    env: str | None = None  # secret: also (or only) expose it as this variable
    size: int | None = None  # tmpfs: its limit in bytes
    seed: str = ""  # cache with from_: the path in it a new cache dir starts as a copy of

    def key(self) -> list:
        fields = [self.kind, self.target, self.source, self.readonly, self.from_, self.mode,
                  self.uid, self.gid]
        if self.kind in ("secret", "ssh"):
            return fields + [self.required, self.env]
        if self.seed:
            fields.append(self.seed)
        return fields + [self.size] if self.size is not None else fields


_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def ram_in_bytes(text: str) -> int:
    """Go's units.RAMInBytes, which BuildKit uses for tmpfs `size=`: 64m, 1.5g, 1024, 2GiB
    (every unit is a power of 1024)."""
    match = _RAM.match(text)
    if not match:
        raise ValueError(f"invalid size: '{text}'")
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * 1024 ** ("".join(" kmgtp").index(unit or " ")))


@dataclass(frozen=True)
class RunPlan:
    argv: tuple[str, ...]
    env: tuple[str, ...]  # KEY=VALUE, everything the process gets
    user: str
    workdir: str
    network: str  # none | host (the sandbox's modes)
    files: tuple[tuple[str, str], ...]  # (path in the container, content): heredoc programs
    mounts: tuple[RunMount, ...]
    created_by: str
    key_text: str  # the instruction as the cache key sees it (no ARG or proxy values)
    args: Mapping[str, str]  # the ARGs in scope and proxy args: step_key's build args


def _network(command: Run, build_network: str, ctx: MetaContext) -> str:
    mode = command.network if command.network != "default" else build_network
    if mode in ("default", "host"):
        return "host"  # no build network of our own yet: steps share the host's, like `host`
    if mode == "none":
        return "none"
    raise DockerfileError(f"unsupported network mode {mode!r}", path=ctx.path, line=command.line)


def _heredoc_argv(command: Run, shell: tuple[str, ...]) -> tuple[tuple[str, ...], list]:
    text = command.command[0] if command.command else ""
    files: list[tuple[str, str]] = []
    only = _ONLY_HEREDOC.match(text)
    if len(command.heredocs) == 1 and only and only.group(2) == command.heredocs[0].name:
        body = command.heredocs[0].body
        if body.startswith("#!"):
            path = f"/dev/pipes/{command.heredocs[0].name}"
            files.append((path, body))
            return (path,), files
        return (*shell, body), files
    script = text + "\n" + "".join(f"{h.body}{h.name}\n" for h in command.heredocs)
    return (*shell, script), files


def _mounts(command: Run, stage: StageConfig, ctx: MetaContext) -> tuple[RunMount, ...]:
    from pybuild.builder.mounts import parse_mount

    out = []
    for mount in command.mounts:
        ex = expander(stage, ctx, command)
        try:
            m = parse_mount(mount.spec, ex) if mount.deferred else mount
        except PybuildError as e:
            raise DockerfileError(str(e), path=ctx.path, line=command.line) from None
        if m.from_ and m.type not in ("bind", "cache"):
            what = f"type={m.type},from={m.from_}"
            raise DockerfileError(f"RUN --mount={what} is not supported by pybuild",
                                  path=ctx.path, line=command.line)
        target = m.target or ""
        if target and not target.startswith("/"):
            target = os.path.normpath(os.path.join(stage.config.working_dir or "/", target))
        if m.type == "secret":  # BuildKit's dispatchSecret
            ident = m.source or m.id or posixpath.basename(target)
            if not ident:
                raise DockerfileError("one of source, target required", path=ctx.path,
                                      line=command.line)
            if not target and not m.env:
                target = f"/run/secrets/{posixpath.basename(ident)}"
            out.append(RunMount("secret", target, ident, True, mode=0o400 if m.mode is None
                                else m.mode, uid=m.uid or 0, gid=m.gid or 0,
                                required=m.required, env=m.env))
            continue
        if m.type == "ssh":  # BuildKit's dispatchSSH and llb.AddSSHSocket
            n = sum(x.kind == "ssh" for x in out)
            out.append(RunMount("ssh", target or f"/run/buildkit/ssh_agent.{n}",
                                m.id or "default", True, mode=0o600 if m.mode is None
                                else m.mode, uid=m.uid or 0, gid=m.gid or 0,
                                required=m.required))
            continue
        if not target:
            raise DockerfileError("mount target is required", path=ctx.path, line=command.line)
        if m.type == "cache":
            out.append(RunMount("cache", target, m.id or target, m.readonly, m.from_,
                                m.sharing or "shared", 0o755 if m.mode is None else m.mode,
                                m.uid or 0, m.gid or 0, seed=(m.source or "/") if m.from_
                                else ""))
        elif m.type == "tmpfs":
            size = None
            if m.size:
                try:
                    size = ram_in_bytes(m.size)
                except ValueError as e:
                    raise DockerfileError(f"invalid value for size: {m.size}: {e}",
                                          path=ctx.path, line=command.line) from None
            out.append(RunMount("tmpfs", target, size=size or None))
        else:
            out.append(RunMount("bind", target, m.source or ".", m.readonly, m.from_))
    return tuple(out)


def plan_run(command: Run, stage: StageConfig, ctx: MetaContext, build_network: str) -> RunPlan:
    if command.security != "sandbox":
        raise DockerfileError(f"RUN --security={command.security} is not supported by pybuild "
                              "(steps always run sandboxed)", path=ctx.path, line=command.line)
    shell = stage.shell
    files: list[tuple[str, str]] = []
    if command.json:
        argv = tuple(command.command)
    elif command.heredocs:
        argv, files = _heredoc_argv(command, shell)
    else:
        argv = (*shell, *command.command)
    if not argv:
        raise DockerfileError("RUN requires at least one argument", path=ctx.path,
                              line=command.line)
    config_env = stage.config.env_dict()
    args = stage.arg_values()
    env = list(stage.config.env)
    env += [f"{k}={v}" for k, v in args.items() if k not in config_env]
    proxies = {k: v for k, v in ctx.build_args.items() if k in PROXY_ARGS}
    env += [f"{k}={v}" for k, v in proxies.items() if k not in config_env and k not in args]
    network = _network(command, build_network, ctx)
    mounts = _mounts(command, stage, ctx)
    ssh = [m for m in mounts if m.kind == "ssh"]
    if ssh and not any(e.startswith("SSH_AUTH_SOCK=") for e in env):
        env.append(f"SSH_AUTH_SOCK={ssh[0].target}")
    shown = [f"{k}={config_env.get(k, v)}" for k, v in args.items()]
    prefix = [f"|{len(shown)}", *shown] if shown else []
    created_by = "RUN " + " ".join([*prefix, *argv]) + " # buildkit"
    key_text = json.dumps(
        {"run": list(argv), "env": list(stage.config.env), "user": stage.config.user,
         "workdir": stage.config.working_dir or "/", "network": network,
         "files": files, "mounts": [m.key() for m in mounts]},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return RunPlan(argv, tuple(env), stage.config.user, stage.config.working_dir or "/",
                   network, tuple(files), mounts, created_by, key_text, {**args, **proxies})


class _Tail:
    """The last lines a step printed (both streams), for the failure message."""

    def __init__(self) -> None:
        self.lines: collections.deque[bytes] = collections.deque(maxlen=TAIL_LINES)
        self.partial = b""
        self.lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        with self.lock:
            parts = (self.partial + data).split(b"\n")
            self.partial = parts.pop()
            self.lines.extend(parts)

    def text(self) -> list[str]:
        lines = list(self.lines) + ([self.partial] if self.partial else [])
        return [line.decode("utf-8", "replace") for line in lines[-TAIL_LINES:]]


def _pump(fd: int, stream: int, on_output: Callable[[int, bytes], None], tail: _Tail) -> None:
    try:
        while data := os.read(fd, 65536):
            tail.feed(data)
            on_output(stream, data)
    finally:
        os.close(fd)


def execute_run(plan: RunPlan, *, lower_dirs: list[str], upper_dir: str, work_dir: str,
                scratch_dir: str, context_dir: str | None, cache_root: str,
                on_output: Callable[[int, bytes], None],
                sources: Mapping[str, str] | None = None,
                secrets: Mapping[str, SecretSource] | None = None,
                ssh_sockets: Mapping[str, str] | None = None,
                source_keys: Mapping[str, str] | None = None) -> tuple[int, list[str]]:
    """Run the plan over `lower_dirs` with writes going to `upper_dir`. `sources` maps the
    `from=` of bind and cache mounts to read-only views of those stages/images (and
    `source_keys` to their cache keys, naming a seeded cache); `secrets` and
    `ssh_sockets` are what the build was given, by id. Returns the exit code and the last
    lines of output. Raises BuildError when the command cannot start or a required secret
    or ssh agent is missing."""
    from pybuild.runtime.spec import BindMount

    binds: list[BindMount] = []
    undo: list[Callable[[], None]] = []  # flocks to release, views and tmpfs to unmount
    env = list(plan.env)
    try:
        from pybuild.builder.steps.run_lent import lent_mounts

        lent = lent_mounts(plan, scratch_dir, env, undo, secrets or {}, ssh_sockets or {})
        return _execute(plan, binds, undo, lower_dirs, upper_dir, work_dir, scratch_dir,
                        context_dir, cache_root, on_output, sources, tuple(env), lent,
                        source_keys)
    finally:
        for fn in reversed(undo):
            fn()


def _writable_view(host: str, scratch_dir: str, i: int, undo: list) -> str:
    """A read-write bind (`rw`): the step may write, but never into the context or another
    stage; its writes land in a scratch overlay (or a copy of a file) thrown away after."""
    import shutil

    base = os.path.join(scratch_dir, f"rw-{i}")
    if not os.path.isdir(host):
        os.makedirs(base)
        copy = os.path.join(base, os.path.basename(host))
        shutil.copy2(host, copy)
        return copy
    from pybuild.runtime.mounts import Rootfs, mount_overlay, unmount_tree

    upper, work, merged = (os.path.join(base, d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.makedirs(d)
    mount_overlay(Rootfs((host,), upper, work, merged))
    undo.append(lambda: unmount_tree(merged))
    return merged


def _execute(plan, binds, undo, lower_dirs, upper_dir, work_dir, scratch_dir, context_dir,
             cache_root, on_output, sources, env, lent, source_keys) -> tuple[int, list[str]]:
    from pybuild.builder.steps.run_dirs import cache_dir, tmpfs
    from pybuild.runtime.mounts import secure_join
    from pybuild.runtime.spec import BindMount
    from pybuild.runtime.step import run_step

    for i, (path, content) in enumerate(plan.files):
        host = os.path.join(scratch_dir, f"heredoc-{i}")
        with open(host, "w") as f:
            f.write(content)
        os.chmod(host, 0o755)
        binds.append(BindMount(host, path, readonly=True))
    for i, m in enumerate(plan.mounts):
        if m.kind in ("secret", "ssh"):
            if i in lent:
                binds.append(lent[i])
            continue
        if m.kind == "cache":
            seed = None
            if m.from_:  # a cache seeded from a stage or an image: one per (id, source)
                root = (sources or {}).get(m.from_)
                seed = (secure_join(root, m.seed), (source_keys or {}).get(m.from_, m.from_))
            host = cache_dir(m, cache_root, scratch_dir, i, undo, seed)
        elif m.kind == "tmpfs":
            host = tmpfs(os.path.join(scratch_dir, f"tmpfs-{i}"), m.size, undo)
        else:
            root = (sources or {}).get(m.from_) if m.from_ else context_dir
            if root is None:
                raise BuildError("RUN --mount=type=bind needs a build context")
            from pybuild.runtime.mounts import secure_join

            host = secure_join(root, m.source)
            if not os.path.exists(host):
                where = f"in {m.from_}" if m.from_ else "in the build context"
                raise BuildError(f"RUN --mount: {m.source}: not found {where}")
            if not m.readonly:
                host = _writable_view(host, scratch_dir, i, undo)
        binds.append(BindMount(host, m.target, readonly=m.readonly))

    tail = _Tail()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    readers = [threading.Thread(target=_pump, args=(out_r, 1, on_output, tail), daemon=True),
               threading.Thread(target=_pump, args=(err_r, 2, on_output, tail), daemon=True)]
    for t in readers:
        t.start()
    try:
        code = run_step(lower_dirs=lower_dirs, upper_dir=upper_dir, work_dir=work_dir,
                        scratch_dir=scratch_dir, argv=plan.argv, env=env, user=plan.user,
                        workdir=plan.workdir, network=plan.network, binds=binds,
                        stdout=out_w, stderr=err_w)
    except PybuildError as e:  # CommandNotFound, CommandNotExecutable, set-up failures
        code = e.exit_code
        tail.feed(f"{e}\n".encode())
    finally:
        os.close(out_w)
        os.close(err_w)
        for t in readers:
            t.join()
    return code, tail.text()

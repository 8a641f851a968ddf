"""The config-only instructions (ENV, ARG, LABEL, WORKDIR, USER, EXPOSE, VOLUME, CMD,
ENTRYPOINT, SHELL, HEALTHCHECK, STOPSIGNAL, ONBUILD, MAINTAINER) applied to a stage's image
config with Docker's semantics, and the `created_by` text BuildKit writes into the history.

Words are expanded here, at dispatch, with the ARGs in scope and the stage's ENV (ENV wins
over an ARG of the same name, as Docker documents). WORKDIR's directory is made by the
solver; here it only moves the config's working dir.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pybuild.builder.instructions import (
    Arg,
    Cmd,
    Command,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from pybuild.errors import DockerfileError, PybuildError
from pybuild.image.config import ContainerConfig
from pybuild.image.config import Healthcheck as ConfigHealthcheck

__all__ = [
    "DEFAULT_SHELL",
    "META_TYPES",
    "MetaContext",
    "StageConfig",
    "apply_meta",
    "go_list",
    "go_quote_list",
]

DEFAULT_SHELL = ("/bin/sh", "-c")

META_TYPES = (Arg, Cmd, Entrypoint, Env, Expose, Healthcheck, Label, Maintainer, Onbuild,
              Shell, Stopsignal, User, Volume, Workdir)


@dataclass(frozen=True)
class MetaContext:
    """What every stage of one build shares for expansion and ARG defaults."""

    path: str  # the Dockerfile's name in messages ("Dockerfile")
    escape: str
    build_args: Mapping[str, str]  # --build-arg
    meta_args: Mapping[str, str]  # global ARGs (after --build-arg) and BUILDPLATFORM & co.


@dataclass
class StageConfig:
    """A stage's image config while it is dispatched (a lifecycle: one per stage build)."""

    config: ContainerConfig
    author: str = ""
    args: dict[str, str | None] = field(default_factory=dict)  # ARGs declared here, in order
    cmd_set: bool = False  # CMD seen in this stage (ENTRYPOINT then keeps it)

    def env(self) -> dict[str, str]:
        """The variables words see: ARGs with a value, overridden by the config's ENV."""
        out = {k: v for k, v in self.args.items() if v is not None}
        out.update(self.config.env_dict())
        return out

    def arg_values(self) -> dict[str, str]:
        return {k: v for k, v in self.args.items() if v is not None}

    @property
    def shell(self) -> tuple[str, ...]:
        return self.config.shell if self.config.shell else DEFAULT_SHELL


def go_quote_list(items) -> str:
    """Go's `%q` of a []string: ["a" "b c"]."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def go_list(items) -> str:
    """Go's `%v` of a []string: [a b c]."""
    return "[" + " ".join(items) + "]"


class _Expander:
    """Expands the words of one instruction, remembering which variables they used."""

    def __init__(self, stage: StageConfig, ctx: MetaContext, command: Command):
        self.env = stage.env()
        self.ctx = ctx
        self.command = command
        self.used: set[str] = set()

    def __call__(self, word: str) -> str:
        from pybuild.grammar.words import process

        try:
            done = process(word, self.env, self.ctx.escape)
        except PybuildError as e:
            raise DockerfileError(str(e), path=self.ctx.path, line=self.command.line) from None
        self.used |= done.matched
        return done.result


def expander(stage: StageConfig, ctx: MetaContext, command: Command) -> _Expander:
    return _Expander(stage, ctx, command)


def _error(ctx: MetaContext, command: Command, message: str) -> DockerfileError:
    return DockerfileError(message, path=ctx.path, line=command.line)


def _set_env(env: tuple[str, ...], key: str, value: str) -> tuple[str, ...]:
    out, found = [], False
    for item in env:
        if item.partition("=")[0] == key:
            if not found:
                out.append(f"{key}={value}")
                found = True
            continue
        out.append(item)
    if not found:
        out.append(f"{key}={value}")
    return tuple(out)


_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/([a-zA-Z]+))?$")


def _ports(ctx: MetaContext, command: Command, spec: str) -> list[str]:
    """Docker's nat.ParsePortSpecs for EXPOSE: 80, 80/udp, 8000-8002/tcp."""
    m = _PORT.match(spec)
    if not m:
        raise _error(ctx, command, f"invalid containerPort: {spec}")
    low, high, proto = int(m.group(1)), int(m.group(2) or m.group(1)), (m.group(3) or "tcp")
    proto = proto.lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise _error(ctx, command, f"invalid proto: {proto}")
    if not 0 < low <= high <= 65535:
        raise _error(ctx, command, f"invalid port range: {spec}")
    return [f"{p}/{proto}" for p in range(low, high + 1)]


def _duration(ns: int) -> str:
    """Go's time.Duration.String() for whole seconds and the common cases."""
    if ns == 0:
        return "0s"
    seconds, rest = divmod(ns, 1_000_000_000)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    frac = f"{rest / 1e9:.9f}"[1:].rstrip("0").rstrip(".") if rest else ""
    text = f"{secs}{frac}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def _valid_signal(text: str) -> bool:
    """Docker's signal.ParseSignal: a number, or a name with or without SIG."""
    import signal

    name = text.upper().removeprefix("SIG")
    if text.isdigit():
        return 0 < int(text) < 65
    known = {s.name.removeprefix("SIG") for s in signal.Signals}
    return name in known or re.fullmatch(r"RTM(IN|AX)([+-]\d+)?", name) is not None


def resolve_workdir(current: str, path: str) -> str:
    """WORKDIR relative to the previous one, cleaned; "/" when nothing was set."""
    joined = path if path.startswith("/") else posixpath.join(current or "/", path)
    return posixpath.normpath(joined).replace("//", "/")


def apply_meta(command: Command, stage: StageConfig, ctx: MetaContext) -> str:
    """Apply one config-only instruction to `stage`; returns its history `created_by`."""
    config = stage.config
    ex = expander(stage, ctx, command)
    replace = dataclasses.replace
    if isinstance(command, Env):
        pairs = [(ex(p.key), ex(p.value)) for p in command.pairs]  # all see the old env
        env = config.env
        for key, value in pairs:
            if not key:
                raise _error(ctx, command, "ENV names can not be blank")
            env = _set_env(env, key, value)
        stage.config = replace(config, env=env)
        return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    if isinstance(command, Label):
        pairs = [(ex(p.key), ex(p.value)) for p in command.pairs]
        labels = dict(config.labels)
        for key, value in pairs:
            if not key:
                raise _error(ctx, command, "LABEL names can not be blank")
            labels[key] = value
        stage.config = replace(config, labels=labels)
        return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
    if isinstance(command, Arg):
        return _apply_arg(command, stage, ctx)
    if isinstance(command, Workdir):
        path = resolve_workdir(config.working_dir, ex(command.path))
        stage.config = replace(config, working_dir=path)
        return f"WORKDIR {path}"
    if isinstance(command, User):
        user = ex(command.user)
        stage.config = replace(config, user=user)
        return f"USER {user}"
    if isinstance(command, Expose):
        ports: list[str] = []
        for word in command.ports:
            for spec in ex(word).split():
                ports.extend(_ports(ctx, command, spec))
        merged = tuple(sorted(set(config.exposed_ports) | set(ports)))
        stage.config = replace(config, exposed_ports=merged)
        return "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(set(ports))) + "]"
    if isinstance(command, Volume):
        paths = [ex(p) for p in command.paths]
        if any(not p.strip() for p in paths):
            raise _error(ctx, command, "VOLUME specified can not be an empty string")
        stage.config = replace(config, volumes=tuple(sorted(set(config.volumes) | set(paths))))
        return f"VOLUME {go_list(paths)}"
    if isinstance(command, Cmd | Entrypoint):
        argv = tuple(command.command) if command.json else (*stage.shell, *command.command)
        if isinstance(command, Cmd):
            stage.config = replace(config, cmd=argv)
            stage.cmd_set = True
            return f"CMD {go_quote_list(argv)}"
        # an ENTRYPOINT drops a CMD inherited from the base (not one set in this stage)
        stage.config = replace(config, entrypoint=argv,
                               cmd=config.cmd if stage.cmd_set else None)
        return f"ENTRYPOINT {go_quote_list(argv)}"
    if isinstance(command, Shell):
        stage.config = replace(config, shell=tuple(command.shell))
        return f"SHELL {go_list(command.shell)}"
    if isinstance(command, Healthcheck):
        check = ConfigHealthcheck(tuple(command.test), command.interval, command.timeout,
                                  command.start_period, command.start_interval, command.retries)
        stage.config = replace(config, healthcheck=check)
        times = " ".join(json.dumps(_duration(t)) for t in
                         (command.interval, command.timeout, command.start_period,
                          command.start_interval))
        return f"HEALTHCHECK &{{{go_quote_list(command.test)} {times} {command.retries}}}"
    if isinstance(command, Stopsignal):
        signal = ex(command.signal)
        if not _valid_signal(signal):
            raise _error(ctx, command, f"Invalid signal: {signal}")
        stage.config = replace(config, stop_signal=signal)
        return f"STOPSIGNAL {signal}"
    if isinstance(command, Onbuild):
        stage.config = replace(config, on_build=(*config.on_build, command.expression))
        return f"ONBUILD {command.expression}"
    if isinstance(command, Maintainer):
        stage.author = command.name
        return f"MAINTAINER {command.name}"
    raise TypeError(f"not a config-only instruction: {type(command).__name__}")


def _apply_arg(command: Arg, stage: StageConfig, ctx: MetaContext) -> str:
    """BuildKit's dispatchArg: --build-arg wins, then the default (expanded now), then the
    global ARG or automatic platform ARG of that name; else declared without a value."""
    parts = []
    for decl in command.args:
        value: str | None
        if decl.key in ctx.build_args:
            value = ctx.build_args[decl.key]
        elif decl.default is not None:
            value = expander(stage, ctx, command)(decl.default)
        else:
            value = ctx.meta_args.get(decl.key)
        stage.args.pop(decl.key, None)  # a re-declaration moves to the end
        stage.args[decl.key] = value
        parts.append(decl.key if value is None else f"{decl.key}={value}")
    return "ARG " + " ".join(parts)

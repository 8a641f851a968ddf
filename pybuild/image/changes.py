"""`--change` instructions for `import` and `commit` (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) applied to a container config: parsed with the
Dockerfile grammar (pybuild.grammar), words expanded against the image's ENV as Docker does."""

from __future__ import annotations

import posixpath
from dataclasses import replace

from pybuild.errors import DockerfileError, ImageError
from pybuild.image.config import ContainerConfig

ALLOWED = ("cmd", "entrypoint", "env", "expose", "label", "onbuild", "stopsignal", "user",
           "volume", "workdir")


def _expand(word: str, env: dict[str, str]) -> str:
    from pybuild.grammar.words import ExpansionError, expand

    try:
        return expand(word, env)
    except ExpansionError as e:
        raise ImageError(f"--change: {e}") from None


def _pairs(kw: str, args: tuple[str, ...], env: dict[str, str]) -> list[tuple[str, str]]:
    """ENV/LABEL args come as (key, value, "="|"") triples."""
    if not args:
        raise ImageError(f"--change {kw.upper()} needs at least one key=value")
    out = []
    for i in range(0, len(args) - 2, 3):
        key, value = _expand(args[i], env), _expand(args[i + 1], env)
        if not key:
            raise ImageError(f"--change {kw.upper()}: a key=value pair has an empty key")
        out.append((key, value))
        if kw == "env":  # later pairs see earlier ones, as in a Dockerfile
            env = {**env, key: value}
    return out


def _expose(words: list[str]) -> list[str]:
    out = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise ImageError(f"--change EXPOSE {word}: invalid protocol {proto!r}")
        lo, dash, hi = port.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ImageError(f"--change EXPOSE {word}: invalid port")
        first, last = int(lo), int(hi) if dash else int(lo)
        if not (0 < first <= last <= 65535):
            raise ImageError(f"--change EXPOSE {word}: port out of range")
        out += [f"{p}/{proto}" for p in range(first, last + 1)]
    if not out:
        raise ImageError("--change EXPOSE needs a port")
    return out


def apply_change(cfg: ContainerConfig, line: str, cmd_set: bool = False) -> ContainerConfig:
    """Apply one instruction such as `CMD ["sh"]` or `ENV A=1` to `cfg`. `cmd_set`: a CMD
    came earlier in the same batch (then ENTRYPOINT keeps it, as in a Dockerfile)."""
    from pybuild.grammar import parse

    text = line.strip()
    word = text.split(None, 1)[0].lower() if text else ""
    if word not in ALLOWED:
        raise ImageError(
            f"--change {text!r}: not a valid change instruction "
            f"(one of {', '.join(a.upper() for a in ALLOWED)})"
        )
    try:
        tree = parse(text, path="--change")
    except DockerfileError as e:
        raise ImageError(f"--change {text!r}: {e.reason}") from None
    if len(tree.instructions) != 1:
        raise ImageError(f"--change {text!r}: expected exactly one instruction")
    ins = tree.instructions[0]
    kw, args = ins.keyword, ins.args
    env = cfg.env_dict()
    if kw in ("cmd", "entrypoint"):
        if ins.json:
            value: tuple[str, ...] = tuple(args)
        elif args:  # shell form: kept as written, run by the image's shell
            value = (*(cfg.shell or ("/bin/sh", "-c")), args[0])
        else:
            value = ()
        if kw == "cmd":
            return replace(cfg, cmd=value)
        # Docker: setting ENTRYPOINT resets a CMD inherited from the base
        return replace(cfg, entrypoint=value, cmd=cfg.cmd if cmd_set else None)
    if kw == "onbuild":
        rest = text.split(None, 1)[1].strip() if len(text.split(None, 1)) > 1 else ""
        inner = rest.split(None, 1)[0].lower() if rest else ""
        if not inner:
            raise ImageError("--change ONBUILD needs an instruction")
        if inner in ("onbuild", "from", "maintainer"):
            raise ImageError(f"--change ONBUILD {inner.upper()} is not allowed")
        return replace(cfg, on_build=(*cfg.on_build, rest))
    if not args:
        raise ImageError(f"--change {kw.upper()} needs an argument")
    if kw == "env":
        for k, v in _pairs(kw, args, env):
            env[k] = v
        return replace(cfg, env=tuple(f"{k}={v}" for k, v in env.items()))
    if kw == "label":
        return replace(cfg, labels={**cfg.labels, **dict(_pairs(kw, args, env))})
    words = [_expand(a, env) for a in args]
    if kw == "expose":
        return replace(cfg, exposed_ports=tuple(sorted(set(cfg.exposed_ports) | set(_expose(words)))))
    if kw == "volume":
        vols = [w for w in words if w]
        if not vols:
            raise ImageError("--change VOLUME needs a path")
        return replace(cfg, volumes=tuple(sorted(set(cfg.volumes) | set(vols))))
    if kw == "user":
        return replace(cfg, user=words[0])
    if kw == "workdir":
        return replace(cfg, working_dir=posixpath.normpath(posixpath.join(cfg.working_dir or "/", words[0])))
    return replace(cfg, stop_signal=words[0])  # stopsignal


def apply_changes(cfg: ContainerConfig, lines: list[str] | tuple[str, ...]) -> ContainerConfig:
    cmd_set = False
    for line in lines:
        cfg = apply_change(cfg, line, cmd_set)
        cmd_set = cmd_set or line.strip().lower().startswith("cmd")
    return cfg

"""`--change` instructions for `import` and `commit` (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) applied to a container config.

A small local parser for single-line instructions; the full Dockerfile grammar lives in
pybuild.grammar."""

from __future__ import annotations

import json
import posixpath
import shlex
from dataclasses import replace

from pybuild.errors import ImageError
from pybuild.image.config import ContainerConfig

ALLOWED = ("cmd", "entrypoint", "env", "expose", "label", "onbuild", "stopsignal", "user",
           "volume", "workdir")


def _json_or_none(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return None  # Docker falls back to the shell form
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _exec_or_shell(rest: str, shell: tuple[str, ...] | None) -> tuple[str, ...]:
    args = _json_or_none(rest)
    if args is not None:
        return tuple(args)
    return (*(shell or ("/bin/sh", "-c")), rest)


def _pairs(keyword: str, rest: str) -> list[tuple[str, str]]:
    """ENV/LABEL: `k=v k2="v 2"`, or the legacy one-pair form `k v w`."""
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as e:
        raise ImageError(f"--change {keyword.upper()}: {e}") from None
    if not words:
        raise ImageError(f"--change {keyword.upper()} needs at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        if not value.strip() and keyword == "env":
            raise ImageError(f"--change ENV {key}: needs a value (ENV key=value)")
        return [(key, value.strip())]
    pairs = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise ImageError(f"--change {keyword.upper()}: {w!r} is not key=value")
        pairs.append((key, value))
    return pairs


def _expose(rest: str) -> list[str]:
    out = []
    for word in rest.split():
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
    text = line.strip()
    keyword, _, rest = text.partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = f"{more} {rest}".strip()
    kw = keyword.lower()
    rest = rest.strip()
    if kw not in ALLOWED:
        raise ImageError(
            f"--change {keyword or line!r}: not a valid change instruction "
            f"(one of {', '.join(a.upper() for a in ALLOWED)})"
        )
    if not rest and kw not in ("cmd", "entrypoint"):
        raise ImageError(f"--change {keyword.upper()} needs an argument")
    if kw == "cmd":
        return replace(cfg, cmd=_exec_or_shell(rest, cfg.shell) if rest else ())
    if kw == "entrypoint":
        # Docker: setting ENTRYPOINT resets a CMD inherited from the base
        entry = _exec_or_shell(rest, cfg.shell) if rest else ()
        return replace(cfg, entrypoint=entry, cmd=cfg.cmd if cmd_set else None)
    if kw == "env":
        env = cfg.env_dict()
        for k, v in _pairs(kw, rest):
            env[k] = v
        return replace(cfg, env=tuple(f"{k}={v}" for k, v in env.items()))
    if kw == "label":
        labels = dict(cfg.labels)
        labels.update(_pairs(kw, rest))
        return replace(cfg, labels=labels)
    if kw == "expose":
        return replace(cfg, exposed_ports=tuple(sorted(set(cfg.exposed_ports) | set(_expose(rest)))))
    if kw == "volume":
        vols = _json_or_none(rest) or rest.split()
        return replace(cfg, volumes=tuple(sorted(set(cfg.volumes) | set(vols))))
    if kw == "user":
        return replace(cfg, user=rest)
    if kw == "workdir":
        return replace(cfg, working_dir=posixpath.normpath(posixpath.join(cfg.working_dir or "/", rest)))
    if kw == "stopsignal":
        return replace(cfg, stop_signal=rest)
    # onbuild: kept as written, run when a child image builds FROM this one
    inner = rest.split(None, 1)[0].lower()
    if inner in ("onbuild", "from", "maintainer"):
        raise ImageError(f"--change ONBUILD {inner.upper()} is not allowed")
    return replace(cfg, on_build=(*cfg.on_build, rest))


def apply_changes(cfg: ContainerConfig, lines: list[str] | tuple[str, ...]) -> ContainerConfig:
    cmd_set = False
    for line in lines:
        cfg = apply_change(cfg, line, cmd_set)
        cmd_set = cmd_set or line.strip().lower().startswith("cmd")
    return cfg

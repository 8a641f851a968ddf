"""One description of a container: an OCI runtime-spec config built from an image config
plus run options, with Docker's defaults (command, env, mounts, capabilities, masked paths).
The built-in sandbox and external OCI runtimes (runc) both execute exactly this dict."""

from __future__ import annotations

import re
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pybuild.errors import ContainerError
from pybuild.runtime.identity import Identity

if TYPE_CHECKING:  # cgroups is imported only when limits are asked for
    from pybuild.runtime.cgroups import Limits

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

# Docker's masked and read-only paths (moby oci/defaults.go).
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Built-in modes; any other value names a network (`pyrun network create`).
NETWORK_MODES = ("none", "host", "bridge")

_NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")

# Docker's container NOFILE default; never above what this process may have (MACHINE.md).
_NOFILE_DEFAULT = 1048576


@dataclass(frozen=True)
class BindMount:
    source: str
    destination: str
    readonly: bool = False


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image config (its "config" object) a container starts from."""

    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()    # ExposedPorts keys ("80/tcp"), for -P

    @classmethod
    def from_oci(cls, config: Mapping | None) -> ImageConfig:
        c = (config or {}).get("config", config) or {}
        ep, cmd = c.get("Entrypoint"), c.get("Cmd")
        return cls(
            env=tuple(c.get("Env") or ()),
            entrypoint=tuple(ep) if ep is not None else None,
            cmd=tuple(cmd) if cmd is not None else None,
            working_dir=c.get("WorkingDir") or "",
            user=c.get("User") or "",
            exposed_ports=tuple(c.get("ExposedPorts") or ()),
        )


@dataclass(frozen=True)
class RunOptions:
    args: tuple[str, ...] = ()             # replaces the image's CMD when not empty
    entrypoint: str | None = None          # --entrypoint; "" clears; either way CMD is reset
    env: tuple[str, ...] = ()              # K=V from -e/--env-file, already resolved
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str = "none"
    tty: bool = False
    interactive: bool = False
    binds: tuple[BindMount, ...] = ()
    privileged: bool = False
    readonly_rootfs: bool = False
    limits: Limits | None = None           # -m, --memory-swap, --cpus, --pids-limit
    publish: tuple[str, ...] = ()          # raw -p values
    publish_all: bool = False              # -P
    expose: tuple[str, ...] = ()           # --expose keys ("80/tcp"), added to the image's
    aliases: tuple[str, ...] = ()          # --network-alias (user networks only)
    mounts: tuple[dict, ...] = ()          # OCI entries for volumes, tmpfs (runtime/attach.py)


def resolve_command(image: ImageConfig, opts: RunOptions) -> list[str]:
    """ENTRYPOINT + CMD as Docker combines them: args replace CMD; --entrypoint resets CMD."""
    if opts.entrypoint is not None:
        entrypoint = [opts.entrypoint] if opts.entrypoint else []
        cmd = list(opts.args)
    else:
        entrypoint = list(image.entrypoint or ())
        cmd = list(opts.args) if opts.args else list(image.cmd or ())
    argv = entrypoint + cmd
    if not argv:
        raise ContainerError("no command specified")
    return argv


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: same key replaces in place, new keys append."""
    out = list(base)
    index = {e.partition("=")[0]: i for i, e in enumerate(out)}
    for item in overrides:
        key = item.partition("=")[0]
        if key in index:
            out[index[key]] = item
        else:
            index[key] = len(out)
            out.append(item)
    return out


def container_env(image: ImageConfig, opts: RunOptions, hostname: str, home: str) -> list[str]:
    env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if opts.tty:
        env.append("TERM=xterm")
    env = merge_env(env, merge_env(image.env, opts.env))
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")  # runc does this inside; doing it here keeps runtimes equal
    return env


def _nofile() -> dict:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = _NOFILE_DEFAULT if hard == resource.RLIM_INFINITY else min(hard, _NOFILE_DEFAULT)
    return {"type": "RLIMIT_NOFILE", "hard": limit, "soft": limit}


def default_mounts(privileged: bool) -> list[dict]:
    sys_opts = ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
    ]


def resources(limits: Limits | None) -> dict:
    """linux.resources of the OCI config: devices denied by default (runc adds its standard
    allow list), and the cgroup limits asked for."""
    res: dict = {"devices": [{"allow": False, "access": "rwm"}]}
    if limits is None:
        return res
    if limits.memory is not None:
        res["memory"] = {"limit": limits.memory}
        swap = limits.swap_total()
        if swap is not None:
            res["memory"]["swap"] = swap
    if limits.cpus is not None:
        from pybuild.runtime.cgroups import cpu_quota

        quota, period = cpu_quota(limits.cpus)
        res["cpu"] = {"quota": quota, "period": period}
    if limits.pids is not None:
        res["pids"] = {"limit": limits.pids}
    return res


def limits_of(spec: dict) -> Limits | None:
    """The cgroup limits an OCI config asks for (what the built-in executor applies)."""
    res = spec.get("linux", {}).get("resources", {})
    memory, cpu, pids = res.get("memory", {}), res.get("cpu", {}), res.get("pids", {})
    if not (memory or cpu or pids):
        return None
    from pybuild.runtime.cgroups import Limits

    cpus = None
    if cpu.get("quota") and cpu.get("period"):
        cpus = cpu["quota"] / cpu["period"]
    return Limits(memory=memory.get("limit"), memory_swap=memory.get("swap"), cpus=cpus,
                  pids=pids.get("limit"))


def build_spec(
    image: ImageConfig,
    opts: RunOptions,
    identity: Identity,
    *,
    rootfs: str,
    hostname: str,
    etc_files: Mapping[str, str] | None = None,
    all_capabilities: Sequence[str] = (),
) -> dict:
    """The OCI runtime config. `etc_files` maps /etc/hosts etc. to host files to bind in;
    `all_capabilities` is what --privileged grants (the caller's bounding set)."""
    if opts.network not in NETWORK_MODES and not _NETWORK_NAME.fullmatch(opts.network):
        raise ContainerError(
            f"invalid network mode {opts.network!r} (use one of: {', '.join(NETWORK_MODES)}, "
            "or a network name)")
    argv = resolve_command(image, opts)
    cwd = opts.workdir or image.working_dir or "/"
    if not cwd.startswith("/"):
        raise ContainerError(f"the working directory '{cwd}' is invalid, it needs to be an absolute path")
    caps = list(all_capabilities) if opts.privileged else list(DEFAULT_CAPABILITIES)
    # As Docker: a non-root user starts with empty effective/permitted sets.
    eff = caps if identity.uid == 0 else []
    mounts = default_mounts(opts.privileged)
    for dest in sorted(etc_files or {}):
        mounts.append({"destination": dest, "type": "bind", "source": etc_files[dest],
                       "options": ["rbind", "rprivate"]})
    for b in opts.binds:
        if not b.destination.startswith("/"):
            raise ContainerError(f"invalid mount config: mount path must be absolute: {b.destination}")
        options = ["rbind", "rprivate"] + (["ro"] if b.readonly else [])
        mounts.append({"destination": b.destination, "type": "bind", "source": b.source,
                       "options": options})
    mounts.extend(dict(m) for m in opts.mounts)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if opts.network != "host":  # none: loopback only; bridge/networks: a veth is added later
        namespaces.append({"type": "network"})
    linux: dict = {"namespaces": namespaces, "resources": resources(opts.limits)}
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": opts.tty,
            # As moby's getUser: the primary gid leads the supplementary groups.
            "user": {"uid": identity.uid, "gid": identity.gid,
                     "additionalGids": [identity.gid, *identity.additional_gids]},
            "args": argv,
            "env": container_env(image, opts, hostname, identity.home),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": eff, "permitted": eff,
                             "inheritable": [], "ambient": []},
            "rlimits": [_nofile()],
            "noNewPrivileges": not opts.privileged,
        },
        "root": {"path": rootfs, "readonly": opts.readonly_rootfs},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }

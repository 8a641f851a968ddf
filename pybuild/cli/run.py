"""`pyrun run`: start a container from an image in the foreground, with Docker's flags."""

from __future__ import annotations

import os
import re
import sys

import click

from pybuild.cli import healthflags
from pybuild.cli.common import store_root
from pybuild.errors import ContainerError, ImageError

_ENV_NAME = re.compile(r"\S+")


def parse_env_items(items: tuple[str, ...] | list[str], source: str = "-e") -> list[str]:
    """-e / --env-file entries: K=V kept as is; a bare K takes pyrun's own value, if any."""
    out = []
    for item in items:
        key, eq, _value = item.partition("=")
        if not key:
            raise ContainerError(f"invalid environment variable: {item!r} ({source})")
        if not _ENV_NAME.fullmatch(key):
            raise ContainerError(f"variable '{key}' contains whitespaces ({source})")
        if eq:
            out.append(item)
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def read_env_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ContainerError(f"open {path}: {e.strerror.lower()}") from None
    items = []
    for n, line in enumerate(lines, 1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        items.extend(parse_env_items([line], f"{path}:{n}"))
    return items


def parse_mount_flags(volumes, mounts, tmpfs):
    """-v, --mount and --tmpfs values -> MountRequests (Docker's syntax and errors)."""
    from pybuild.runtime import mountspec

    return (*(mountspec.parse_volume(v) for v in volumes),
            *(mountspec.parse_mount(m) for m in mounts),
            *(mountspec.parse_tmpfs(t) for t in tmpfs))


def parse_limits(memory, memory_swap, cpus, pids_limit):
    """Docker's resource flags -> cgroups.Limits (None when none is given)."""
    if memory is None and memory_swap is None and cpus is None and pids_limit is None:
        return None
    from pybuild.runtime.cgroups import Limits, cpu_quota, parse_bytes

    limits = Limits(memory=parse_bytes(memory) if memory is not None else None,
                    memory_swap=parse_bytes(memory_swap) if memory_swap is not None else None,
                    cpus=cpus, pids=pids_limit)
    limits.swap_total()  # validates the memory/swap pair
    if limits.memory is not None and limits.memory < 6 * 1024 * 1024:
        raise ContainerError("Minimum memory limit allowed is 6MB")
    if cpus is not None:
        cpu_quota(cpus)
    return limits


def check_network(root: str, mode: str, publish, publish_all: bool) -> str:
    """Validate --network (and -p) before anything is created; returns the mode."""
    if mode is None:
        # pyrun's default is no network (a container starts without pyroute2 and a veth);
        # publishing ports asks for one, and gets Docker's default, the bridge
        mode = "bridge" if publish or publish_all else "none"
    if not mode:
        raise ContainerError("invalid network mode: ''")
    if publish:
        from pybuild.runtime import ports

        ports.parse_port_specs(publish)  # a bad -p fails even where it would be discarded
    if mode not in ("none", "host", "bridge"):  # netstore.BUILTIN; only others need the store
        from pybuild.runtime import netsetup
        from pybuild.runtime.netstore import NetworkStore

        netsetup.check_mode(NetworkStore(root), mode)
    if mode == "host" and (publish or publish_all):
        print("WARNING: Published ports are discarded when using host network mode",
              file=sys.stderr)
    return mode


def parse_expose(values) -> tuple[str, ...]:
    """--expose 80, 53/udp, 8000-8002/tcp -> ExposedPorts keys ("80/tcp", ...)."""
    if not values:
        return ()
    from pybuild.runtime import ports

    out = []
    for raw in values:
        proto, text = ports.split_proto_port(raw)
        proto = (proto or "tcp").lower()
        try:
            first, last = ports.parse_port_range(text)
        except (ValueError, ContainerError):
            raise ContainerError(f"invalid range format for --expose: {raw}") from None
        for port in range(first, last + 1):
            key = f"{port}/{proto}"
            ports.parse_exposed(key)
            out.append(key)
    return tuple(out)


def _open_image(root: str, ref: str, rootfs: bool):
    """(image config dict, lower dirs topmost first, ref, image id) for `ref`."""
    if rootfs:
        path = os.path.realpath(ref)
        if not os.path.isdir(path):
            raise ContainerError(f"--rootfs: {ref}: not a directory")
        return {}, [path], path, ""
    import json

    from pybuild.image.images import Images

    images = Images(root)
    try:
        image_id = images.resolve(ref)
        config = json.loads(images.get(image_id).config_bytes)
        if not (config.get("rootfs") or {}).get("diff_ids"):
            raise ImageError("the image has no layers: there is nothing to run", ref=ref)
        return config, images.lower_dirs(image_id), ref, image_id
    finally:
        images.close()


def _options(f):
    """The flags `run` and `create` share (Docker's container config and host config)."""
    for option in reversed((
        click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("-e", "--env", "env", multiple=True, help="Set environment variables (K=V or K)."),
        click.option("--env-file", multiple=True, help="Read environment variables from a file."),
        click.option("-w", "--workdir", default=None, help="Working directory inside the container."),
        click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("-h", "--hostname", default=None, help="Container host name."),
        click.option("--network", "--net", "network", default=None,
                     help="none, host, bridge, or a network's name (pyrun network create). "
                          "Default: bridge when ports are published (-p, -P), else none."),
        click.option("--network-alias", "aliases", multiple=True,
                     help="Add a network-scoped alias for the container (user networks)."),
        click.option("-p", "--publish", multiple=True,
                     help="Publish a container's port: [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]."),
        click.option("-P", "--publish-all", "publish_all", is_flag=True,
                     help="Publish every exposed port to a random host port."),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports (for -P)."),
        click.option("-v", "--volume", "volumes", multiple=True,
                     help="Bind mount a volume: [HOST-DIR|NAME:]CTR-DIR[:ro|rw|nocopy|...]."),
        click.option("--mount", "mounts", multiple=True,
                     help="Attach a filesystem mount: type=bind|volume|tmpfs,source=,target=,..."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory: PATH[:OPTIONS]."),
        click.option("--volumes-from", "volumes_from", multiple=True,
                     help="Mount volumes from the specified container(s): CTR[:ro|rw]."),
        click.option("--entrypoint", default=None, help="Overwrite the image's ENTRYPOINT."),
        click.option("--privileged", is_flag=True, help="All capabilities, no masked paths."),
        click.option("--read-only", "read_only", is_flag=True, help="Mount the root filesystem read-only."),
        click.option("-m", "--memory", default=None, help="Memory limit (e.g. 64m)."),
        click.option("--memory-swap", default=None, help="Memory plus swap; -1 for unlimited swap."),
        click.option("--cpus", default=None, type=float, help="Number of CPUs."),
        click.option("--pids-limit", default=None, type=int, help="Process limit (-1: unlimited)."),
        click.option("--runtime", default="builtin", show_default=True,
                     help="builtin, or an OCI runtime binary (runc; crun fails on hybrid cgroups)."),
        click.option("--name", default=None, help="Assign a name to the container."),
        click.option("--rootfs", "is_rootfs", is_flag=True,
                     help="IMAGE is a directory holding a root filesystem (as podman --rootfs)."),
        click.option("--restart", default="no", show_default=True,
                     help="Restart policy: no, on-failure[:max-retries], always, unless-stopped."),
        click.option("--stop-signal", default=None, help="Signal to stop the container."),
        click.option("--stop-timeout", default=None, type=int,
                     help="Seconds to wait for the stop signal before SIGKILL (default 10)."),
        click.option("-l", "--label", "labels", multiple=True, help="Set metadata (KEY=VALUE)."),
        click.option("--log-driver", "log_driver", default=None,
                     help="Logging driver for the container: json-file (default) or none."),
        click.option("--log-opt", "log_opts", multiple=True,
                     help="Log driver options: max-size=10m, max-file=3, compress=true."),
        *healthflags.OPTIONS,
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    )):
        f = option(f)
    return f


def _anonymous_targets(requests) -> dict[str, dict]:
    """Docker's CLI puts `-v /path` (no source) in Config.Volumes, which commit keeps; binds,
    named volumes and --mount go to HostConfig only."""
    return {r.target: {} for r in requests
            if r.from_flag == "-v" and r.type == "volume" and not r.source}


def _labels(image_config: dict, items) -> dict[str, str]:
    labels = dict(((image_config.get("config") or {}).get("Labels")) or {})
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise ContainerError(f"invalid label: {item!r}")
        labels[key] = value
    return labels


def create_container(ctx: click.Context, o: dict):
    """Validate the flags `o` of run/create and create the container (not started)."""
    from pybuild.runtime import (
        BUILTIN,
        Container,
        ImageConfig,
        RunOptions,
        attach,
        mountspec,
        reap_stale,
    )
    from pybuild.runtime.container import new_id
    from pybuild.runtime.lifecycle import parse_signal
    from pybuild.runtime.linux import bounding_set
    from pybuild.runtime.restart import RestartPolicy

    if o["hostname"] and o["network"] == "host":
        raise ContainerError("conflicting options: hostname and the network mode")
    if o["workdir"] is not None and not o["workdir"].startswith("/"):
        raise ContainerError(
            f"the working directory '{o['workdir']}' is invalid, it needs to be an absolute path")
    policy = RestartPolicy.parse(o["restart"])
    if policy.name != "no" and o["remove"]:
        raise ContainerError("Conflicting options: --restart and --rm")
    if o["stop_signal"] is not None:
        parse_signal(o["stop_signal"])
    root = store_root((ctx.obj or {}).get("root"))
    network = check_network(root, o["network"], o["publish"], o["publish_all"])
    if o["aliases"] and network in ("none", "host", "bridge"):
        raise ContainerError("network-scoped alias is supported only for containers in user "
                             "defined networks")
    exposed = parse_expose(o["expose"])
    env_items = []
    for f in o["env_file"]:
        env_items.extend(read_env_file(f))
    env_items.extend(parse_env_items(o["env"]))
    requests = parse_mount_flags(o["volumes"], o["mounts"], o["tmpfs"])
    from_specs = [mountspec.parse_volumes_from(v) for v in o["volumes_from"]]
    limits = parse_limits(o["memory"], o["memory_swap"], o["cpus"], o["pids_limit"])
    user_health = healthflags.healthcheck_of(o)
    from pybuild.runtime.logopts import LogConfig

    log_config = LogConfig.parse(o["log_driver"], o["log_opts"])
    containers = os.path.join(root, "containers")
    reap_stale(containers)
    container_id = new_id()
    config, lower_dirs, ref, image_id = _open_image(root, o["image"], o["is_rootfs"])
    labels = _labels(config, o["labels"])
    from pybuild.runtime import health

    healthcheck = health.merge(user_health, (config.get("config") or {}).get("Healthcheck"))
    health.validate(healthcheck)
    resolved = attach.resolve(
        root, requests, volumes_from=from_specs, lower_dirs=lower_dirs,
        image_volumes=tuple((config.get("config") or {}).get("Volumes") or {}))
    options = RunOptions(
        args=tuple(o["command"]), entrypoint=o["entrypoint"], env=tuple(env_items),
        workdir=o["workdir"], user=o["user"], hostname=o["hostname"], network=network,
        tty=o["tty"], interactive=o["interactive"], mounts=resolved.entries,
        privileged=o["privileged"],
        readonly_rootfs=o["read_only"], limits=limits, publish=tuple(o["publish"]),
        publish_all=o["publish_all"], expose=exposed, aliases=tuple(o["aliases"]))
    runtime = BUILTIN if o["runtime"] in ("", BUILTIN) else o["runtime"]
    image_stop = (config.get("config") or {}).get("StopSignal")
    extra = {
        "restart_policy": policy.to_json(), "restart_count": 0, "labels": labels,
        "stop_signal": o["stop_signal"] or image_stop or "SIGTERM",
        "stop_timeout": o["stop_timeout"], "healthcheck": healthcheck,
        "log_config": log_config.to_json(),
        "host_config": {
            "Binds": list(o["volumes"]), "Tmpfs": list(o["tmpfs"]),
            "VolumesFrom": list(o["volumes_from"]), "NetworkMode": network,
            "PortBindings": list(o["publish"]), "PublishAllPorts": o["publish_all"],
            "RestartPolicy": policy.to_json(), "AutoRemove": o["remove"],
            "Privileged": o["privileged"], "ReadonlyRootfs": o["read_only"],
            "Memory": limits.memory if limits and limits.memory else 0,
            "MemorySwap": limits.memory_swap if limits and limits.memory_swap else 0,
            "NanoCpus": int(o["cpus"] * 1e9) if o["cpus"] else 0,
            "PidsLimit": o["pids_limit"], "Runtime": "runc" if runtime == BUILTIN else runtime,
            "LogConfig": log_config.to_json()},
        "config_opts": {"Tty": o["tty"], "OpenStdin": o["interactive"],
                        "Entrypoint": o["entrypoint"], "Cmd": list(o["command"]),
                        "Env": list(env_items),
                        "User": o["user"] or "", "WorkingDir": o["workdir"] or "",
                        "Hostname": o["hostname"] or "",
                        "Volumes": _anonymous_targets(requests) or None,
                        "ExposedPorts": list(exposed)},
        "image_config": config.get("config") or {},
    }
    try:
        return Container.create(
            containers, image=ImageConfig.from_oci(config), lower_dirs=lower_dirs,
            options=options, image_ref=ref, image_id=image_id, name=o["name"],
            remove=o["remove"], container_id=container_id, runtime=runtime,
            all_capabilities=bounding_set() if o["privileged"] else (),
            extra_state={**resolved.state(), **extra})
    except BaseException:
        from pybuild.runtime.volumes import Volumes

        Volumes(root).release(list(resolved.anonymous))
        raise


@click.command(
    "run",
    context_settings={"help_option_names": ["--help"], "allow_interspersed_args": False},
)
@click.option("-d", "--detach", is_flag=True,
              help="Run the container in the background and print its ID.")
@_options
@click.pass_context
def run(ctx: click.Context, detach: bool, **o) -> int:
    """Run a command in a new container."""
    if o["tty"] and o["interactive"] and not detach and not os.isatty(0):
        print("the input device is not a TTY", file=sys.stderr)
        ctx.exit(1)
    container = create_container(ctx, o)
    if detach:
        from pybuild.runtime import lifecycle

        lifecycle.start(container)
        click.echo(container.id)
        return 0
    if o["restart"] not in ("", "no") or o["log_opts"] or o["log_driver"] == "json-file":
        # the restart policy needs a keeper, and a log asked for needs its writer: run
        # under a supervisor and stay attached (a plain foreground run keeps no log)
        from pybuild.cli.attach import start_attached

        return start_attached(container, stdin=o["interactive"], tty=o["tty"])
    return run_foreground(container)


def run_foreground(container) -> int:
    """Run in this process; a health check runs beside it, as under a supervisor."""
    from pybuild.runtime import health

    monitor = health.monitor_for(container, container.state())
    if monitor is None:
        return container.run()
    return container.run(on_started=lambda _pid: monitor.start(), on_stopped=monitor.stop)

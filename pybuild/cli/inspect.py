"""`pyrun inspect` / `pyrun container inspect`: a container as Docker's JSON (Id, State,
Config, HostConfig, Mounts, NetworkSettings, ...), through Go templates with --format."""

from __future__ import annotations

import json
import os
import sys

import click

from pybuild.cli.common import store_root
from pybuild.errors import ContainerError, NoSuchContainer, PybuildError

_ZERO_TIME = "0001-01-01T00:00:00Z"


def _time(ts: float | None) -> str:
    from pybuild.runtime.logfile import rfc3339nano

    return rfc3339nano(int(ts * 1e9)) if ts else _ZERO_TIME


def _spec(c) -> dict:
    try:
        with open(os.path.join(c.dir, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _mounts(spec: dict, c) -> list[dict]:
    out = []
    for m in spec.get("mounts", ()):
        if m.get("type") != "bind" or m.get("source", "").startswith(c.dir):
            continue  # /etc/hosts and friends are Docker's own, not user mounts
        rw = "ro" not in m.get("options", ())
        out.append({"Type": "bind", "Source": m["source"], "Destination": m["destination"],
                    "Mode": "" if rw else "ro", "RW": rw, "Propagation": "rprivate"})
    return out


def _network_settings(state: dict, active: bool, c) -> dict:
    from pybuild.cli.containers import port_lines

    ports: dict = {}
    for key in (state.get("net_request") or {}).get("exposed", ()):
        ports[key] = None
    networks: dict = {}
    ip = gateway = mac = ""
    if active:
        for line in port_lines(state):
            cport, host = line.split(" -> ", 1)
            host_ip, _, host_port = host.rpartition(":")
            ports.setdefault(cport, None)
            ports[cport] = (ports[cport] or []) + [{"HostIp": host_ip, "HostPort": host_port}]
    net = state.get("network") if active else None
    mode = (state.get("net_request") or {}).get("mode", "none")
    if net and net.get("endpoint"):
        ep = net["endpoint"]
        prefix, gateway = _subnet_of(c, net.get("network_id", ""))
        ip, mac = ep.get("ipv4", ""), ep.get("mac", "")
        networks[mode] = {"Aliases": list(ep.get("aliases") or ()) or None,
                          "NetworkID": net.get("network_id", ""),
                          "EndpointID": ep.get("endpoint_id", ""), "Gateway": gateway,
                          "IPAddress": ip, "IPPrefixLen": prefix, "MacAddress": mac}
    else:
        networks[mode] = {"Aliases": None, "NetworkID": "", "EndpointID": "", "Gateway": "",
                          "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""}
    networks.update(_connected(c, active, mode))
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "Ports": ports,
            "SandboxKey": f"/proc/{state['pid']}/ns/net" if active and state.get("pid") else "",
            "Gateway": gateway if mode == "bridge" else "",
            "IPAddress": ip if mode == "bridge" else "",
            "MacAddress": mac if mode == "bridge" else "", "Networks": networks}


def _connected(c, active: bool, mode: str) -> dict:
    """The networks `network connect` added (netconnect's records): addressed while the
    container runs, named with their ids otherwise, as Docker keeps them in its config."""
    from pybuild.runtime.netconnect import recorded

    records = recorded(c.dir)
    if not records:
        return {}
    try:
        nets = {n.id: n for n in c.network_store().list()}
    except (PybuildError, OSError, ValueError):
        nets = {}
    out = {}
    for rec in records:
        net = nets.get(rec["network"])
        name = net.name if net else rec.get("name") or rec["network"]
        if name == mode:
            continue
        ep = net.endpoints.get(c.id) if net is not None and active else None
        out[name] = {"Aliases": list(rec.get("aliases") or ()) or None,
                     "NetworkID": rec["network"],
                     "EndpointID": ep.endpoint_id if ep else "",
                     "Gateway": net.gateway if ep else "",
                     "IPAddress": ep.ipv4 if ep else "",
                     "IPPrefixLen": net.prefixlen if ep else 0,
                     "MacAddress": ep.mac if ep else ""}
    return out


def _subnet_of(c, network_id: str) -> tuple[int, str]:
    try:
        net = c.network_store().get(network_id)
        return int(net.subnet.split("/")[1]), net.gateway
    except (PybuildError, OSError, ValueError, IndexError):
        return 0, ""


def _health(c, active: bool) -> dict:
    from pybuild.runtime.health import current_health

    health = current_health(c.dir, active)
    return {"Health": health} if health is not None else {}


def container_json(c, state: dict, names: dict[str, str]) -> dict:
    from pybuild.cli.ps import status_of
    from pybuild.runtime.lifecycle import is_active, name_of
    from pybuild.runtime.logfile import log_path
    from pybuild.runtime.logopts import LogConfig

    spec = _spec(c)
    process = spec.get("process", {})
    args = process.get("args") or [""]
    status = status_of(state)
    active = is_active(state)
    opts = state.get("config_opts") or {}
    image_cfg = state.get("image_config") or {}
    entrypoint = opts.get("Entrypoint")
    entrypoint = ([entrypoint] if entrypoint else None) if entrypoint is not None else \
        image_cfg.get("Entrypoint")
    cmd = opts.get("Cmd") or (image_cfg.get("Cmd") if opts.get("Entrypoint") is None else None)
    rootfs = c.rootfs(state.get("lower_dirs") or [])
    host_config = dict(state.get("host_config") or {})
    host_config.setdefault("NetworkMode", (state.get("net_request") or {}).get("mode", "none"))
    host_config.setdefault("AutoRemove", bool(state.get("remove")))
    host_config.setdefault("LogConfig", LogConfig.from_json(state.get("log_config")).to_json())
    host_config.setdefault("RestartPolicy", state.get("restart_policy")
                           or {"Name": "", "MaximumRetryCount": 0})
    return {
        "Id": c.id,
        "Created": _time(state.get("created")),
        "Path": args[0],
        "Args": args[1:],
        "State": {
            "Status": status, "Running": status in ("running", "paused"),
            "Paused": status == "paused", "Restarting": status == "restarting",
            "OOMKilled": bool(state.get("oom_killed")), "Dead": status == "dead",
            "Pid": (state.get("pid") or 0) if active else 0,
            "ExitCode": state.get("exit_code") or 0, "Error": state.get("error") or "",
            "StartedAt": _time(state.get("started")),
            "FinishedAt": _time(state.get("finished")),
            **_health(c, active),
        },
        "Image": state.get("image_id") or "",
        "ResolvConfPath": os.path.join(c.dir, "resolv.conf"),
        "HostnamePath": os.path.join(c.dir, "hostname"),
        "HostsPath": os.path.join(c.dir, "hosts"),
        "LogPath": log_path(c.dir, c.id) if LogConfig.from_json(
            state.get("log_config")).readable else "",
        "Name": "/" + name_of(c, state, names),
        "RestartCount": state.get("restart_count") or 0,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(rootfs.lower_dirs), "UpperDir": rootfs.upper_dir,
            "WorkDir": rootfs.work_dir, "MergedDir": rootfs.target}},
        "Mounts": state["mounts"] if "mounts" in state else _mounts(spec, c),
        "Config": {
            "Hostname": spec.get("hostname", ""), "Domainname": "",
            "User": opts.get("User", image_cfg.get("User", "")) or image_cfg.get("User", ""),
            "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
            "ExposedPorts": {k: {} for k in (state.get("net_request") or {}).get("exposed", ())}
            or None,
            "Tty": bool(process.get("terminal")), "OpenStdin": not state.get("stdin_null", True),
            "StdinOnce": False, "Env": process.get("env", []), "Cmd": cmd,
            "Image": state.get("image", ""),
            "Volumes": {**(image_cfg.get("Volumes") or {}), **(opts.get("Volumes") or {})}
            or None,
            "WorkingDir": opts.get("WorkingDir") or image_cfg.get("WorkingDir", ""),
            "Entrypoint": entrypoint, "OnBuild": None, "Labels": state.get("labels") or {},
            **({"Healthcheck": state["healthcheck"]} if state.get("healthcheck") else {}),
            "StopSignal": state.get("stop_signal") or "SIGTERM",
            **({"StopTimeout": state["stop_timeout"]}
               if state.get("stop_timeout") is not None else {}),
        },
        "NetworkSettings": _network_settings(state, active, c),
    }


def render(template: str, obj: dict) -> str:
    """--format: Go's text/template over the inspect object (cli/gotemplate.py)."""
    from pybuild.cli import gotemplate

    try:
        return gotemplate.render(template, obj)
    except gotemplate.TemplateError as e:
        raise ContainerError(str(e)) from None


_KINDS = ("container", "image", "network", "volume")


def _other_object(ctx: click.Context, ref: str, kinds) -> dict | None:
    """`docker inspect` looks a name up as a container, then an image, a network, a volume."""
    if "image" in kinds:
        from pybuild.cli.images import _images, _inspect_dict

        store = _images(ctx)
        try:
            return _inspect_dict(store, store.resolve(ref))
        except PybuildError:
            pass
        finally:
            store.close()
    if "network" in kinds:
        from pybuild.cli.network import _store, inspect_json
        from pybuild.runtime import network

        nets = _store(ctx)
        network.ensure_builtins(nets)
        try:
            return inspect_json(nets.get(ref))
        except PybuildError:
            pass
    if "volume" in kinds:
        from pybuild.cli.volume import _volumes

        try:
            return _volumes(ctx).get(ref).inspect()
        except PybuildError:
            pass
    return None


def _inspect(ctx: click.Context, fmt, size, refs, kinds) -> int:
    from pybuild.runtime import lifecycle
    from pybuild.runtime.names import names_of

    root = store_root((ctx.obj or {}).get("root"))
    cdir = lifecycle.containers_dir(root)
    names = names_of(cdir)
    out, rc = [], 0
    for ref in refs:
        data = None
        try:
            if "container" not in kinds:
                raise NoSuchContainer(ref)
            c = lifecycle.find(cdir, ref)
            state = lifecycle.fresh_state(c)
        except NoSuchContainer as e:
            if "multiple" in str(e):
                print(f"error: {e}", file=sys.stderr)
                rc = 1
                continue
            data = _other_object(ctx, ref, kinds)
            if data is None:
                what = kinds[0] if len(kinds) == 1 else "object"
                print(f"error: No such {what}: {ref}", file=sys.stderr)
                rc = 1
                continue
        if data is None:
            data = container_json(c, state, names)
            if size:
                from pybuild.cli.containers import _dir_size

                data["SizeRw"] = _dir_size(os.path.join(c.dir, "upper"))
        out.append(data)
    if fmt:
        for data in out:
            click.echo(render(fmt, data))
    else:
        click.echo(json.dumps(out, indent=4))
    return rc


@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None, help="Format output using a template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("--type", "kind", default=None,
              help="Only inspect objects of the given type (container, image, network, volume).")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx: click.Context, fmt, size, kind, refs) -> int:
    """Return low-level information on containers, images, networks or volumes."""
    if kind is not None and kind not in _KINDS:
        raise ContainerError(f'"{kind}" is not a valid value for --type')
    return _inspect(ctx, fmt, size, refs, (kind,) if kind else _KINDS)


@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None, help="Format output using a template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def inspect_container_cmd(ctx: click.Context, fmt, size, refs) -> int:
    """Display detailed information on one or more containers."""
    return _inspect(ctx, fmt, size, refs, ("container",))

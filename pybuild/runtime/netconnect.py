"""`pyrun network connect|disconnect`: put a container on one more network (its next
interface, eth1, ...) or take it off one, and refresh the /etc/hosts of everyone concerned.
A running container is attached or detached at once; either way the connection is recorded
in containers/<id>/networks.json (the verbs' file: state.json belongs to the supervisor),
so a created or stopped container joins at its next start (Container._connect ->
join_recorded), as Docker keeps it in the container's config. Stop and rm take a container
off every network it is on (netsetup.disconnect_container -> network.detach_all)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator

from pybuild.errors import NetworkError
from pybuild.runtime import network
from pybuild.runtime.lookup import running
from pybuild.runtime.netstore import Endpoint, NetworkStore

RECORDS = "networks.json"


def recorded(container_dir: str) -> list[dict]:
    """The networks connected since create: [{"network": id, "name", "aliases", "ipv4"}]."""
    try:
        with open(os.path.join(container_dir, RECORDS)) as f:
            return list(json.load(f))
    except (OSError, ValueError):
        return []


@contextlib.contextmanager
def _records(container_dir: str) -> Iterator[list[dict]]:
    """The records, changed in place and written back (temp + rename) under a lock."""
    fd = os.open(os.path.join(container_dir, ".networks.lock"),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        records = recorded(container_dir)
        yield records
        path = os.path.join(container_dir, RECORDS)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(records, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    finally:
        os.close(fd)


def join_recorded(store: NetworkStore, container_id: str, container_dir: str, pid: int,
                  name: str) -> list[str]:
    """At start: attach the container's namespace to every recorded network (Docker fails
    the start when one is gone). Returns their ids."""
    joined = []
    for rec in recorded(container_dir):
        try:
            store.get(rec["network"])
        except NetworkError:  # removed since: named as the user knew it
            name_or_id = rec.get("name") or rec["network"]
            raise NetworkError(f"network {name_or_id} not found", name_or_id) from None
        network.attach(store, rec["network"], container_id, pid, name=name,
                       aliases=rec.get("aliases") or (), ipv4=rec.get("ipv4"))
        joined.append(rec["network"])
    return joined


def _hosts_file(containers_dir: str):
    def path(container_id: str) -> str | None:
        p = os.path.join(containers_dir, container_id, "hosts")
        return p if os.path.exists(p) else None

    return path


def connect(store: NetworkStore, containers_dir: str, net_ref: str, container_ref: str, *,
            aliases: Iterable[str] = (), ipv4: str | None = None) -> Endpoint | None:
    """Connect `container_ref` to `net_ref` (Docker's errors): a running container at once
    (its endpoint is returned), a created or stopped one at its next start (None)."""
    from pybuild.runtime.lifecycle import find, fresh_state, is_active

    container = find(containers_dir, container_ref)
    state = fresh_state(container)
    pid = None
    if is_active(state):
        container, state, pid = running(containers_dir, container.id, paused_ok=True)
    mode = (state.get("net_request") or {}).get("mode", "none")
    if mode == "host":
        raise NetworkError("container cannot be disconnected from host network or connected "
                           "to host network", net_ref)
    if mode == "none":
        raise NetworkError("container cannot be connected to multiple networks with one of "
                           "the networks in private (none) mode", net_ref)
    net = store.get(net_ref)
    on = container.id in net.endpoints or net.name == mode or any(
        r["network"] == net.id for r in recorded(container.dir))
    if on:
        raise NetworkError(f"endpoint with name {state.get('name') or container.id[:12]} "
                           f"already exists in network {net.name}", net.name)
    aliases = tuple(aliases)
    if aliases and net.name == "bridge":
        raise NetworkError("network-scoped alias is supported only for containers in user "
                           "defined networks", net.name)
    if net.driver != "bridge":
        raise NetworkError(f"container cannot be attached to network {net.name} "
                           f"(driver {net.driver})", net.name)
    from pybuild.runtime.lifecycle import name_of

    ep = None
    if pid is not None:
        ep = network.attach(store, net.id, container.id, f"/proc/{pid}/ns/net",
                            name=name_of(container, state), aliases=aliases, ipv4=ipv4)
        _refresh(store, containers_dir, container.id, net.id)
    with _records(container.dir) as records:  # kept for the next start, as Docker does
        records.append({"network": net.id, "name": net.name, "aliases": list(aliases),
                        "ipv4": ipv4})
    return ep


def disconnect(store: NetworkStore, containers_dir: str, net_ref: str, container_ref: str,
               force: bool = False) -> None:
    """Detach the container from `net_ref`; its published ports go with the network they
    were published on. A created or stopped container loses the connection recorded for
    its next start."""
    from pybuild.runtime.lifecycle import find, fresh_state, is_active

    container = find(containers_dir, container_ref)
    state = fresh_state(container)
    net = store.get(net_ref)
    was_recorded = any(r["network"] == net.id for r in recorded(container.dir))
    if was_recorded:
        with _records(container.dir) as records:
            records[:] = [r for r in records if r["network"] != net.id]
    if not is_active(state):
        mode = (state.get("net_request") or {}).get("mode", "none")
        if was_recorded:
            return
        if net.name == mode:
            raise NetworkError(f"pyrun cannot disconnect the stopped container {container.id} "
                               f"from {net.name}, the network it was created on", net.name)
        if force:
            return
        raise NetworkError(f"container {container.id} is not connected to network {net.name}",
                           net.name)
    if container.id not in net.endpoints:
        if force:
            return
        raise NetworkError(f"container {container.id} is not connected to network {net.name}",
                           net.name)
    primary = state.get("network") or {}
    if primary.get("network_id") == net.id:
        from pybuild.runtime import netsetup, portproxy

        # its ports were published to this network's address: they go with it (state.json
        # belongs to the supervisor; stop/rm stop the proxy again, which is idempotent)
        cn = netsetup.ContainerNetwork.from_json(primary)
        if cn.proxy:
            portproxy.stop(portproxy.Proxy.from_json(cn.proxy))
    network.detach(store, net.id, container.id)
    _refresh(store, containers_dir, container.id, net.id)


def networks_of(container, state: dict, networks) -> dict[str, str]:
    """Every network the container is on, by name -> id ("" when not in the store): the one
    it was created on (none and host too, as Docker lists them) and those it was connected
    to since (running or not)."""
    by_name = {net.name: net.id for net in networks}
    mode = (state.get("net_request") or {}).get("mode", "none")
    out = {mode: by_name.get(mode, "")}
    wanted = {r["network"] for r in recorded(container.dir)}
    for net in networks:
        if container.id in net.endpoints or net.id in wanted:
            out[net.name] = net.id
    return out


def _refresh(store: NetworkStore, containers_dir: str, container_id: str, net_id: str) -> None:
    hosts = _hosts_file(containers_dir)
    own = hosts(container_id)
    if own is not None:
        network.write_hosts_section(own, network.hosts_lines(store, container_id))
    try:
        network.refresh_peers_hosts(store, net_id, hosts)
    except NetworkError:  # the network itself went meanwhile
        pass

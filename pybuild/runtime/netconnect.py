"""`pyrun network connect|disconnect`: put a running container on one more network (its
next interface, eth1, ...) or take it off one, and refresh the /etc/hosts of everyone
concerned. What the container started with stays in its state; stop and rm take it off
every network it is on (netsetup.disconnect_container -> network.detach_all)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from pybuild.errors import NetworkError
from pybuild.runtime import network
from pybuild.runtime.lookup import running
from pybuild.runtime.netstore import Endpoint, NetworkStore


def _hosts_file(containers_dir: str):
    def path(container_id: str) -> str | None:
        p = os.path.join(containers_dir, container_id, "hosts")
        return p if os.path.exists(p) else None

    return path


def connect(store: NetworkStore, containers_dir: str, net_ref: str, container_ref: str, *,
            aliases: Iterable[str] = (), ipv4: str | None = None) -> Endpoint:
    """Attach the running container `container_ref` to `net_ref` (Docker's errors)."""
    container, state, pid = running(containers_dir, container_ref, paused_ok=True)
    mode = (state.get("net_request") or {}).get("mode", "none")
    if mode == "host":
        raise NetworkError("container cannot be disconnected from host network or connected "
                           "to host network", net_ref)
    if mode == "none":
        raise NetworkError("container cannot be connected to multiple networks with one of "
                           "the networks in private (none) mode", net_ref)
    net = store.get(net_ref)
    if container.id in net.endpoints:
        raise NetworkError(f"endpoint with name {state.get('name') or container.id[:12]} "
                           f"already exists in network {net.name}", net.name)
    aliases = tuple(aliases)
    if aliases and net.name == "bridge":
        raise NetworkError("network-scoped alias is supported only for containers in user "
                           "defined networks", net.name)
    from pybuild.runtime.lifecycle import name_of

    ep = network.attach(store, net.id, container.id, f"/proc/{pid}/ns/net",
                        name=name_of(container, state), aliases=aliases, ipv4=ipv4)
    _refresh(store, containers_dir, container.id, net.id)
    return ep


def disconnect(store: NetworkStore, containers_dir: str, net_ref: str, container_ref: str,
               force: bool = False) -> None:
    """Detach the container from `net_ref`; its published ports go with the network they
    were published on."""
    from pybuild.runtime.lifecycle import find

    container = find(containers_dir, container_ref)
    state = container.state()
    net = store.get(net_ref)
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
    to since."""
    by_name = {net.name: net.id for net in networks}
    mode = (state.get("net_request") or {}).get("mode", "none")
    out = {mode: by_name.get(mode, "")}
    for net in networks:
        if container.id in net.endpoints:
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

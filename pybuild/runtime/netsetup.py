"""One container's networking from `--network`, `-p`, `-P` and `--network-alias`: join its
network namespace to the network, publish its ports through a proxy, and undo it all. The
seam between the container code (issue 7) and network.py / portproxy.py; what it returns is
kept in the container's state so a later `pyrun stop/rm/port` can act on it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from pybuild.errors import NetworkError
from pybuild.runtime import ports as P
from pybuild.runtime.netstore import BUILTIN, Endpoint, NetworkStore


def needs_own_netns(mode: str) -> bool:
    """Every mode but `host` runs in a new network namespace (`none`: loopback only)."""
    return mode != "host"


@dataclass(frozen=True)
class ContainerNetwork:
    mode: str                                   # none | host | bridge | a network name
    network_id: str = ""
    endpoint: Endpoint | None = None
    proxy: dict | None = None                   # portproxy.Proxy.to_json()

    def to_json(self) -> dict:
        from dataclasses import asdict

        return {"mode": self.mode, "network_id": self.network_id,
                "endpoint": asdict(self.endpoint) if self.endpoint else None,
                "proxy": self.proxy}

    @classmethod
    def from_json(cls, data: dict) -> ContainerNetwork:
        ep = Endpoint.from_json(data["endpoint"]) if data.get("endpoint") else None
        return cls(data["mode"], data.get("network_id", ""), ep, data.get("proxy"))

    def port_lines(self) -> list[str]:
        """`docker port` lines: `80/tcp -> 127.0.0.1:32768`."""
        if not self.proxy:
            return []
        out = []
        for f in self.proxy["forwards"]:
            host = f["host_ip"] or "0.0.0.0"
            out.append(f"{f['container_port']}/{f['proto']} -> {host}:{f['host_port']}")
        return out


def check_mode(store: NetworkStore, mode: str) -> None:
    """Fail before anything starts if `--network` names no network (Docker: exit 125)."""
    if mode in BUILTIN:
        return
    if mode.startswith("container:"):
        raise NetworkError("--network container:<name> is not supported yet", mode)
    store.get(mode)


def connect_container(store: NetworkStore, mode: str, container_id: str, netns: int | str, *,
                      name: str = "", aliases: Iterable[str] = (), ipv4: str | None = None,
                      publish: Sequence[str] = (), publish_all: bool = False,
                      exposed: Iterable[str] = (), default_host_ip: str = "",
                      proxy_log: str | None = None) -> ContainerNetwork:
    """Attach the container's namespace to `mode` and start its port proxy. `publish` is the
    raw `-p` values; `exposed` the image's ExposedPorts keys plus `--expose`, used by `-P`.
    Published ports are parsed (bad specs fail) but ignored for `none`/`host`, as Docker
    does (for `host` the CLI prints Docker's warning). `default_host_ip` is where ports
    without an address are bound (dockerd's `--ip`; "" = every address)."""
    from pybuild.runtime import network, portproxy

    bindings = [b if b.host_ip else replace(b, host_ip=default_host_ip)
                for b in P.parse_port_specs(publish)]
    if publish_all:
        bindings = P.publish_all(exposed, bindings, host_ip=default_host_ip)
    if mode in ("none", "host"):
        return ContainerNetwork(mode)
    if aliases and mode == "bridge":
        raise NetworkError("network-scoped alias is supported only for containers in user "
                           "defined networks", mode)
    if mode == "bridge":
        network.ensure_builtins(store)
    ep = network.attach(store, mode, container_id, netns, name=name, aliases=aliases,
                        ipv4=ipv4)
    net = store.get(mode)
    proxy = None
    if bindings:
        try:
            proxy = portproxy.start(bindings, ep.ipv4, log_path=proxy_log).to_json()
        except BaseException:
            network.detach(store, net.id, container_id)
            raise
    return ContainerNetwork(mode, net.id, ep, proxy)


def disconnect_container(store: NetworkStore, container_id: str,
                         state: ContainerNetwork | None = None) -> None:
    """Stop the proxy and take the container off every network (idempotent; run it on
    stop, on rm, and when a crashed container is reaped)."""
    from pybuild.runtime import network, portproxy

    if state is not None and state.proxy:
        portproxy.stop(portproxy.Proxy.from_json(state.proxy))
    network.detach_all(store, container_id)

"""Network records on disk: `<store root>/networks/<id>.json`, one per network, with its
endpoints (container -> address). Every change happens under one flock and is written to a
temp file, fsynced and renamed, so concurrent pyrun processes never lose an allocation."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace

from pybuild.errors import NetworkError
from pybuild.runtime import ipam

BUILTIN = ("bridge", "host", "none")
DEFAULT_BRIDGE_DEVICE = "pybr0"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass(frozen=True)
class Endpoint:
    """A container's place on a network."""

    container_id: str
    name: str                     # the container's name (resolvable by peers)
    ipv4: str                     # address without prefix length
    mac: str
    host_veth: str = ""           # host end of the veth pair
    ifname: str = ""              # name inside the container (eth0, eth1, ...): set on the
                                  # Endpoint attach() returns, not kept in the record
    aliases: tuple[str, ...] = ()
    endpoint_id: str = ""

    @classmethod
    def from_json(cls, data: Mapping) -> Endpoint:
        return cls(**{**data, "aliases": tuple(data.get("aliases", ()))})


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    driver: str                   # bridge | host | null
    subnet: str = ""              # "" for host/none
    gateway: str = ""
    bridge: str = ""              # the Linux bridge device
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = ""             # RFC 3339, UTC
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    internal: bool = False        # no NAT, no default route: reachable only from the host

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def to_json(self) -> dict:
        data = asdict(self)
        data["endpoints"] = {k: asdict(v) for k, v in self.endpoints.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> Network:
        eps = {k: Endpoint.from_json(v) for k, v in data.get("endpoints", {}).items()}
        return cls(**{**data, "labels": dict(data.get("labels", {})), "endpoints": eps})


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


def validate_name(name: str) -> None:
    if not _NAME.match(name):
        raise NetworkError(
            f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed', name)


class NetworkStore:
    """The networks of one store root."""

    def __init__(self, root: str, default_bridge: str = DEFAULT_BRIDGE_DEVICE):
        self.dir = os.path.join(root, "networks")
        self.default_bridge = default_bridge

    # --- files ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive over every network record of this store (read-modify-write)."""
        os.makedirs(self.dir, exist_ok=True)
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _path(self, net_id: str) -> str:
        return os.path.join(self.dir, f"{net_id}.json")

    def _save(self, net: Network) -> None:
        os.makedirs(self.dir, exist_ok=True)
        tmp = os.path.join(self.dir, f".{net.id}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(net.to_json(), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self._path(net.id))
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def list(self) -> list[Network]:
        """Every network, built-in ones first, then by name."""
        out = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return out
        for entry in names:
            if entry.endswith(".json") and not entry.startswith("."):
                try:
                    with open(os.path.join(self.dir, entry)) as f:
                        out.append(Network.from_json(json.load(f)))
                except FileNotFoundError:  # removed while we listed
                    continue
        return sorted(out, key=lambda n: (not n.builtin, n.name))

    def get(self, ref: str) -> Network:
        """By exact name, then full id, then unique id prefix (Docker's order)."""
        nets = self.list()
        for pick in (lambda n: n.name == ref, lambda n: n.id == ref):
            found = [n for n in nets if pick(n)]
            if found:
                return found[0]
        found = [n for n in nets if ref and n.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise NetworkError(f"network {ref} is ambiguous ({len(found)} matches found)", ref)
        raise NetworkError(f"network {ref} not found", ref)

    # --- records ---------------------------------------------------------------------------

    def has_builtins(self) -> bool:
        return {n.name for n in self.list()} >= set(BUILTIN)

    def ensure_builtins(self, host_routes: Iterable[ipaddress.IPv4Network] = ()) -> None:
        """bridge, host and none exist in every store (Docker lists them always). The default
        bridge's subnet is the first /16 of 172.31..172.17 that no host route overlaps."""
        if self.has_builtins():
            return
        with self.locked():
            have = {n.name: n for n in self.list()}
            for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
                if name in have:
                    continue
                if driver == "bridge":
                    used = list(host_routes) + [ipaddress.ip_network(n.subnet)
                                                for n in have.values() if n.subnet]
                    subnet = ipam.pick_subnet(ipam.DEFAULT_BRIDGE_SUBNETS, used)
                    net = Network(secrets.token_hex(32), name, driver, str(subnet),
                                  str(ipam.default_gateway(subnet)), self.default_bridge,
                                  created=_now())
                else:
                    net = Network(secrets.token_hex(32), name, driver, created=_now())
                self._save(net)
                have[name] = net

    def create(self, name: str, *, subnet: str | None = None, gateway: str | None = None,
               driver: str = "bridge", labels: Mapping[str, str] | None = None,
               host_routes: Iterable[ipaddress.IPv4Network] = (), internal: bool = False,
               bridge_name: str | None = None) -> Network:
        """A new bridge network record (the caller makes the device). Call under `locked()`."""
        validate_name(name)
        if driver != "bridge":
            raise NetworkError(f'plugin "{driver}" not found (only "bridge" is supported)', name)
        nets = self.list()
        if any(n.name == name for n in nets):
            raise NetworkError(f"network with name {name} already exists", name)
        taken = [ipaddress.ip_network(n.subnet) for n in nets if n.subnet]
        routes = list(host_routes)
        if subnet:
            net = ipam.parse_subnet(subnet)
            clash = ipam.overlapping(net, taken)
            if clash is not None:
                raise NetworkError(f"Pool overlaps with other one on this address space "
                                   f"({net} overlaps {clash})", name)
            clash = ipam.overlapping(net, routes)
            if clash is not None:
                raise NetworkError(f"subnet {net} overlaps the host route {clash}", name)
        else:
            if gateway:
                raise NetworkError("a gateway needs a --subnet", name)
            net = ipam.pick_subnet(ipam.user_subnets(), taken + routes)
        gw = ipam.check_gateway(net, gateway) if gateway else ipam.default_gateway(net)
        net_id = secrets.token_hex(32)
        if bridge_name and any(n.bridge == bridge_name for n in nets):
            raise NetworkError(f"bridge name {bridge_name} is used by another network", name)
        record = Network(net_id, name, driver, str(net), str(gw),
                         bridge_name or f"pybr-{net_id[:10]}", dict(labels or {}), _now(),
                         internal=internal)
        self._save(record)
        return record

    def remove(self, net_id: str) -> None:
        """Forget a network record. Call under `locked()`."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(net_id))

    def put(self, net: Network) -> None:
        """Replace a record (under `locked()`)."""
        self._save(net)

    # --- endpoints (IPAM) --------------------------------------------------------------------

    def allocate(self, ref: str, container_id: str, name: str, *, aliases: Iterable[str] = (),
                 ipv4: str | None = None, host_veth: str = "") -> tuple[Network, Endpoint]:
        """Reserve an address on `ref` for a container (persisted before it is returned)."""
        with self.locked():
            net = self.get(ref)
            if net.driver != "bridge":
                raise NetworkError(f"network {net.name} has no addresses to give", net.name)
            if container_id in net.endpoints:
                raise NetworkError(f"endpoint with name {name} already exists in network "
                                   f"{net.name}", net.name)
            subnet = ipaddress.ip_network(net.subnet)
            addr = ipam.allocate(subnet, ipaddress.ip_address(net.gateway),
                                 [e.ipv4 for e in net.endpoints.values()], ipv4)
            ep = Endpoint(container_id, name, str(addr), ipam.mac_for(addr),
                          host_veth=host_veth, aliases=tuple(aliases),
                          endpoint_id=secrets.token_hex(32))
            net = replace(net, endpoints={**net.endpoints, container_id: ep})
            self._save(net)
            return net, ep

    def release(self, ref: str, container_id: str) -> Endpoint | None:
        """Give a container's address back; None if it had none on this network."""
        with self.locked():
            net = self.get(ref)
            ep = net.endpoints.get(container_id)
            if ep is None:
                return None
            self._save(replace(net, endpoints={k: v for k, v in net.endpoints.items()
                                               if k != container_id}))
            return ep

"""Address management: pick a subnet that collides with nothing on the host, and hand out
container addresses inside it. Pure functions over `ipaddress`; the callers hold the locks."""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator

from pybuild.errors import NetworkError

Net = ipaddress.IPv4Network
Addr = ipaddress.IPv4Address

DEFAULT_BRIDGE_SUBNETS = tuple(f"172.{b}.0.0/16" for b in range(31, 16, -1))


def user_subnets() -> Iterator[str]:
    """Candidate /24s for user-defined networks: 172.30.0.0/24, 172.30.1.0/24, ... 172.17.255.0/24."""
    for b in range(30, 16, -1):
        for c in range(256):
            yield f"172.{b}.{c}.0/24"


def host_routes(path: str = "/proc/net/route") -> list[Net]:
    """The host's IPv4 routes other than the default one (read without netlink: cheap)."""
    out: list[Net] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except FileNotFoundError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
        net = ipaddress.ip_network(f"{dest}/{mask}", strict=False)
        if net.prefixlen > 0:
            out.append(net)
    return out


def parse_subnet(text: str) -> Net:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise NetworkError(f"invalid subnet {text!r}") from None
    if net.version != 4:
        raise NetworkError(f"only IPv4 subnets are supported: {text}")
    if str(net) != text.strip() and "/" in text:
        raise NetworkError(f"invalid subnet {text}: host bits are set (did you mean {net}?)")
    if net.prefixlen > 30:
        raise NetworkError(f"subnet {text} is too small (at most /30)")
    return net


def overlapping(net: Net, others: Iterable[Net]) -> Net | None:
    for other in others:
        if net.overlaps(other):
            return other
    return None


def pick_subnet(candidates: Iterable[str], used: Iterable[Net]) -> Net:
    """The first candidate that overlaps nothing in `used` (host routes, other networks)."""
    used = list(used)
    for text in candidates:
        net = ipaddress.ip_network(text)
        if overlapping(net, used) is None:
            return net
    raise NetworkError("could not find an available, non-overlapping IPv4 address pool")


def default_gateway(net: Net) -> Addr:
    return next(net.hosts())


def check_gateway(net: Net, gateway: str) -> Addr:
    try:
        gw = ipaddress.ip_address(gateway)
    except ValueError:
        raise NetworkError(f"invalid gateway {gateway!r}") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise NetworkError(f"gateway {gateway} is not a usable address of subnet {net}")
    return gw


def allocate(net: Net, gateway: Addr, in_use: Iterable[str], wanted: str | None = None) -> Addr:
    """The lowest free host address (or `wanted`, if it is free and usable)."""
    taken = {ipaddress.ip_address(a) for a in in_use}
    taken.add(gateway)
    if wanted is not None:
        try:
            addr = ipaddress.ip_address(wanted)
        except ValueError:
            raise NetworkError(f"invalid IPv4 address {wanted!r}") from None
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise NetworkError(f"address {wanted} does not belong to subnet {net}")
        if addr in taken:
            raise NetworkError(f"address {wanted} is already in use")
        return addr
    for addr in net.hosts():
        if addr not in taken:
            return addr
    raise NetworkError(f"no available IPv4 addresses on subnet {net}")


def mac_for(addr: Addr) -> str:
    """Docker's rule: 02:42 followed by the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)

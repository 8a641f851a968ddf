"""`-p`/`--publish` and `-P` as Docker reads them (go-connections nat.ParsePortSpec): specs
-> one PortBinding per container port; `-P` turns exposed ports into random host ports."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from pybuild.errors import ContainerError

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortBinding:
    """One published container port. host_port 0 = pick a free one; host_port_end > host_port
    = pick a free one in that range (`-p 8000-8010:80`). host_ip "" = every address."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0

    @property
    def key(self) -> str:
        """Docker's port key, "80/tcp"."""
        return f"{self.container_port}/{self.proto}"


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    n = len(parts)
    if n == 1:
        return "", "", parts[0]
    if n == 2:
        return "", parts[0], parts[1]
    if n == 3:
        return parts[0], parts[1], parts[2]
    return ":".join(parts[: n - 2]), parts[n - 2], parts[n - 1]


def split_proto_port(raw: str) -> tuple[str, str]:
    """"80/udp" -> ("udp", "80"); "80" and "80/" -> ("tcp", "80"); "" or "/udp" -> ("", "")."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1:
        return "tcp", raw
    if not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _uint16(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(text)
    value = int(text)
    if value > 65535:
        raise ValueError(text)
    return value


def parse_port_range(text: str) -> tuple[int, int]:
    """"80" -> (80, 80); "8000-8010" -> (8000, 8010); Go's strconv.ParseUint(.., 16) rules."""
    if not text:
        raise ValueError("empty string specified for ports")
    if "-" not in text:
        v = _uint16(text)
        return v, v
    parts = text.split("-")
    start, end = _uint16(parts[0]), _uint16(parts[1])
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def parse_port_spec(raw: str) -> list[PortBinding]:
    """One `-p` value -> bindings, with Docker's error messages."""
    ip, host_port, container_port = _split_parts(raw)
    proto, container_port = split_proto_port(container_port)
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise ContainerError(f"invalid IP address {ip}")
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ContainerError(f"invalid IP address: {ip}") from None
    if not container_port:
        raise ContainerError(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container_port)
    except ValueError:
        raise ContainerError(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except ValueError:
            raise ContainerError(f"invalid hostPort: {host_port}") from None
        if end - start != host_end - host_start and end != start:
            raise ContainerError(
                f"invalid ranges specified for container and host Ports: "
                f"{container_port} and {host_port}")
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise ContainerError(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        if not host_port:
            hp, hp_end = 0, 0
        elif start == end and host_start != host_end:
            hp, hp_end = host_start, host_end  # one container port, a range to choose from
        else:
            hp, hp_end = host_start + i, host_start + i
        out.append(PortBinding(start + i, proto, ip, hp, hp_end))
    return out


def parse_port_specs(specs: Iterable[str]) -> list[PortBinding]:
    out: list[PortBinding] = []
    for spec in specs:
        out.extend(parse_port_spec(spec))
    return out


def parse_exposed(key: str) -> tuple[int, str]:
    """An image's ExposedPorts key ("80/tcp", "53/udp", "8080") -> (port, proto)."""
    proto, port = split_proto_port(key)
    try:
        value = _uint16(port)
    except ValueError:
        raise ContainerError(f"invalid exposed port: {key}") from None
    if proto.lower() not in PROTOCOLS:
        raise ContainerError(f"invalid exposed port: {key}")
    return value, proto.lower()


def publish_all(exposed: Iterable[str], explicit: Iterable[PortBinding] = (),
                host_ip: str = "") -> list[PortBinding]:
    """`-P`: every exposed port not already published with `-p` gets a random host port."""
    taken = {b.key for b in explicit}
    out = list(explicit)
    for key in exposed:
        port, proto = parse_exposed(key)
        b = PortBinding(port, proto, host_ip)
        if b.key not in taken:
            taken.add(b.key)
            out.append(b)
    return out

"""`-p` specs read the way Docker (go-connections nat.ParsePortSpec) reads them."""

from __future__ import annotations

import pytest

from pybuild.errors import ContainerError
from pybuild.runtime.ports import (
    PortBinding,
    parse_exposed,
    parse_port_range,
    parse_port_spec,
    parse_port_specs,
    publish_all,
    split_proto_port,
)

B = PortBinding

TABLE = [
    ("80", [B(80, "tcp", "", 0, 0)]),
    ("80/udp", [B(80, "udp", "", 0, 0)]),
    ("80/UDP", [B(80, "udp", "", 0, 0)]),
    ("80/", [B(80, "tcp", "", 0, 0)]),
    ("8080:80", [B(80, "tcp", "", 8080, 8080)]),
    ("8080:80/udp", [B(80, "udp", "", 8080, 8080)]),
    ("127.0.0.1:8080:80", [B(80, "tcp", "127.0.0.1", 8080, 8080)]),
    ("127.0.0.1::80", [B(80, "tcp", "127.0.0.1", 0, 0)]),
    ("127.0.0.1::80/udp", [B(80, "udp", "127.0.0.1", 0, 0)]),
    ("[::1]:8080:80", [B(80, "tcp", "::1", 8080, 8080)]),
    ("::1:8080:80", [B(80, "tcp", "::1", 8080, 8080)]),
    ("[2001:db8::1]::53/udp", [B(53, "udp", "2001:db8::1", 0, 0)]),
    ("8000-8001:80-81", [B(80, "tcp", "", 8000, 8000), B(81, "tcp", "", 8001, 8001)]),
    ("127.0.0.1:8000-8001:80-81/udp",
     [B(80, "udp", "127.0.0.1", 8000, 8000), B(81, "udp", "127.0.0.1", 8001, 8001)]),
    ("80-82", [B(80, "tcp", "", 0, 0), B(81, "tcp", "", 0, 0), B(82, "tcp", "", 0, 0)]),
    ("8000-8010:80", [B(80, "tcp", "", 8000, 8010)]),
    (":80", [B(80, "tcp", "", 0, 0)]),
    ("0:80", [B(80, "tcp", "", 0, 0)]),
    ("53/sctp", [B(53, "sctp", "", 0, 0)]),
    ("65535:65535", [B(65535, "tcp", "", 65535, 65535)]),
]


@pytest.mark.parametrize("spec, expected", TABLE, ids=[t[0] for t in TABLE])
def test_parse_port_spec(spec, expected):
    assert parse_port_spec(spec) == expected


ERRORS = [
    ("", "no port specified: <empty>"),
    ("8080:", "no port specified: 8080:<empty>"),
    ("/udp", "no port specified"),
    ("abc", "invalid containerPort: abc"),
    ("65536", "invalid containerPort: 65536"),
    ("-1", "invalid containerPort: -1"),
    ("81-80", "invalid containerPort: 81-80"),
    ("x:80", "invalid hostPort: x"),
    ("70000:80", "invalid hostPort: 70000"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
    ("8000:80-81", "invalid ranges specified"),
    ("localhost:8080:80", "invalid IP address: localhost"),
    ("256.0.0.1:8080:80", "invalid IP address: 256.0.0.1"),
    ("[::1:8080:80", "invalid IP address"),
    ("80/icmp", "invalid proto: icmp"),
]


@pytest.mark.parametrize("spec, message", ERRORS, ids=[e[0] or "empty" for e in ERRORS])
def test_parse_port_spec_errors(spec, message):
    with pytest.raises(ContainerError, match=message.replace("[", r"\[")):
        parse_port_spec(spec)


def test_split_proto_port_and_range():
    assert split_proto_port("80/udp") == ("udp", "80")
    assert split_proto_port("") == ("", "")
    assert parse_port_range("1234-1235") == (1234, 1235)
    with pytest.raises(ValueError):
        parse_port_range("")


def test_key_and_many_specs():
    bindings = parse_port_specs(["8080:80", "53/udp"])
    assert [b.key for b in bindings] == ["80/tcp", "53/udp"]


def test_publish_all_keeps_explicit_bindings():
    explicit = parse_port_spec("127.0.0.1:8080:80")
    out = publish_all(["80/tcp", "443/tcp", "53/udp", "9000"], explicit, host_ip="127.0.0.1")
    assert out == [
        B(80, "tcp", "127.0.0.1", 8080, 8080),
        B(443, "tcp", "127.0.0.1"),
        B(53, "udp", "127.0.0.1"),
        B(9000, "tcp", "127.0.0.1"),
    ]


@pytest.mark.parametrize("key", ["x/tcp", "80/icmp", "", "70000/tcp"])
def test_bad_exposed_ports(key):
    with pytest.raises(ContainerError):
        parse_exposed(key)

"""Outbound NAT and forwarding for a bridge network, through iptables (the nft or legacy
backend, whichever the host's `iptables` is). Every rule carries the comment
`pybuild:<network id[:12]>`, is added only if missing, and is removed with its network."""

from __future__ import annotations

import shutil
import subprocess

from pybuild.errors import NetworkError

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def available() -> bool:
    return shutil.which("iptables") is not None


def tag(net_id: str) -> str:
    return f"pybuild:{net_id[:12]}"


def rules(net_id: str, subnet: str, bridge: str,
          internal: bool = False) -> list[tuple[str, str, list[str]]]:
    """(table, chain, match+target) of one network, as Docker's bridge driver sets them. An
    internal network gets no NAT, and traffic between its bridge and elsewhere is dropped."""
    comment = ["-m", "comment", "--comment", tag(net_id)]
    if internal:
        return [
            ("filter", "FORWARD", ["-i", bridge, "-o", bridge, *comment, "-j", "ACCEPT"]),
            ("filter", "FORWARD", ["-i", bridge, "!", "-o", bridge, *comment, "-j", "DROP"]),
            ("filter", "FORWARD", ["!", "-i", bridge, "-o", bridge, *comment, "-j", "DROP"]),
        ]
    return [
        ("nat", "POSTROUTING", ["-s", subnet, "!", "-o", bridge, *comment, "-j", "MASQUERADE"]),
        ("filter", "FORWARD", ["-i", bridge, "-o", bridge, *comment, "-j", "ACCEPT"]),
        ("filter", "FORWARD", ["-i", bridge, "!", "-o", bridge, *comment, "-j", "ACCEPT"]),
        ("filter", "FORWARD", ["-o", bridge, "-m", "conntrack", "--ctstate",
                               "RELATED,ESTABLISHED", *comment, "-j", "ACCEPT"]),
    ]


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)


def _present(table: str, chain: str, spec: list[str]) -> bool:
    return _iptables("-t", table, "-C", chain, *spec).returncode == 0


def enable_forwarding() -> None:
    """Routing between the bridge and the host's uplink needs ip_forward (host-wide, as with
    Docker; it is left on when the last network goes)."""
    with open(IP_FORWARD) as f:
        if f.read().strip() == "1":
            return
    with open(IP_FORWARD, "w") as f:
        f.write("1")


def add(net_id: str, subnet: str, bridge: str, internal: bool = False) -> bool:
    """Install the network's rules (idempotent). False when there is no iptables here."""
    if not available():
        return False
    if not internal:
        enable_forwarding()
    for table, chain, spec in rules(net_id, subnet, bridge, internal):
        if _present(table, chain, spec):
            continue
        # Insert at the top of FORWARD: a host firewall's later DROP must not shadow them.
        op = "-A" if chain == "POSTROUTING" else "-I"
        res = _iptables("-t", table, op, chain, *spec)
        if res.returncode != 0:
            raise NetworkError(f"iptables {op} {chain} failed: {res.stderr.strip()}")
    return True


def remove(net_id: str, subnet: str, bridge: str, internal: bool = False) -> None:
    """Delete every copy of the network's rules."""
    if not available():
        return
    for table, chain, spec in rules(net_id, subnet, bridge, internal):
        for _ in range(16):  # bounded: a rule added twice by hand is removed twice
            if not _present(table, chain, spec):
                break
            _iptables("-t", table, "-D", chain, *spec)


def present(net_id: str) -> list[str]:
    """The rules now in the kernel that carry this network's tag (for tests and inspect)."""
    if not available():
        return []
    out = []
    for table in ("nat", "filter"):
        res = _iptables("-t", table, "-S")
        out += [f"{table}: {line}" for line in res.stdout.splitlines() if tag(net_id) in line]
    return out

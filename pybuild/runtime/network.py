"""Bridge networks in the kernel (pyroute2): create/remove a network's bridge and NAT rules,
attach a container's network namespace with a veth pair (eth0, address, default route),
detach it, and the /etc/hosts lines that let containers on a user network find each other.

A container is named by its network namespace: a pid, `/proc/<pid>/ns/net`, a named netns
(`/run/netns/<name>` or just `<name>`), or any bind-mounted netns file. pyroute2 is imported
inside the functions that talk to the kernel (it costs 180-280 ms to import)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from pybuild.errors import NetworkError
from pybuild.runtime import ipam, nat
from pybuild.runtime.netstore import Endpoint, Network, NetworkStore

CLONE_NEWNET = 0x40000000
HOST_LOCK = "/run/pybuild/network.lock"
HOSTS_MARK = "# pybuild: peers on user-defined networks"


def netns_path(target: int | str) -> str:
    """A pid, a netns path, or a name under /run/netns -> the namespace file to open."""
    if isinstance(target, int) or str(target).isdigit():
        return f"/proc/{int(target)}/ns/net"
    if "/" not in target:
        return f"/run/netns/{target}"
    return target


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Host-wide: subnets and bridge devices are shared by every store root on the host."""
    os.makedirs(os.path.dirname(HOST_LOCK), exist_ok=True)
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _iproute():
    from pyroute2 import IPRoute

    return IPRoute()


def _netlink_errno(exc: BaseException) -> int | None:
    return getattr(exc, "code", None)


def _lookup(ipr, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _used_subnets() -> list[ipaddress.IPv4Network]:
    return ipam.host_routes()


# --- bridges ----------------------------------------------------------------------------------

def bridge_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def ensure_bridge(net: Network, ipr=None) -> bool:
    """The network's bridge, with the gateway address, up; True if it had to be made.
    Call under `host_lock()`."""
    if net.driver != "bridge":
        raise NetworkError(f"network {net.name} has no bridge", net.name)
    if ipr is None:
        with _iproute() as own:
            return ensure_bridge(net, own)
    subnet = ipaddress.ip_network(net.subnet)
    made = False
    idx = _lookup(ipr, net.bridge)
    if idx is None:
        clash = ipam.overlapping(subnet, _used_subnets())
        if clash is not None:
            raise NetworkError(f"subnet {subnet} of network {net.name} overlaps the host "
                               f"route {clash}", net.name)
        ipr.link("add", ifname=net.bridge, kind="bridge")
        idx = _lookup(ipr, net.bridge)
        made = True
    if not made:
        _drop_idle_addresses(net.bridge, keep=net.gateway, ipr=ipr, idx=idx)
    have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx, family=socket.AF_INET)}
    if net.gateway not in have:
        ipr.addr("add", index=idx, address=net.gateway, prefixlen=subnet.prefixlen)
    if made or not ipr.get_links(idx)[0]["flags"] & 1:  # IFF_UP
        ipr.link("set", index=idx, state="up")
    return made


def _bridge_idle(name: str) -> bool:
    """The bridge exists and no interface (a container's veth) is attached to it."""
    try:
        return not os.listdir(f"/sys/class/net/{name}/brif")
    except OSError:
        return False


def _drop_idle_addresses(bridge: str, keep: str | None, ipr=None, idx: int | None = None) -> None:
    """On an idle bridge, remove every IPv4 address but `keep`: gateways of stores that
    used a shared bridge once and have no container on it now (they add theirs back when
    they attach one). Call under `host_lock()`."""
    if not _bridge_idle(bridge):
        return
    if ipr is None:
        with _iproute() as own:
            return _drop_idle_addresses(bridge, keep, own, _lookup(own, bridge))
    if idx is None:
        return
    for a in ipr.get_addr(index=idx, family=socket.AF_INET):
        address = a.get_attr("IFA_ADDRESS")
        if address != keep:
            with contextlib.suppress(Exception):  # gone meanwhile is fine
                ipr.addr("del", index=idx, address=address, prefixlen=a["prefixlen"])


def delete_link(name: str) -> None:
    """Delete a link of the host namespace if it exists (a veth takes its peer with it)."""
    if not name or not bridge_exists(name):
        return
    with _iproute() as ipr:
        idx = _lookup(ipr, name)
        if idx is None:
            return
        try:
            ipr.link("del", index=idx)
        except Exception as e:  # noqa: BLE001 - pyroute2's NetlinkError; gone already is fine
            if _netlink_errno(e) != errno.ENODEV:
                raise NetworkError(f"cannot delete link {name}: {e}") from e


def _check_ifname(name: str) -> None:
    if not 0 < len(name) <= 15 or "/" in name or name in (".", "..") or any(
            c.isspace() for c in name):
        raise NetworkError(f"invalid interface name {name!r} (1-15 characters, no / or spaces)")


# --- networks ------------------------------------------------------------------------------

def ensure_builtins(store: NetworkStore) -> None:
    """bridge/host/none in this store. The default bridge's device (pybr0) is shared by
    every store on the host, as docker0 is, while each store picks its own subnet: the
    addresses that stores no longer using it left on an idle device are dropped first, so
    they neither push this store's pick along nor fill 172.17-31 (15 test stores did)."""
    if store.has_builtins():
        return
    with host_lock():
        _drop_idle_addresses(store.default_bridge, keep=None)
        store.ensure_builtins(ipam.host_routes())


def create_network(store: NetworkStore, name: str, *, subnet: str | None = None,
                   gateway: str | None = None, driver: str = "bridge",
                   labels: dict[str, str] | None = None, internal: bool = False,
                   bridge_name: str | None = None) -> Network:
    """A user-defined bridge network: the record, the bridge device and the NAT rules.
    `internal`: no route out (no NAT, forwarding off the bridge dropped, no default route
    in containers). `bridge_name`: Docker's -o com.docker.network.bridge.name."""
    if bridge_name is not None:
        _check_ifname(bridge_name)
        if bridge_exists(bridge_name):
            raise NetworkError(f"bridge device {bridge_name} already exists", name)
    ensure_builtins(store)
    with host_lock():
        with store.locked():
            net = store.create(name, subnet=subnet, gateway=gateway, driver=driver,
                               labels=labels, host_routes=_used_subnets(), internal=internal,
                               bridge_name=bridge_name)
        try:
            ensure_bridge(net)
            nat.add(net.id, net.subnet, net.bridge, net.internal)
        except BaseException:
            nat.remove(net.id, net.subnet, net.bridge, net.internal)
            delete_link(net.bridge)
            with store.locked():
                store.remove(net.id)
            raise
    return net


def _reap_stale(store: NetworkStore, net: Network) -> Network:
    """Endpoints whose host veth is gone belong to containers whose namespace died without a
    detach: give their addresses back. Endpoints still being attached (no veth yet) stay."""
    for cid, ep in net.endpoints.items():
        if ep.host_veth and not bridge_exists(ep.host_veth):
            store.release(net.id, cid)
    return store.get(net.id)


def remove_network(store: NetworkStore, ref: str) -> Network:
    ensure_builtins(store)
    net = store.get(ref)
    if net.builtin:
        raise NetworkError(f"{net.name} is a pre-defined network and cannot be removed",
                           net.name)
    with host_lock():
        net = _reap_stale(store, net)
        with store.locked():
            net = store.get(net.id)
            if net.endpoints:
                raise NetworkError(f"error while removing network: network {net.name} id "
                                   f"{net.id} has active endpoints", net.name)
            nat.remove(net.id, net.subnet, net.bridge, net.internal)
            delete_link(net.bridge)
            store.remove(net.id)
    return net


def prune_networks(store: NetworkStore) -> list[Network]:
    """Remove every user-defined network without endpoints; the removed ones."""
    removed = []
    for net in store.list():
        if net.builtin:
            continue
        with contextlib.suppress(NetworkError):
            removed.append(remove_network(store, net.id))
    return removed


# --- containers ------------------------------------------------------------------------------

def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_netns(target: int | str) -> int:
    path = netns_path(target)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetworkError(f"cannot open network namespace {path}: {e.strerror}") from e


def in_netns(target: int | str, fn: Callable[[], object]) -> object:
    """Run `fn` in a thread that has joined the namespace: a namespace belongs to a thread, so
    the rest of the process stays where it is, and netlink sockets opened there talk to it."""
    fd = open_netns(target)
    try:
        return _in_netns_fd(fd, fn)
    finally:
        os.close(fd)


def _in_netns_fd(fd: int, fn: Callable[[], object]) -> object:
    result: dict[str, object] = {}

    def body() -> None:
        try:
            _setns(fd)
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - carried to the caller's thread
            result["error"] = e

    thread = threading.Thread(target=body, name="pybuild-netns")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


def _configure_inside(peer: str, ep: Endpoint, net: Network) -> str:
    """In the container's namespace: rename the veth end to the next ethN, give it its MAC
    and address, bring it and lo up, and route through the gateway unless a route exists."""
    with _iproute() as ipr:
        names = {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        ifname = next(f"eth{i}" for i in range(1000) if f"eth{i}" not in names)
        idx = _lookup(ipr, peer)
        ipr.link("set", index=idx, ifname=ifname, address=ep.mac)
        ipr.addr("add", index=idx, address=ep.ipv4, prefixlen=net.prefixlen)
        ipr.link("set", index=idx, state="up")
        lo = _lookup(ipr, "lo")
        if lo is not None:
            ipr.link("set", index=lo, state="up")
        defaults = [r for r in ipr.get_routes(family=socket.AF_INET) if r["dst_len"] == 0]
        if not defaults and not net.internal:
            ipr.route("add", dst="0.0.0.0/0", gateway=net.gateway)
        return ifname


def attach(store: NetworkStore, ref: str, container_id: str, netns: int | str, *,
           name: str = "", aliases: Iterable[str] = (), ipv4: str | None = None) -> Endpoint:
    """Put a container (its network namespace) on network `ref`: an address from IPAM, the
    bridge and NAT if missing, a veth pair whose inner end becomes eth0 (eth1, ... for a
    second network). Undone completely if any step fails."""
    if ref in ("bridge",):
        ensure_builtins(store)
    net = store.get(ref)
    if net.driver != "bridge":
        raise NetworkError(f"container cannot be attached to network {net.name} "
                           f"(driver {net.driver})", net.name)
    fd = open_netns(netns)
    try:
        return _attach(store, net, container_id, fd, name, aliases, ipv4)
    finally:
        os.close(fd)


def _move_idle_default(store: NetworkStore, net: Network) -> None:
    """The default network's subnet is chosen when its record is written, but its bridge is
    made on first use; if something took that range meanwhile (another store's bridge, a
    VPN), move the idle network to a free /16 instead of failing. Under `host_lock()`."""
    if net.name != "bridge" or bridge_exists(net.bridge):
        return
    routes = _used_subnets()
    if ipam.overlapping(ipaddress.ip_network(net.subnet), routes) is None:
        return
    with store.locked():
        net = store.get(net.id)
        if net.endpoints:
            return
        others = [ipaddress.ip_network(n.subnet) for n in store.list()
                  if n.subnet and n.id != net.id]
        subnet = ipam.pick_subnet(ipam.DEFAULT_BRIDGE_SUBNETS, routes + others)
        store.put(replace(net, subnet=str(subnet), gateway=str(ipam.default_gateway(subnet))))


def _attach(store: NetworkStore, net: Network, container_id: str, fd: int, name: str,
            aliases: Iterable[str], ipv4: str | None) -> Endpoint:
    host_veth = "veth" + secrets.token_hex(4)[:7]
    peer = "pbp" + secrets.token_hex(5)
    allocated = False
    try:
        with _iproute() as ipr:
            # Under the host lock from allocation until the veth exists, so `_reap_stale`
            # (same lock) never mistakes an attach in progress for a dead container.
            with host_lock():
                _move_idle_default(store, net)
                net, ep = store.allocate(net.id, container_id, name or container_id[:12],
                                         aliases=aliases, ipv4=ipv4, host_veth=host_veth)
                allocated = True
                # Rules go with the bridge: made by create_network, or here when the default
                # bridge (or one lost to a reboot) is first needed.
                if ensure_bridge(net, ipr):
                    nat.add(net.id, net.subnet, net.bridge, net.internal)
                ipr.link("add", ifname=host_veth, kind="veth", peer=peer)
                hidx, pidx = _lookup(ipr, host_veth), _lookup(ipr, peer)
                ipr.link("set", index=hidx, master=_lookup(ipr, net.bridge), state="up")
                ipr.link("set", index=pidx, net_ns_fd=fd)
        ifname = _in_netns_fd(fd, lambda: _configure_inside(peer, ep, net))
        return replace(ep, ifname=str(ifname))
    except BaseException as e:
        with contextlib.suppress(Exception):
            delete_link(host_veth)
        if allocated:
            store.release(net.id, container_id)
        if isinstance(e, NetworkError) or not isinstance(e, Exception):
            raise
        raise NetworkError(f"cannot attach to network {net.name}: {e}", net.name) from e


def detach(store: NetworkStore, ref: str, container_id: str) -> Endpoint | None:
    """Take a container off a network: its veth pair goes (if the namespace still exists) and
    its address returns to the pool. Idempotent; None if it was not attached."""
    net = store.get(ref)
    ep = net.endpoints.get(container_id)
    if ep is None:
        return None
    delete_link(ep.host_veth)
    return store.release(net.id, container_id)


def networks_of(store: NetworkStore, container_id: str) -> list[Network]:
    return [n for n in store.list() if container_id in n.endpoints]


def detach_all(store: NetworkStore, container_id: str) -> list[str]:
    """Every network a container is on, detached (for stop/rm); the network names."""
    names = []
    for net in networks_of(store, container_id):
        detach(store, net.id, container_id)
        names.append(net.name)
    return names


# --- name resolution ------------------------------------------------------------------------

def hosts_lines(store: NetworkStore, container_id: str, ref: str | None = None) -> list[str]:
    """/etc/hosts lines naming the container's peers on its user-defined networks (by name,
    aliases and short id), as Docker's embedded DNS would answer them. The default `bridge`
    network gives no names, as in Docker."""
    nets = [store.get(ref)] if ref else networks_of(store, container_id)
    lines = []
    for net in nets:
        if net.builtin or container_id not in net.endpoints:
            continue
        for cid, ep in sorted(net.endpoints.items(), key=lambda kv: ipaddress.ip_address(kv[1].ipv4)):
            if cid == container_id:
                continue
            names = dict.fromkeys([ep.name, *ep.aliases, cid[:12]])
            lines.append(f"{ep.ipv4}\t{' '.join(n for n in names if n)}")
    return lines


def write_hosts_section(path: str, lines: list[str]) -> None:
    """Replace the peers section of a container's hosts file in place: the file is
    bind-mounted into the container, and a rename would leave the mount on the old inode."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    base = text.split(HOSTS_MARK, 1)[0].rstrip("\n")
    body = base + ("\n" if base else "")
    if lines:
        body += HOSTS_MARK + "\n" + "\n".join(lines) + "\n"
    with open(path, "r+" if os.path.exists(path) else "w") as f:
        f.write(body)
        f.truncate()


def refresh_peers_hosts(store: NetworkStore, ref: str,
                        hosts_file: Callable[[str], str | None]) -> None:
    """After a container joins or leaves `ref`, rewrite every member's hosts section.
    `hosts_file(container_id)` gives that container's hosts file, or None to skip it."""
    net = store.get(ref)
    for cid in net.endpoints:
        path = hosts_file(cid)
        if path:
            write_hosts_section(path, hosts_lines(store, cid))

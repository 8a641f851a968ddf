"""`ps -f` filters on a container's networks, volumes and ports, and the swarm/Windows ones
that have one answer here (is-task, isolation), as moby's daemon/list.go applies them."""

from __future__ import annotations

from pybuild.errors import ContainerError

EXTRA_FILTERS = ("network", "volume", "publish", "expose", "is-task", "isolation")


def check_value(key: str, value: str) -> None:
    """The daemon's validation of one filter value (its messages)."""
    if key in ("publish", "expose"):
        port_set(key, value)
    elif key == "is-task" and value not in ("true", "false"):
        raise ContainerError(f"invalid filter 'is-task={value}'")
    elif key == "isolation" and value.lower() not in ("default", ""):
        # Linux knows only the default isolation
        raise ContainerError(f"Unrecognised filter value for isolation: {value}")


def port_set(key: str, value: str) -> set[str]:
    """moby's portOp: 80, 80/udp, 8000-8002/tcp -> {"80/tcp", ...}."""
    from pybuild.runtime import ports

    if ":" in value:
        raise ContainerError(f"filter for '{key}' should not contain ':': {value}")
    proto, text = ports.split_proto_port(value)
    try:
        first, last = ports.parse_port_range(text)
    except (ValueError, ContainerError) as e:
        reason = str(e) if str(e) != text else f'invalid port "{text}"'
        raise ContainerError(f"error while looking up for {key} {value}: {reason}") from None
    return {f"{port}/{proto.lower()}" for port in range(first, last + 1)}


class Matcher:
    """The extra filters of one `ps`; the network records are read once."""

    def __init__(self, root: str, wanted: dict[str, list[str]]):
        self.root = root
        self.wanted = wanted
        self.publish = set().union(*(port_set("publish", v) for v in wanted.get("publish", ())))
        self.expose = set().union(*(port_set("expose", v) for v in wanted.get("expose", ())))
        self._networks = None

    def __call__(self, c, state: dict) -> bool:
        w = self.wanted
        if w.get("is-task") and "true" in w["is-task"]:
            return False  # no swarm: no container is a task
        if "volume" in w and not self._volume_match(state, w["volume"]):
            return False
        if "network" in w and not self._network_match(c, state, w["network"]):
            return False
        return not (self.publish or self.expose) or self._port_match(state)

    @staticmethod
    def _volume_match(state: dict, values: list[str]) -> bool:
        """A volume's name, a bind's source, or any mount's destination."""
        keys = set()
        for m in state.get("mounts") or ():
            keys.add(m.get("Name") or m.get("Source") or "")
            keys.add(m.get("Destination") or "")
        keys.discard("")
        return any(v in keys for v in values)

    def _network_match(self, c, state: dict, values: list[str]) -> bool:
        """A network's name, or a prefix of its id, of any network the container is on."""
        from pybuild.runtime.netconnect import networks_of

        if self._networks is None:
            from pybuild.runtime.netstore import NetworkStore

            self._networks = NetworkStore(self.root).list()
        on = networks_of(c, state, self._networks)
        for value in values:
            if value in on or any(net_id.startswith(value) for net_id in on.values() if net_id):
                return True
        return False

    def _port_match(self, state: dict) -> bool:
        """moby matches the PORTS of a running container: host ports against publish=,
        container ports against expose=."""
        from pybuild.cli.ps import port_pairs

        for host_port, container_port in port_pairs(state):
            if host_port in self.publish or container_port in self.expose:
                return True
        return False

"""A container's life on disk and in the foreground: containers/<id>/ (state.json,
config.json, upper/work/rootfs dirs, hosts files), a run through the built-in executor or an
OCI runtime, and the clean-up of whatever a killed pyrun left behind."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence

from pybuild.errors import ContainerError, PybuildError
from pybuild.runtime.identity import identity_from_layers
from pybuild.runtime.mounts import Rootfs, mount_stubs, remove_stubs, unmount_tree
from pybuild.runtime.names import names_of, release_name, reserve_generated, reserve_name
from pybuild.runtime.spec import ImageConfig, RunOptions, build_spec, limits_of

BUILTIN = "builtin"
_HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


def new_id() -> str:
    return os.urandom(32).hex()


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid`, so a recycled pid is not mistaken for ours."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _write_json(path: str, data: dict, durable: bool = True) -> None:
    """Temp file + rename: readers never see half a file. `durable=False` skips the fsync for
    run-time status (running, pid): after a power loss no process or mount survives anyway,
    and a kill -9 does not lose written pages."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.rename(tmp, path)


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _is_loopback_ns(line: str) -> bool:
    words = line.split()
    return (words[:1] == ["nameserver"] and len(words) > 1
            and (words[1].startswith("127.") or words[1] == "::1"))


def _resolv_conf(mode: str, host_text: str | None = None) -> str:
    """The container's resolv.conf for network `mode`. `host_text`: the host's file (read
    from /etc/resolv.conf by default)."""
    if host_text is None:
        try:
            with open("/etc/resolv.conf") as f:
                host_text = f.read()
        except OSError:
            return ""
    if mode == "host":
        return host_text
    # Docker drops loopback resolvers: they would point into the container itself.
    lines = [ln for ln in host_text.splitlines() if not _is_loopback_ns(ln)]
    if mode != "none" and not any(ln.split()[:1] == ["nameserver"] for ln in lines):
        # with a route out but no resolver left, Docker falls back to Google's (IPv4)
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(lines) + "\n"


def _joins_network(mode: str) -> bool:
    """bridge or a user network: a veth, an address, maybe a port proxy."""
    return mode not in ("none", "host")


class Container:
    """One container directory under `containers_dir`. Create it, then `run()` it."""

    def __init__(self, containers_dir: str, container_id: str):
        self.containers_dir = containers_dir
        self.id = container_id
        self.dir = os.path.join(containers_dir, container_id)

    # ---- layout
    @property
    def state_path(self) -> str:
        return os.path.join(self.dir, "state.json")

    def rootfs(self, lower_dirs: Sequence[str]) -> Rootfs:
        return Rootfs(tuple(lower_dirs), os.path.join(self.dir, "upper"),
                      os.path.join(self.dir, "work"), os.path.join(self.dir, "rootfs"))

    def state(self) -> dict:
        with open(self.state_path) as f:
            return json.load(f)

    def _save(self, state: dict, durable: bool = False) -> None:
        _write_json(self.state_path, state, durable)

    def update(self, **keys: object) -> dict:
        """Read, change and rewrite state.json (only the container's one writer at a time:
        its supervisor, or a pyrun verb while no supervisor runs)."""
        state = self.state()
        state.update(keys)
        self._save(state)
        return state

    # ---- creation
    @classmethod
    def create(cls, containers_dir: str, *, image: ImageConfig, lower_dirs: Sequence[str],
               options: RunOptions, image_ref: str = "", image_id: str = "",
               name: str | None = None, remove: bool = False, runtime: str = BUILTIN,
               all_capabilities: Sequence[str] = (), container_id: str | None = None,
               extra_state: Mapping[str, object] | None = None) -> Container:
        """`container_id`: an id chosen beforehand (its directory may already hold the
        image's private layers); by default a fresh one. `extra_state`: more state.json keys
        (mounts, tmpfs, anonymous_volumes from runtime/attach.py)."""
        if not lower_dirs:
            raise ContainerError("the image has no layers to run")
        if runtime != BUILTIN and _joins_network(options.network):
            # runc starts the process before pyrun could give it a veth
            raise ContainerError(
                f"--network {options.network} is not supported with --runtime {runtime} yet: "
                "use the builtin runtime, or --network none|host")
        c = cls(containers_dir, container_id or new_id())
        os.makedirs(containers_dir, 0o700, exist_ok=True)
        os.makedirs(c.dir, 0o700, exist_ok=container_id is not None)
        try:
            if name:
                reserve_name(containers_dir, name, c.id)
            else:  # as Docker: every container has a name
                name = reserve_generated(containers_dir, c.id)
            rootfs = c.rootfs(lower_dirs)
            for d in (rootfs.upper_dir, rootfs.work_dir, rootfs.target):
                os.mkdir(d, 0o755)
            host_net = options.network == "host"
            hostname = options.hostname or (os.uname().nodename if host_net else c.id[:12])
            etc = {"/etc/hostname": os.path.join(c.dir, "hostname"),
                   "/etc/hosts": os.path.join(c.dir, "hosts"),
                   "/etc/resolv.conf": os.path.join(c.dir, "resolv.conf")}
            _write_text(etc["/etc/hostname"], hostname + "\n")
            if host_net and os.path.exists("/etc/hosts"):
                shutil.copyfile("/etc/hosts", etc["/etc/hosts"])
            else:
                _write_text(etc["/etc/hosts"], _HOSTS)
            _write_text(etc["/etc/resolv.conf"], _resolv_conf(options.network))
            identity = identity_from_layers(options.user if options.user is not None
                                            else image.user, rootfs.layers())
            spec = build_spec(image, options, identity, rootfs=rootfs.target, hostname=hostname,
                              etc_files=etc, all_capabilities=all_capabilities)
            _write_json(os.path.join(c.dir, "config.json"), spec)
            c._save({
                "id": c.id, "name": name or "", "image": image_ref, "image_id": image_id,
                "created": time.time(), "status": "created", "exit_code": None,
                "runtime": runtime, "remove": remove, "lower_dirs": list(lower_dirs),
                "stdin_null": not options.interactive, "privileged": options.privileged,
                "stubs": mount_stubs(spec, rootfs.layers()),
                # the creating pyrun: if it dies before running a --rm container, the
                # next pyrun removes it
                "owner": {"pid": os.getpid(), "start": process_start(os.getpid())},
                "pid": None,
                "net_request": {"mode": options.network, "publish": list(options.publish),
                                "aliases": list(options.aliases),
                                "publish_all": options.publish_all,
                                "exposed": list(dict.fromkeys(
                                    (*image.exposed_ports, *options.expose)))},
                **(extra_state or {}),
            }, durable=True)
        except BaseException:
            c.remove()
            raise
        return c

    # ---- running
    def run(self, on_started: Callable[[int], None] | None = None,
            on_console: Callable[[int], None] | None = None,
            on_stopped: Callable[[], None] | None = None) -> int:
        """Run with this process's stdio (a foreground pyrun, or a detached container's
        supervisor whose stdio are pipes); returns the exit code (128+N when killed by
        signal N). `on_started(pid)` is called once the command runs, `on_console(fd)`
        with the pty master of a -t container (builtin runtime; valid until the run
        ends), `on_stopped()` once it has ended, before the clean-up (a health monitor
        stops there, before --rm removes the directory). Mounts are gone afterwards; with
        `remove` the directory is gone too."""
        state = self.state()
        with open(os.path.join(self.dir, "config.json")) as f:
            spec = json.load(f)
        rootfs = self.rootfs(state["lower_dirs"])
        state.update(status="running", started=time.time(), error="", pid=None,
                     start_failed=False,
                     owner={"pid": os.getpid(), "start": process_start(os.getpid())})
        self._save(state)
        code: int | None = None
        try:
            if state["runtime"] == BUILTIN:
                code = self._run_builtin(spec, rootfs, state, on_started, on_console)
            else:
                from pybuild.runtime import oci

                def started(pid: int) -> None:
                    self._record_pid(state, pid)
                    if on_started is not None:
                        on_started(pid)

                code = oci.run_bundle(state["runtime"], spec, rootfs, self.id,
                                      self.runtime_root(), stdin_null=state["stdin_null"],
                                      on_start=started)
            return code
        except PybuildError as e:
            state["error"] = str(e)
            state["start_failed"] = True  # set-up or exec failed: the command never ran
            code = e.exit_code
            raise
        finally:
            if on_stopped is not None:
                on_stopped()
            self._finish(state, code)

    def runtime_root(self) -> str:
        return os.path.join(self.containers_dir, ".runtime")

    def _record_pid(self, state: dict, pid: int) -> None:
        state.update(pid=pid, pid_start=process_start(pid))
        self._save(state)

    def _run_builtin(self, spec: dict, rootfs: Rootfs, state: dict,
                     on_started: Callable[[int], None] | None,
                     on_console: Callable[[int], None] | None = None) -> int:
        from pybuild.runtime import sandbox, stdio
        from pybuild.runtime.cgroups import Cgroup

        # a cgroup even without limits: stats, top, pause and exec find the container by it
        cgroup = Cgroup.create(self.id, limits_of(spec))
        state["cgroup"] = {"version": cgroup.version, "paths": cgroup.paths}
        self._save(state)
        devices_cg = None
        if not state.get("privileged"):
            from pybuild.runtime import devices

            devices_cg = devices.create(self.id)
            state["devices_cgroup"] = devices_cg
            self._save(state)
        with stdio.forward_signals() as forwarder:
            try:
                proc = sandbox.spawn(spec, rootfs, stdin_null=state["stdin_null"],
                                     cgroup_dirs=[*dict.fromkeys(cgroup.paths.values()),
                                                  *([devices_cg] if devices_cg else [])])
            except BaseException:
                cgroup.remove()
                if devices_cg is not None:
                    devices.remove(devices_cg)
                raise
            forwarder.target = proc.kill
            return self._attach(proc, spec, state, cgroup, devices_cg, on_started, on_console)

    def _attach(self, proc, spec: dict, state: dict, cgroup, devices_cg: str | None,
                on_started: Callable[[int], None] | None,
                on_console: Callable[[int], None] | None = None) -> int:
        from pybuild.runtime import devices, stdio

        master = None
        try:
            # before the command starts: its first fork is limited, no device is reachable
            if devices_cg is not None:
                devices.add(devices_cg, proc.pid)
            cgroup.add(proc.pid)
            if spec["process"].get("terminal"):
                master = proc.receive_console()
                if master is not None:
                    stdio.copy_winsize(master)
                    if on_console is not None:
                        on_console(master)
            self._connect(state, proc.pid, spec.get("hostname", ""))
            self._record_pid(state, proc.pid)
            proc.go()
            if on_started is not None:
                on_started(proc.pid)
            if master is not None:
                fd, master = master, None
                stdio.pump_pty(fd, not state["stdin_null"])
            code = proc.wait()
            # As Docker: any OOM kill in the container's cgroup marks it (the killed process
            # may be a child; pid 1 then usually exits 137 too)
            state["oom_killed"] = cgroup.oom_killed()
            return code
        except BaseException:
            proc.kill()
            cgroup.thaw_if_frozen()
            proc.wait()
            raise
        finally:
            if master is not None:
                os.close(master)
            cgroup.thaw_if_frozen()  # a paused container's processes die only once thawed
            state["paused"] = False
            cgroup.remove()
            if devices_cg is not None:
                devices.remove(devices_cg)

    # ---- networking (bridge and user networks; builtin runtime only)
    def network_store(self):
        from pybuild.runtime.netstore import NetworkStore

        return NetworkStore(os.path.dirname(os.path.abspath(self.containers_dir)))

    def _hosts_file(self, container_id: str) -> str | None:
        path = os.path.join(self.containers_dir, container_id, "hosts")
        return path if os.path.exists(path) else None

    def _connect(self, state: dict, pid: int, hostname: str) -> None:
        """Give the created (not yet started) process its network: veth, address, proxy."""
        req = state.get("net_request") or {}
        mode = req.get("mode", "none")
        if not _joins_network(mode):
            return
        from pybuild.runtime import netsetup, network

        store = self.network_store()
        state["network_joining"] = True  # a crash from here on leaves an endpoint to undo
        self._save(state)
        cn = netsetup.connect_container(
            store, mode, self.id, pid, name=state.get("name", ""),
            aliases=req.get("aliases", ()),
            publish=req.get("publish", ()), publish_all=req.get("publish_all", False),
            exposed=req.get("exposed", ()), default_host_ip="",
            proxy_log=os.path.join(self.dir, "proxy.log"))
        state["network"] = cn.to_json()
        self._save(state)
        from pybuild.runtime.netconnect import join_recorded

        # the networks `network connect` recorded (Docker keeps them in the config)
        extra = join_recorded(store, self.id, self.dir, pid, state.get("name", ""))
        hosts = os.path.join(self.dir, "hosts")
        # rewritten in place: the file is bind-mounted into the container
        with open(hosts, "r+") as f:
            f.write(_HOSTS + f"{cn.endpoint.ipv4}\t{hostname}\n")
            f.truncate()
        network.write_hosts_section(hosts, network.hosts_lines(store, self.id))
        for net_id in (cn.network_id, *extra):
            network.refresh_peers_hosts(store, net_id, self._hosts_file)

    def _disconnect(self, state: dict) -> None:
        """Undo `_connect` (idempotent): stop the proxy, remove the endpoint, tell the peers."""
        if not state.get("network_joining") and not state.get("network"):
            return
        from pybuild.errors import NetworkError
        from pybuild.runtime import netsetup, network

        store = self.network_store()
        cn = (netsetup.ContainerNetwork.from_json(state["network"])
              if state.get("network") else None)
        netsetup.disconnect_container(store, self.id, cn)
        if cn is not None and cn.network_id:
            try:
                network.refresh_peers_hosts(store, cn.network_id, self._hosts_file)
            except NetworkError:  # the network itself is gone
                pass
        state.pop("network_joining", None)
        state.pop("network", None)

    def _finish(self, state: dict, code: int | None) -> None:
        try:
            self._disconnect(state)
        finally:
            self._finish_fs(state, code)

    def _finish_fs(self, state: dict, code: int | None) -> None:
        unmount_tree(self.dir)  # only the OCI path mounts on the host; harmless otherwise
        if state.get("remove"):
            self.remove()
            return
        remove_stubs(os.path.join(self.dir, "upper"), state.get("stubs", ()))
        # as Docker: a command that never started leaves the container "created"
        state.update(status="created" if state.get("start_failed") else "exited",
                     exit_code=code if code is not None else 125,
                     finished=time.time(), owner=None, pid=None)
        self._save(state, durable=True)

    def remove(self, volumes: bool = False) -> None:
        """Delete the container; its anonymous volumes go too with `volumes` (rm -v) or
        when it was a --rm container, as in Docker."""
        unmount_tree(self.dir)
        try:
            state = self.state()
        except (OSError, ValueError):
            state = {}
        if state.get("name"):
            release_name(self.containers_dir, state["name"], self.id)
        for other, owner in names_of(self.containers_dir).items():  # renamed since
            if owner == self.id:
                release_name(self.containers_dir, other, self.id)
        shutil.rmtree(self.dir, ignore_errors=True)
        if state.get("anonymous_volumes") and (volumes or state.get("remove")):
            from pybuild.runtime.volumes import Volumes

            Volumes(os.path.dirname(os.path.abspath(self.containers_dir))).release(
                state["anonymous_volumes"])


def _alive(pid: int | None, start: str | None) -> bool:
    return bool(pid) and process_start(pid) == start

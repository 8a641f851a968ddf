"""Resource limits through cgroups, v1 (and hybrid) or v2: create a container's cgroup, set
memory/cpu/pids limits, add processes, read stats, detect OOM kills, freeze, kill, remove.

Where a cgroup lives: on v1 each controller has its own tree; the container's cgroup is made
under the *calling process's own* cgroup of that controller (`<own>/pybuild/<name>`), so limits
and accounting put on whoever runs pyrun still hold for its containers. On v2 the "no
internal processes" rule forbids enabling controllers in a cgroup that holds processes, so
the cgroup goes under the root of the cgroup2 mount (`/sys/fs/cgroup/pybuild/<name>`), as
Docker's cgroupfs driver does. `Cgroup.paths` is what to record in a container's state;
`Cgroup.load(paths)` finds it again from another process.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass

from pybuild.errors import ContainerError

PARENT = "pybuild"
CFS_PERIOD_US = 100_000          # Docker's period for --cpus
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "blkio")
V2_CONTROLLERS = ("memory", "cpu", "pids", "io")
_V1_UNLIMITED = 1 << 62          # anything above this in a v1 limit file means "no limit"


@dataclass(frozen=True)
class Limits:
    """Docker's flags, in bytes and cpus. None = leave the kernel's default (no limit)."""

    memory: int | None = None          # -m/--memory
    memory_swap: int | None = None     # --memory-swap: memory + swap; -1 = unlimited swap
    cpus: float | None = None          # --cpus
    pids: int | None = None            # --pids-limit; 0 or -1 = unlimited

    def swap_total(self) -> int | None:
        """memory+swap to set, Docker's rules: unset with -m -> twice -m; -1 -> unlimited."""
        if self.memory is None:
            if self.memory_swap not in (None, -1):
                raise ContainerError("--memory-swap needs --memory as well")
            return None
        if self.memory_swap is None:
            return 2 * self.memory
        if self.memory_swap == -1:
            return -1
        if self.memory_swap < self.memory:
            raise ContainerError(
                "Minimum memoryswap limit should be larger than memory limit, see usage")
        return self.memory_swap


def cpu_quota(cpus: float, period: int = CFS_PERIOD_US) -> tuple[int, int]:
    """--cpus -> (quota_us, period_us), as Docker computes it from NanoCPUs."""
    if cpus <= 0:
        raise ContainerError(f"invalid --cpus {cpus}: must be positive")
    nano = int(round(cpus * 1e9))
    quota = nano * period // 1_000_000_000
    if quota < 1000:  # the kernel's minimum quota
        raise ContainerError(f"--cpus {cpus} is too small (minimum 0.01)")
    return quota, period


def parse_bytes(text: str) -> int:
    """Docker's RAMInBytes: `32m`, `1g`, `512k`, `1024b`, plain bytes; -1 passes through."""
    s = text.strip().lower()
    if s == "-1":
        return -1
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    if s.endswith("ib") or (s.endswith("b") and len(s) > 1 and s[-2] in units):
        s = s[:-2] if s.endswith("ib") else s[:-1]
    mult = 1
    if s and s[-1] in units:
        mult = units[s[-1]]
        s = s[:-1]
    try:
        value = float(s)
    except ValueError:
        raise ContainerError(f"invalid size: {text!r}") from None
    if value < 0:
        raise ContainerError(f"invalid size: {text!r}")
    return int(value * mult)


@dataclass(frozen=True)
class Stats:
    memory_usage: int          # bytes charged now (v1 usage_in_bytes, v2 memory.current)
    memory_cache: int          # inactive file pages (Docker's CLI subtracts them)
    memory_limit: int | None   # None = no limit
    cpu_usage_ns: int
    pids_current: int
    oom_kills: int
    block_read: int = 0        # bytes read from block devices (v1 blkio, v2 io.stat)
    block_write: int = 0


# --- where the hierarchies are --------------------------------------------------------------

def _mounts(mountinfo: str = "/proc/self/mountinfo") -> tuple[dict[str, str], str | None]:
    """v1 controller -> mount point, and the cgroup2 mount point (or None)."""
    v1: dict[str, str] = {}
    v2 = None
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _src, opts = (right.split() + ["", "", ""])[:3]
            point = left.split()[4]
            if fstype == "cgroup2":
                v2 = v2 or point
            elif fstype == "cgroup":
                for opt in opts.split(","):
                    if opt in V1_CONTROLLERS:
                        v1.setdefault(opt, point)
    return v1, v2


def _own_cgroups(pid: int | str = "self") -> dict[str, str]:
    """controller (or "" for v2) -> cgroup path of `pid`, from /proc/<pid>/cgroup."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    return out


def detect() -> str:
    """"v2" (unified only), "hybrid" (v1 controllers and a cgroup2 tree) or "v1"."""
    v1, v2 = _mounts()
    if v1.get("memory") or v1.get("pids"):
        return "hybrid" if v2 else "v1"
    if v2:
        return "v2"
    raise ContainerError("no cgroup hierarchy is mounted")


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise ContainerError(f"cannot write {value!r} to {path}: {e.strerror}") from e


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _read_int(path: str, default: int = 0) -> int:
    try:
        text = _read(path).strip()
    except FileNotFoundError:
        return default
    return default if text == "max" else int(text)


def _keyed(path: str) -> dict[str, int]:
    """A flat-keyed file (`key value` lines): memory.stat, memory.events, oom_control."""
    out: dict[str, int] = {}
    try:
        text = _read(path)
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _io_v2(path: str) -> dict[str, int]:
    """io.stat: `MAJ:MIN rbytes=N wbytes=N ...` per device, summed."""
    read = write = 0
    try:
        text = _read(path)
    except FileNotFoundError:
        return {}
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                write += int(value)
    return {"block_read": read, "block_write": write}


def _blkio_v1(directory: str | None) -> dict[str, int]:
    """blkio.throttle.io_service_bytes: `MAJ:MIN Read N` lines (and Write, Total), as
    Docker reads them."""
    if directory is None:
        return {}
    read = write = 0
    for name in ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"):
        try:
            text = _read(os.path.join(directory, name))
        except (FileNotFoundError, PermissionError):
            continue
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                if parts[1] == "Read":
                    read += int(parts[2])
                elif parts[1] == "Write":
                    write += int(parts[2])
        break
    return {"block_read": read, "block_write": write}


class Cgroup:
    """One container's cgroup: `version` is "v1" or "v2"; `paths` maps a controller to its
    directory on v1, and "" to the one directory on v2."""

    def __init__(self, version: str, paths: Mapping[str, str]):
        self.version = version
        self.paths = dict(paths)

    # --- life ---------------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, limits: Limits | None = None, *, parent: str = PARENT,
               v2_root: str | None = None) -> Cgroup:
        """Make `<anchor>/<parent>/<name>` in every hierarchy we use and apply `limits`.
        `v2_root` forces the v2 code path under that directory (tests use a fake tree)."""
        if "/" in name or name in ("", ".", ".."):
            raise ContainerError(f"invalid cgroup name {name!r}")
        if v2_root is not None:
            cg = cls("v2", {"": os.path.join(v2_root, parent, name)})
            cg._make_v2(os.path.join(v2_root, parent))
        elif detect() == "v2":
            _v1, root = _mounts()
            cg = cls("v2", {"": os.path.join(root, parent, name)})
            cg._make_v2(os.path.join(root, parent))
        else:
            v1, _v2 = _mounts()
            own = _own_cgroups()
            paths = {}
            for ctrl in V1_CONTROLLERS:
                if ctrl in v1:
                    anchor = own.get(ctrl, "/").lstrip("/")
                    paths[ctrl] = os.path.join(v1[ctrl], anchor, parent, name)
            cg = cls("v1", paths)
            for path in dict.fromkeys(paths.values()):
                try:
                    os.makedirs(path)
                except FileExistsError:
                    raise ContainerError(f"cgroup {path} already exists") from None
                except OSError as e:
                    raise ContainerError(f"cannot create cgroup {path}: {e.strerror}") from e
        if limits is not None:
            try:
                cg.set_limits(limits)
            except ContainerError:
                cg.remove(timeout=1.0)
                raise
        return cg

    def _make_v2(self, parent_dir: str) -> None:
        root = os.path.dirname(parent_dir)
        os.makedirs(parent_dir, exist_ok=True)
        # Controllers must be enabled top-down: in the root for `pybuild/`, there for ours.
        for d in (root, parent_dir):
            available = _read(os.path.join(d, "cgroup.controllers")).split() \
                if os.path.exists(os.path.join(d, "cgroup.controllers")) else V2_CONTROLLERS
            wanted = [c for c in V2_CONTROLLERS if c in available]
            if wanted:
                _write(os.path.join(d, "cgroup.subtree_control"),
                       " ".join(f"+{c}" for c in wanted))
        try:
            os.mkdir(self.paths[""])
        except FileExistsError:
            raise ContainerError(f"cgroup {self.paths['']} already exists") from None

    @classmethod
    def load(cls, version: str, paths: Mapping[str, str]) -> Cgroup:
        """The cgroup recorded in a container's state (`version`, `paths`)."""
        return cls(version, paths)

    @classmethod
    def of_pid(cls, pid: int) -> Cgroup:
        """The cgroup a running process is in (for `stats`/`pause` on a live container)."""
        own = _own_cgroups(pid)
        v1, v2 = _mounts()
        if v1.get("memory") or v1.get("pids"):
            return cls("v1", {c: os.path.join(v1[c], own.get(c, "/").lstrip("/"))
                              for c in V1_CONTROLLERS if c in v1})
        return cls("v2", {"": os.path.join(v2, own.get("", "/").lstrip("/"))})

    def _dir(self, ctrl: str) -> str | None:
        return self.paths.get("") if self.version == "v2" else self.paths.get(ctrl)

    def _file(self, ctrl: str, v1_name: str, v2_name: str) -> str | None:
        d = self._dir(ctrl)
        if d is None:
            return None
        return os.path.join(d, v2_name if self.version == "v2" else v1_name)

    # --- limits -------------------------------------------------------------------------

    def set_limits(self, limits: Limits) -> None:
        swap_total = limits.swap_total()
        if limits.memory is not None:
            if limits.memory < 6 * 1024 * 1024:
                raise ContainerError("Minimum memory limit allowed is 6MB")
            if self.version == "v2":
                d = self.paths[""]
                _write(os.path.join(d, "memory.max"), str(limits.memory))
                swap = "max" if swap_total == -1 else str(swap_total - limits.memory)
                if os.path.exists(os.path.join(d, "memory.swap.max")) or swap != "0":
                    _write(os.path.join(d, "memory.swap.max"), swap)
            else:
                d = self.paths["memory"]
                _write(os.path.join(d, "memory.limit_in_bytes"), str(limits.memory))
                memsw = os.path.join(d, "memory.memsw.limit_in_bytes")
                if os.path.exists(memsw):  # only with swap accounting on
                    _write(memsw, str(swap_total))
        if limits.cpus is not None:
            quota, period = cpu_quota(limits.cpus)
            if self.version == "v2":
                _write(os.path.join(self.paths[""], "cpu.max"), f"{quota} {period}")
            else:
                d = self.paths["cpu"]
                _write(os.path.join(d, "cpu.cfs_period_us"), str(period))
                _write(os.path.join(d, "cpu.cfs_quota_us"), str(quota))
        if limits.pids is not None:
            value = "max" if limits.pids <= 0 else str(limits.pids)
            _write(self._file("pids", "pids.max", "pids.max"), value)

    def cpu_limit(self) -> tuple[int | None, int]:
        """(quota_us or None for no quota, period_us) as the kernel has them."""
        if self.version == "v2":
            quota, period = _read(os.path.join(self.paths[""], "cpu.max")).split()
            return (None if quota == "max" else int(quota)), int(period)
        d = self.paths["cpu"]
        quota = _read_int(os.path.join(d, "cpu.cfs_quota_us"), -1)
        return (None if quota < 0 else quota), _read_int(os.path.join(d, "cpu.cfs_period_us"))

    # --- processes ----------------------------------------------------------------------

    def add(self, pid: int) -> None:
        """Move `pid` into every hierarchy of this cgroup (before it starts the workload)."""
        for path in dict.fromkeys(self.paths.values()):
            _write(os.path.join(path, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        path = self._dir("pids") or self._dir("memory") or next(iter(self.paths.values()))
        try:
            return [int(p) for p in _read(os.path.join(path, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    # --- reading --------------------------------------------------------------------------

    def oom_kills(self) -> int:
        """How many processes the OOM killer took in this cgroup."""
        if self.version == "v2":
            return _keyed(os.path.join(self.paths[""], "memory.events")).get("oom_kill", 0)
        ctl = _keyed(os.path.join(self.paths["memory"], "memory.oom_control"))
        if "oom_kill" in ctl:  # kernels >= 4.13
            return ctl["oom_kill"]
        return 1 if ctl.get("under_oom") else 0

    def oom_killed(self) -> bool:
        return self.oom_kills() > 0

    def stats(self) -> Stats:
        if self.version == "v2":
            d = self.paths[""]
            mem_stat = _keyed(os.path.join(d, "memory.stat"))
            limit = _read_int(os.path.join(d, "memory.max"), -1)
            return Stats(
                memory_usage=_read_int(os.path.join(d, "memory.current")),
                memory_cache=mem_stat.get("inactive_file", 0),
                memory_limit=None if limit < 0 else limit,
                cpu_usage_ns=_keyed(os.path.join(d, "cpu.stat")).get("usage_usec", 0) * 1000,
                pids_current=_read_int(os.path.join(d, "pids.current")),
                oom_kills=self.oom_kills(),
                **_io_v2(os.path.join(d, "io.stat")),
            )
        mem = self.paths["memory"]
        mem_stat = _keyed(os.path.join(mem, "memory.stat"))
        limit = _read_int(os.path.join(mem, "memory.limit_in_bytes"))
        pids_dir = self.paths.get("pids")
        cpuacct = self.paths.get("cpuacct")
        return Stats(
            memory_usage=_read_int(os.path.join(mem, "memory.usage_in_bytes")),
            memory_cache=mem_stat.get("total_inactive_file", mem_stat.get("inactive_file", 0)),
            memory_limit=None if limit >= _V1_UNLIMITED else limit,
            cpu_usage_ns=_read_int(os.path.join(cpuacct, "cpuacct.usage")) if cpuacct else 0,
            pids_current=_read_int(os.path.join(pids_dir, "pids.current")) if pids_dir else 0,
            oom_kills=self.oom_kills(),
            **_blkio_v1(self.paths.get("blkio")),
        )

    # --- pause, kill, remove --------------------------------------------------------------

    def thaw_if_frozen(self) -> None:
        """Before killing: frozen v1 tasks take no signal, not even SIGKILL, until thawed."""
        try:
            if self.frozen():
                self.thaw()
        except (OSError, ContainerError):
            pass

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def frozen(self) -> bool:
        if self.version == "v2":
            return _read(os.path.join(self.paths[""], "cgroup.freeze")).strip() == "1"
        return _read(os.path.join(self.paths["freezer"], "freezer.state")).strip() == "FROZEN"

    def _set_frozen(self, frozen: bool, timeout: float = 5.0) -> None:
        if self.version == "v2":
            _write(os.path.join(self.paths[""], "cgroup.freeze"), "1" if frozen else "0")
            return
        if "freezer" not in self.paths:
            raise ContainerError("the freezer cgroup controller is not mounted")
        state = os.path.join(self.paths["freezer"], "freezer.state")
        want = "FROZEN" if frozen else "THAWED"
        _write(state, want)
        deadline = time.monotonic() + timeout
        # v1 passes through FREEZING while tasks stop; wait until the kernel says it is done.
        while _read(state).strip() != want:
            if time.monotonic() > deadline:
                raise ContainerError(f"cgroup did not become {want}")
            time.sleep(0.01)
            _write(state, want)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process in the cgroup; with SIGKILL, no fork can outrun it."""
        if self.version == "v2" and sig == signal.SIGKILL:
            kill_file = os.path.join(self.paths[""], "cgroup.kill")
            if os.path.exists(kill_file):
                _write(kill_file, "1")
                return
        freeze = sig == signal.SIGKILL and self.version == "v1" and "freezer" in self.paths
        if freeze:
            self.freeze()
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if freeze:
                self.thaw()

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the cgroup dirs once their processes are gone (EBUSY is retried)."""
        deadline = time.monotonic() + timeout
        for path in dict.fromkeys(self.paths.values()):
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise ContainerError(f"cannot remove cgroup {path}: {e.strerror}") from e
                    time.sleep(0.02)

    def exists(self) -> bool:
        return any(os.path.isdir(p) for p in self.paths.values())

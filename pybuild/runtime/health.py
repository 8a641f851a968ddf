"""Docker's container health checks: the HEALTHCHECK a container runs with (the image's,
overridden field by field by run/create flags), the probe (the check command exec'd into
the running container through runtime/exec.py, its output captured, killed at its timeout)
and the monitor thread a container's supervisor runs beside it, which keeps Docker's
State.Health (status, failing streak, the last five results) in health.json."""

from __future__ import annotations

import json
import os
import select
import threading
import time
from collections.abc import Mapping

from pybuild.errors import ContainerError, PybuildError

HEALTH_FILE = "health.json"
SECOND = 1_000_000_000
# moby daemon/health.go
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
MIN_DURATION = 1_000_000  # 1ms: Docker's containertypes.MinimumDuration
STATUSES = ("starting", "healthy", "unhealthy", "none")
_FIELDS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


def merge(user: Mapping | None, image: Mapping | None) -> dict | None:
    """The container's Healthcheck: the user's (flags) with the image's filling what the
    user left zero, as Docker's daemon merges them (moby daemon/commit.go merge)."""
    if user is None:
        return _omit_zero(image) if image else None
    out = dict(user)
    if image:
        if not out.get("Test"):
            out["Test"] = list(image.get("Test") or [])
        for key in (*_FIELDS, "Retries"):
            if not out.get(key):
                out[key] = image.get(key, 0)
    return _omit_zero(out)


def _omit_zero(config: Mapping) -> dict:
    """As Docker's JSON: every HealthConfig field is omitempty."""
    return {k: v for k, v in config.items() if v}


def validate(config: Mapping | None) -> None:
    """The daemon's checks (moby daemon/container.go validateHealthCheck)."""
    if not config:
        return
    for key in _FIELDS:
        value = config.get(key) or 0
        if value != 0 and value < MIN_DURATION:
            raise ContainerError(f"{key} in Healthcheck cannot be less than 1ms")
    if (config.get("Retries") or 0) < 0:
        raise ContainerError("Retries in Healthcheck cannot be negative")


def probe_argv(config: Mapping | None, shell: list[str] | None) -> list[str] | None:
    """The check's command line, or None when the container has no check (no Healthcheck,
    NONE, or a type Docker does not know)."""
    test = list((config or {}).get("Test") or ())
    if not test:
        return None
    if test[0] == "CMD":
        return test[1:] or None
    if test[0] == "CMD-SHELL":
        return [*(shell or ["/bin/sh", "-c"]), *test[1:]]
    return None


def _with_default(value: int | None, default: int) -> int:
    return value if value else default


def go_duration(ns: int) -> str:
    """Go's Duration.String() for the timeout message: 30s, 500ms, 1m30s, 1.5s."""
    if ns < SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size or unit == "ns":
                return _trim(ns, size) + unit
    hours, rest = divmod(ns, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    text = _trim(rest, SECOND) + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def _trim(ns: int, size: int) -> str:
    whole, frac = divmod(ns, size)
    digits = f"{frac:0{len(str(size)) - 1}d}".rstrip("0") if size > 1 else ""
    return f"{whole}.{digits}" if digits else str(whole)


# ---- State.Health on disk

def health_path(container_dir: str) -> str:
    return os.path.join(container_dir, HEALTH_FILE)


def read_health(container_dir: str) -> dict | None:
    """Docker's State.Health as last written, or None (no check, or never started)."""
    try:
        with open(health_path(container_dir)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def current_health(container_dir: str, active: bool) -> dict | None:
    """State.Health as `inspect` and `ps` see it: a container that is not running has no
    monitor, and Docker then reports it unhealthy (moby container/health.go
    CloseMonitorChannel), also after its keeper was killed."""
    health = read_health(container_dir)
    if health is not None and not active:
        health["Status"] = "unhealthy"
    return health


def status_word(health: dict | None) -> str:
    """The `health=` filter's value: starting, healthy, unhealthy, or none."""
    return (health or {}).get("Status") or "none"


def _write_health(container_dir: str, health: dict) -> None:
    path = health_path(container_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(health, f)
        os.rename(tmp, path)
    except FileNotFoundError:  # the container was removed meanwhile
        pass


# ---- the probe

def run_probe(init_pid: int, process: dict, timeout_ns: int,
              stopping: threading.Event | None = None) -> tuple[int, str] | None:
    """Exec `process` into the container of `init_pid`; (exit code, output) with Docker's
    -1 and message for a command that could not start or ran past its timeout. None when
    `stopping` was set meanwhile (the container is ending: no result)."""
    from pybuild.runtime import exec as rexec

    read_fd, write_fd = os.pipe()
    try:
        try:
            proc = rexec.start(init_pid, process, stdin_null=True, output_fd=write_fd)
        except PybuildError as e:
            return -1, str(e)
        finally:
            os.close(write_fd)
        output = bytearray()
        deadline = time.monotonic() + timeout_ns / SECOND
        reading = True
        while (code := proc.poll()) is None:
            if stopping is not None and stopping.is_set():
                proc.kill()
                proc.wait()
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                return -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})"
            if reading:
                ready, _, _ = select.select([read_fd], [], [], min(left, 0.05))
                if ready:
                    reading = _take(read_fd, output)
            else:  # EOF before exit: the command closed its output
                time.sleep(min(left, 0.02))
        os.set_blocking(read_fd, False)  # what is left; a daemon child may hold the pipe
        while reading:
            try:
                reading = _take(read_fd, output)
            except BlockingIOError:
                break
        return code, output[:MAX_OUTPUT].decode(errors="replace")
    finally:
        os.close(read_fd)


def _take(fd: int, output: bytearray) -> bool:
    data = os.read(fd, 65536)
    if len(output) < MAX_OUTPUT:
        output += data[:MAX_OUTPUT - len(output)]
    return bool(data)


# ---- the monitor

def monitor_for(container, state: dict) -> HealthMonitor | None:
    """A HealthMonitor when the container has a check to run (HEALTHCHECK, --health-*)."""
    config = state.get("healthcheck")
    if probe_argv(config, None) is None:
        return None
    return HealthMonitor(container, config)


class HealthMonitor:
    """Runs the check every interval while one run of the container lasts (start() when
    its process runs, stop() when it has exited), as moby's daemon/health.go monitor."""

    def __init__(self, container, config: Mapping):
        self.container = container
        self.config = dict(config)
        self.interval = _with_default(config.get("Interval"), DEFAULT_INTERVAL)
        self.timeout = _with_default(config.get("Timeout"), DEFAULT_TIMEOUT)
        self.start_period = _with_default(config.get("StartPeriod"), DEFAULT_START_PERIOD)
        self.start_interval = _with_default(config.get("StartInterval"),
                                            DEFAULT_START_INTERVAL)
        retries = config.get("Retries") or 0
        self.retries = retries if retries > 0 else DEFAULT_RETRIES
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.health: dict = {}
        self.started = 0.0

    def start(self) -> None:
        # a restart keeps the log and starts over (moby initHealthMonitor)
        old = read_health(self.container.dir) or {}
        self.health = {"Status": "starting", "FailingStreak": 0, "Log": old.get("Log") or []}
        self.started = time.time()
        _write_health(self.container.dir, self.health)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="health-monitor")
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.health["Status"] = "unhealthy"  # Docker's CloseMonitorChannel
        _write_health(self.container.dir, self.health)

    def _next_interval(self) -> int:
        in_start_period = time.time() - self.started < self.start_period / SECOND
        if in_start_period and self.health["Status"] == "starting":
            return self.start_interval
        return self.interval

    def _loop(self) -> None:
        while not self._stop.wait(self._next_interval() / SECOND):
            result = self._probe()
            if result is None:
                return
            self._record(*result)

    def _probe(self) -> tuple[float, float, int, str] | None:
        from pybuild.runtime import exec as rexec
        from pybuild.runtime.lookup import init_pid

        begun = time.time()
        c = self.container
        try:
            state = c.state()
            with open(os.path.join(c.dir, "config.json")) as f:
                spec = json.load(f)
        except (OSError, ValueError):
            return None
        shell = (state.get("image_config") or {}).get("Shell")
        argv = probe_argv(self.config, shell)
        pid = init_pid(c, state)
        if argv is None or pid is None:
            return None
        if state.get("paused"):  # joining a frozen cgroup would freeze the probe
            got: tuple[int, str] | None = (
                -1, f"Container {c.id} is paused, unpause the container before exec")
        else:
            process = rexec.exec_process(spec, rexec.ExecRequest(args=tuple(argv)))
            got = run_probe(pid, process, self.timeout, self._stop)
        if got is None:
            return None
        return begun, time.time(), got[0], got[1]

    def _record(self, begun: float, ended: float, code: int, output: str) -> None:
        """moby's handleProbeResult."""
        from pybuild.runtime.logfile import rfc3339nano

        h = self.health
        h["Log"] = [*h["Log"], {"Start": rfc3339nano(int(begun * SECOND)),
                                "End": rfc3339nano(int(ended * SECOND)),
                                "ExitCode": code, "Output": output}][-MAX_LOG_ENTRIES:]
        if code == 0:
            h["FailingStreak"] = 0
            h["Status"] = "healthy"
        else:
            # failures while starting, within the start period, do not count
            counts = not (h["Status"] == "starting"
                          and begun - self.started < self.start_period / SECOND)
            if counts:
                h["FailingStreak"] += 1
                if h["FailingStreak"] >= self.retries:
                    h["Status"] = "unhealthy"
        if not self._stop.is_set():
            _write_health(self.container.dir, h)

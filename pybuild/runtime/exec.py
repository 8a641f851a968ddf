"""`exec`: start a process inside a running container, as runc exec does. A short-lived
helper child joins the container's cgroups and namespaces (ipc, uts, net, cgroup, pid,
mnt: the mount namespace puts it at the container's root) and forks the command, which is
then a member of the container's pid namespace; the helper exits and the command is
re-parented to us (we are a child subreaper), so we wait for it like any child.

The command gets the container's environment, user, capabilities, rlimits and
no_new_privs, a terminal of the container's own devpts when asked (its master comes back
over a socket), and reports a set-up or exec failure over a close-on-exec pipe as the
sandbox does (EOF: exec succeeded)."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import socket
import struct
from dataclasses import dataclass

from pybuild.errors import ContainerError
from pybuild.runtime import linux as L
from pybuild.runtime.identity import resolve_user
from pybuild.runtime.sandbox import (
    _exit_code,
    _Failure,
    _lookup,
    _open_console,
    _raise_failure,
    _report,
    _set_capabilities,
    _switch_user,
)
from pybuild.runtime.spec import merge_env

# mnt last: after it the host's /proc paths are out of reach (the fds are opened before)
NAMESPACES = (("ipc", L.CLONE_NEWIPC), ("uts", L.CLONE_NEWUTS), ("net", L.CLONE_NEWNET),
              ("cgroup", L.CLONE_NEWCGROUP), ("pid", L.CLONE_NEWPID), ("mnt", L.CLONE_NEWNS))
PR_SET_CHILD_SUBREAPER = 36
# hierarchies whose membership is a limit or a guard: joining them must not fail
_ESSENTIAL = frozenset(("memory", "pids", "cpu", "cpuacct", "freezer", "devices", "blkio"))
_TIOCSCTTY = 0x540E


@dataclass(frozen=True)
class ExecRequest:
    args: tuple[str, ...]
    env: tuple[str, ...] = ()        # K=V from -e/--env-file, already resolved
    user: str | None = None          # -u; None: the container's user
    workdir: str | None = None       # -w; None: the container's working directory
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    privileged: bool = False


def exec_process(spec: dict, request: ExecRequest, all_capabilities=()) -> dict:
    """The process part of the exec'd command's config: the container's, changed as
    Docker's exec changes it. The user is resolved later, inside the container."""
    proc = spec["process"]
    env = list(proc.get("env", ()))
    if request.tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    env = merge_env(env, request.env)
    caps = dict(proc.get("capabilities", {}))
    if request.privileged:
        every = list(all_capabilities)
        caps = {"bounding": every, "effective": every, "permitted": every,
                "inheritable": [], "ambient": []}
    return {
        "args": list(request.args), "env": env, "cwd": request.workdir or proc.get("cwd") or "/",
        "user": proc.get("user", {}), "user_spec": request.user,
        "explicit_home": any(e.startswith("HOME=") for e in request.env),
        "capabilities": caps, "rlimits": proc.get("rlimits", []),
        "noNewPrivileges": bool(proc.get("noNewPrivileges")) and not request.privileged,
        "terminal": request.tty,
    }


def cgroup_procs_files(pid: int) -> list[tuple[str, bool]]:
    """The cgroup.procs file of every hierarchy `pid` is in (v1 controllers, named v1
    hierarchies, the v2 tree), and whether joining it matters (it holds a limit: a v1
    resource controller, or the v2 tree when there are no v1 ones). Writing there moves a
    process next to `pid`, as runc exec does."""
    mounts: list[tuple[frozenset, str]] = []
    v2 = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = right.split()
            if not fields:
                continue
            if fields[0] == "cgroup2":
                v2 = v2 or left.split()[4]
            elif fields[0] == "cgroup" and len(fields) > 2:
                mounts.append((frozenset(fields[2].split(",")), left.split()[4]))
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    v1_limits = any(set(ctrls.split(",")) & _ESSENTIAL for _hid, ctrls, _path in lines)
    files: dict[str, bool] = {}
    for _hid, ctrls, path in lines:
        if not ctrls:
            point, essential = v2, not v1_limits
        else:
            want = set(ctrls.split(","))
            point = next((p for opts, p in mounts if want <= opts), None)
            essential = bool(want & _ESSENTIAL)
        if point is not None:
            files[os.path.join(point, path.lstrip("/"), "cgroup.procs")] = essential
    return list(files.items())


class ExecProcess:
    """A started exec: its host pid, and the terminal master with -t."""

    def __init__(self, pid: int, master: int | None):
        self.pid = pid
        self.master = master
        self._exited: int | None = None

    def poll(self) -> int | None:
        """The exit code once the command has ended, else None (never blocks)."""
        if self._exited is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._exited = _exit_code(status)
        return self._exited

    def wait(self) -> int:
        while self._exited is None:
            try:
                _pid, status = os.waitpid(self.pid, 0)
            except ChildProcessError:  # -d: not ours to reap
                self._exited = 0
                break
            self._exited = _exit_code(status)
        return self._exited

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self._exited is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


def start(init_pid: int, process: dict, *, detach: bool = False,
          stdin_null: bool = True, output_fd: int | None = None) -> ExecProcess:
    """Run `process` (see exec_process) in the namespaces of the container whose first
    process is `init_pid`. Raises CommandNotFound/CommandNotExecutable/ContainerError for
    failures before the command runs. `output_fd`: the command's stdout and stderr (a health
    check's pipe), instead of ours."""
    ns_fds = []
    try:
        for name, flag in NAMESPACES:
            try:
                ns_fds.append((os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC),
                               flag))
            except FileNotFoundError:
                if name == "cgroup":  # a kernel without cgroup namespaces
                    continue
                raise ContainerError("the container's process is gone") from None
        cgroups = cgroup_procs_files(init_pid)
        return _spawn(ns_fds, cgroups, process, detach, stdin_null, output_fd)
    finally:
        for fd, _flag in ns_fds:
            os.close(fd)


def _spawn(ns_fds, cgroups, process, detach, stdin_null, output_fd=None) -> ExecProcess:
    err_r, err_w = os.pipe()
    pid_r, pid_w = os.pipe()
    parent_sock = child_sock = None
    if process["terminal"]:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if not detach:
        L.prctl(PR_SET_CHILD_SUBREAPER, 1)
    helper = os.fork()
    if helper == 0:
        try:
            os.close(err_r)
            os.close(pid_r)
            if parent_sock is not None:
                parent_sock.close()
            _helper(ns_fds, cgroups, process, detach, stdin_null, err_w, pid_w, child_sock,
                    output_fd)
        finally:
            os._exit(125)
    os.close(err_w)
    os.close(pid_w)
    if child_sock is not None:
        child_sock.close()
    try:
        raw = b""
        while chunk := os.read(pid_r, 16):
            raw += chunk
        os.waitpid(helper, 0)
        master = None
        if raw and parent_sock is not None:
            _msg, fds, _flags, _addr = socket.recv_fds(parent_sock, 16, 1)
            master = fds[0] if fds else None
        failure = b""
        while chunk := os.read(err_r, 65536):
            failure += chunk
    finally:
        os.close(pid_r)
        os.close(err_r)
        if parent_sock is not None:
            parent_sock.close()
    if not raw or failure:
        if raw and not detach:
            try:
                os.waitpid(struct.unpack("i", raw)[0], 0)
            except ChildProcessError:
                pass
        if master is not None:
            os.close(master)
        _raise_failure(failure or b'{"code": 125, "message": "exec helper failed"}')
    return ExecProcess(struct.unpack("i", raw)[0], master)


def _helper(ns_fds, cgroups, process, detach, stdin_null, err_w, pid_w, sock,
            output_fd=None) -> None:
    """The forked helper: join, fork the command, hand its pid over, exit. Never returns."""
    try:
        for path, essential in cgroups:
            try:
                with open(path, "w") as f:
                    f.write("0")
            except OSError:
                if essential:  # a named hierarchy (name=systemd) may refuse; a limit not
                    raise
        for fd, flag in ns_fds:
            L.setns(fd, flag)
        pid = os.fork()
        if pid == 0:
            os.close(pid_w)
            try:
                _command(process, detach, stdin_null, err_w, sock, output_fd)
            finally:
                os._exit(125)
        os.write(pid_w, struct.pack("i", pid))
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent
        _report(err_w, 125, f"cannot enter the container: {e}")
    os._exit(0)


def _command(process: dict, detach: bool, stdin_null: bool, err_w: int, sock,
             output_fd: int | None = None) -> None:
    """In the container's namespaces, at its root: set up and exec. Never returns."""
    step = "set-up"
    try:
        for sig in range(1, signal.NSIG):
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.chdir("/")
        user = process["user"]
        env = list(process["env"])
        if process["user_spec"] is not None:
            step = "user"
            identity = resolve_user(process["user_spec"], _read("/etc/passwd"),
                                    _read("/etc/group"))
            user = {"uid": identity.uid, "gid": identity.gid,
                    "additionalGids": [identity.gid, *identity.additional_gids]}
            if not process["explicit_home"]:
                env = merge_env(env, [f"HOME={identity.home}"])
        step = "rlimits"
        for rl in process["rlimits"]:
            resource.setrlimit(getattr(resource, rl["type"]), (rl["soft"], rl["hard"]))
        step = "terminal"
        os.setsid()
        if process["terminal"]:
            slave = _open_console(user.get("uid", 0), user.get("gid", 0), sock)
            fcntl.ioctl(slave, _TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            if slave > 2:
                os.close(slave)
        elif detach or stdin_null:
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2) if detach else (0,):
                os.dup2(null, fd)
            os.close(null)
        if output_fd is not None:
            for fd in (1, 2):
                os.dup2(output_fd, fd)
            os.close(output_fd)
        step = "capabilities"
        caps = process["capabilities"]
        _set_capabilities(caps)
        step = "user"
        _switch_user(user, caps)
        cwd = process["cwd"]
        try:
            os.chdir(cwd)
        except OSError as e:
            raise _Failure(126, f'chdir to cwd ("{cwd}") set in config.json failed: '
                                f"{e.strerror.lower()}") from None
        if process["noNewPrivileges"]:
            L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        env_map = dict(e.partition("=")[::2] for e in env if "=" in e)
        argv = process["args"]
        step = "exec"
        path = _lookup(argv[0], env_map)
        try:
            os.execve(path, argv, env_map)
        except OSError as e:
            raise _Failure(127 if e.errno == errno.ENOENT else 126,
                           f'exec: "{argv[0]}": {e.strerror.lower()}') from None
    except _Failure as f:
        _report(err_w, f.code, f.message)
    except ContainerError as e:  # the user is unknown in the container's passwd file
        _report(err_w, 126, str(e))
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent
        _report(err_w, 125, f"exec failed at {step}: {e}")
    os._exit(125)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None

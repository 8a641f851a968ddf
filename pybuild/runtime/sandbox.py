"""The built-in executor: runs an OCI runtime config in new namespaces over an overlay
rootfs, the user's command as pid 1 (as Docker does), with no external runtime.

Parent and child talk over three channels made before the fork: a CLOEXEC error pipe (the
child reports a set-up or exec failure as JSON; EOF means exec succeeded), a "go" pipe (the
child waits for it just before exec, so the parent records the pid first, and a child whose
parent died exits), and for a terminal a socket that carries the pty master back.

Everything the child runs must be imported at the top: after pivot_root the host's Python
library is out of reach."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pybuild.errors import CommandNotExecutable, CommandNotFound, ContainerError
from pybuild.runtime import linux as L
from pybuild.runtime.mounts import (
    Rootfs,
    locked_flags,
    mask_path,
    mount_entry,
    mount_overlay,
    readonly_path,
)

# runc's default devices: name, major, minor (all 0666, root-owned)
_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
            ("urandom", 1, 9), ("tty", 5, 0))
_DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
              ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"))
_TIOCSCTTY = 0x540E
_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914


class _Failure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _namespace_flags(spec: dict) -> int:
    flags = 0
    for ns in spec.get("linux", {}).get("namespaces", ()):
        if ns.get("path"):
            raise ContainerError(f"joining namespace paths is not supported: {ns['path']}")
        flags |= L.NAMESPACE_FLAGS[ns["type"]]
    return flags


# ---------------------------------------------------------------- child side


def _setup_devices(rootfs: str, spec: dict) -> None:
    dev = os.path.join(rootfs, "dev")
    if not any(m["destination"] == "/dev" for m in spec.get("mounts", ())):
        return
    old = os.umask(0)
    try:
        for name, major, minor in _DEVICES:
            path = os.path.join(dev, name)
            if os.path.lexists(path):
                os.unlink(path)
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    finally:
        os.umask(old)
    for target, name in _DEV_LINKS:
        if not os.path.lexists(os.path.join(dev, name)):
            os.symlink(target, os.path.join(dev, name))
    if os.path.exists("/proc/kcore") and not os.path.lexists(os.path.join(dev, "core")):
        os.symlink("/proc/kcore", os.path.join(dev, "core"))
    ptmx = os.path.join(dev, "ptmx")
    if os.path.lexists(ptmx):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)


def _pivot_root(rootfs: str) -> None:
    old = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(new)
    L.pivot_root(".", ".")
    os.fchdir(old)  # the old root now sits on top of "."; detach it so the host is unreachable
    L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
    L.umount2(".", L.MNT_DETACH)
    os.chdir("/")
    os.close(old)
    os.close(new)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        res = fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH", res[:18])[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | 1))


def _open_console(uid: int, gid: int, sock) -> int:
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, struct.pack("I", 0)))[0]
    slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
    os.fchown(slave, uid, gid)
    socket.send_fds(sock, [b"m"], [master])
    os.close(master)
    return slave


def _set_capabilities(caps: dict) -> None:
    bounding = set(caps.get("bounding", ()))
    for n in range(min(L.last_cap(), len(L.CAPABILITIES) - 1) + 1):
        if L.CAPABILITIES[n] not in bounding:
            L.prctl(L.PR_CAPBSET_DROP, n)


def _switch_user(user: dict, caps: dict) -> None:
    L.prctl(L.PR_SET_KEEPCAPS, 1)
    os.setgroups(list(user.get("additionalGids") or ()))
    os.setresgid(user.get("gid", 0), user.get("gid", 0), user.get("gid", 0))
    os.setresuid(user.get("uid", 0), user.get("uid", 0), user.get("uid", 0))
    L.prctl(L.PR_SET_KEEPCAPS, 0)
    L.capset(L.cap_mask(caps.get("effective", ())), L.cap_mask(caps.get("permitted", ())),
             L.cap_mask(caps.get("inheritable", ())))
    L.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_CLEAR_ALL)
    for name in caps.get("ambient", ()):
        L.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_RAISE, L.CAP_NUMBERS[name])


def _lookup(argv0: str, env: dict) -> str:
    """Go's exec.LookPath over the container's PATH, as runc does."""
    if "/" in argv0:
        try:
            os.stat(argv0)
        except OSError as e:
            raise _Failure(127, f'exec: "{argv0}": stat {argv0}: {e.strerror.lower()}') from None
        return argv0
    for d in (env.get("PATH") or "").split(":"):
        path = os.path.join(d or ".", argv0)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) and st.st_mode & 0o111:
            return path
    raise _Failure(127, f'exec: "{argv0}": executable file not found in $PATH')


def _child(spec: dict, rootfs: Rootfs, flags: int, err_w: int, go_r: int,
           sock, stdin_null: bool, stdio: tuple, cgroup_dirs: Sequence[str] = ()) -> None:
    """Runs in the forked child, already pid 1 of its pid namespace. Never returns."""
    step = "cgroups"
    try:
        for path in cgroup_dirs:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write("0")  # this process; before unshare, so the cgroup ns is rooted here
        step = "namespaces"
        for target, fd in enumerate(stdio):
            if fd is not None and fd != target:
                os.dup2(fd, target)
        for sig in range(1, signal.NSIG):
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        L.unshare(flags & ~L.CLONE_NEWPID)
        step = "mounts"
        L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
        mount_overlay(rootfs)
        root = rootfs.target
        for m in spec.get("mounts", ()):
            step = f"mount {m['destination']}"
            mount_entry(root, m)
        step = "devices"
        _setup_devices(root, spec)
        step = "pivot_root"
        _pivot_root(root)
        linux = spec.get("linux", {})
        step = "read-only paths"
        if spec.get("root", {}).get("readonly"):
            L.mount(None, "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | locked_flags("/"))
        for path in linux.get("readonlyPaths", ()):
            readonly_path(path)
        for path in linux.get("maskedPaths", ()):
            mask_path(path)
        step = "hostname"
        if spec.get("hostname") and flags & L.CLONE_NEWUTS:
            L.sethostname(spec["hostname"])
        if flags & L.CLONE_NEWNET:
            step = "loopback"
            _loopback_up()
        proc = spec["process"]
        step = "rlimits"
        for rl in proc.get("rlimits", ()):
            res = getattr(resource, rl["type"])
            resource.setrlimit(res, (rl["soft"], rl["hard"]))
        cwd = proc.get("cwd") or "/"
        step = f"working directory {cwd}"
        os.makedirs(cwd, 0o755, exist_ok=True)
        user = proc.get("user", {})
        step = "terminal"
        if proc.get("terminal"):
            slave = _open_console(user.get("uid", 0), user.get("gid", 0), sock)
            os.setsid()

            fcntl.ioctl(slave, _TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            if slave > 2:
                os.close(slave)
        else:
            os.setsid()  # out of the terminal's process group: signals come only via pyrun
            if stdin_null:
                null = os.open("/dev/null", os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
        step = "capabilities"
        caps = proc.get("capabilities", {})
        _set_capabilities(caps)
        step = "user"
        _switch_user(user, caps)
        step = f"chdir to cwd ({cwd})"
        os.chdir(cwd)
        if proc.get("noNewPrivileges"):
            L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
        # pdeathsig is reset by credential changes, so it is set last; then wait for "go":
        # EOF there means the parent is gone and nobody would reap or clean up after us.
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.read(go_r, 1) != b"g":
            os._exit(125)
        # The parent keeps its end open while it lives; a hang-up here means it died before
        # the death signal was armed, so nothing would ever reap or clean up after us.

        poller = select.poll()
        poller.register(go_r, select.POLLIN)
        if any(ev & select.POLLHUP for _fd, ev in poller.poll(0)):
            os._exit(125)
        env = dict(e.partition("=")[::2] for e in proc.get("env", ()) if "=" in e)
        argv = proc["args"]
        step = "exec"
        path = _lookup(argv[0], env)
        try:
            os.execve(path, argv, env)
        except OSError as e:
            code = 127 if e.errno == errno.ENOENT else 126
            raise _Failure(code, f'exec: "{argv[0]}": {e.strerror.lower()}') from None
    except _Failure as f:
        _report(err_w, f.code, f.message)
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent
        _report(err_w, 125, f"container set-up failed at {step}: {e}")
    os._exit(125)


def _report(fd: int, code: int, message: str) -> None:
    try:
        os.write(fd, json.dumps({"code": code, "message": message}).encode())
    finally:
        os._exit(code)


# ---------------------------------------------------------------- parent side


def _fork_in_new_pid_ns(new_pid: bool) -> int:
    """fork() with the child as pid 1 of a new pid namespace. Only this thread's
    pid_for_children is switched, and it is switched back at once."""
    if not new_pid:
        return os.fork()
    own = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        L.unshare(L.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            return 0
        L.setns(own, L.CLONE_NEWPID)
        return pid
    finally:
        os.close(own)


@dataclass
class SandboxProcess:
    """A started container process: not yet running the user's command until `go()`."""

    pid: int
    _err_r: int
    _go_w: int
    _sock: object | None  # socket.socket in terminal mode
    _exited: int | None = None

    def receive_console(self) -> int | None:
        """The pty master (terminal mode); None if the child failed before making it."""
        if self._sock is None:
            return None

        try:
            _msg, fds, _flags, _addr = socket.recv_fds(self._sock, 16, 1)
        finally:
            self._sock.close()
            self._sock = None
        return fds[0] if fds else None

    def go(self) -> None:
        """Let the child exec, then raise its set-up or exec failure, if any."""
        try:
            os.write(self._go_w, b"g")  # the pipe stays open until the child is reaped
        except BrokenPipeError:
            pass
        chunks = []
        while True:
            chunk = os.read(self._err_r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self._err_r)
        if chunks:
            self.wait()
            _raise_failure(b"".join(chunks))

    def poll(self) -> int | None:
        if self._exited is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._exited = _exit_code(status)
                self._close_go()
        return self._exited

    def wait(self) -> int:
        while self._exited is None:
            _pid, status = os.waitpid(self.pid, 0)
            self._exited = _exit_code(status)
        self._close_go()
        return self._exited

    def _close_go(self) -> None:
        if self._go_w >= 0:
            os.close(self._go_w)
            self._go_w = -1

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self._exited is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def abandon(self) -> None:
        """Close the go pipe without starting: the child exits on its own."""
        self._close_go()
        try:
            os.close(self._err_r)
        except OSError:
            pass
        if self._sock is not None:
            self._sock.close()


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _raise_failure(raw: bytes) -> None:
    try:
        info = json.loads(raw)
        code, message = int(info["code"]), str(info["message"])
    except (ValueError, KeyError, TypeError):
        code, message = 125, raw.decode(errors="replace")
    if code == 127:
        raise CommandNotFound(message)
    if code == 126:
        raise CommandNotExecutable(message)
    raise ContainerError(message)


def spawn(spec: dict, rootfs: Rootfs, *, stdin_null: bool = False,
          stdio: tuple[int | None, int | None, int | None] = (None, None, None),
          cgroup_dirs: Sequence[str] = ()) -> SandboxProcess:
    """Fork the container process; it sets itself up and waits for `go()` before exec.
    `stdio` gives fds to use as the container's 0, 1, 2 instead of ours. The child joins
    `cgroup_dirs` itself before it makes its namespaces, so its cgroup namespace is rooted
    at the container's cgroup (inside, /proc/self/cgroup shows `/`, as with runc)."""
    flags = _namespace_flags(spec)
    err_r, err_w = os.pipe()
    go_r, go_w = os.pipe()
    parent_sock = child_sock = None
    if spec["process"].get("terminal"):

        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = _fork_in_new_pid_ns(bool(flags & L.CLONE_NEWPID))
    except BaseException:
        for fd in (err_r, err_w, go_r, go_w):
            os.close(fd)
        raise
    if pid == 0:
        try:
            os.close(err_r)
            os.close(go_w)
            if parent_sock is not None:
                parent_sock.close()
            _child(spec, rootfs, flags, err_w, go_r, child_sock, stdin_null, stdio,
                   cgroup_dirs)
        finally:
            os._exit(125)
    os.close(err_w)
    os.close(go_r)
    if child_sock is not None:
        child_sock.close()
    return SandboxProcess(pid, err_r, go_w, parent_sock)

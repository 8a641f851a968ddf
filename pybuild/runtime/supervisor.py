"""The keeper of one detached container: a process of its own (double fork, new session, no
terminal) that outlives the pyrun which started it. Its stdio are pipes; it runs the
container through Container.run (the same path as a foreground run), writes what the
container prints to the json-file log, serves `attach` and `wait` on a unix socket in the
container dir (protocol: supervisor_link.py), and applies the restart policy with Docker's
back-off (restart.py)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

from pybuild.errors import PybuildError
from pybuild.runtime.restart import RestartPolicy, next_backoff
from pybuild.runtime.supervisor_link import (
    _HEADER,
    CLOSE_STDIN,
    EXIT,
    FAILURE,
    RESIZE,
    SOCKET,
    STDERR,
    STDIN,
    STDOUT,
    STOP_MARK,
    _dir_fd_path,
    read_frame,
)


class _Client:
    def __init__(self, sock: socket.socket, mode: str, stdin: bool, stdin_once: bool):
        self.sock, self.mode, self.stdin, self.stdin_once = sock, mode, stdin, stdin_once

    def send(self, kind: int, payload: bytes) -> bool:
        try:
            self.sock.sendall(_HEADER.pack(kind, len(payload)) + payload)
            return True
        except OSError:
            return False


class Supervisor:
    """Runs in the detached process. `serve()` returns when the container is done."""

    def __init__(self, containers_dir: str, container_id: str, ready_fd: int | None):
        from pybuild.runtime.container import Container

        self.container = Container(containers_dir, container_id)
        self.ready_fd = ready_fd
        self.clients: list[_Client] = []
        self.lock = threading.Lock()
        self.attached = threading.Event()
        self.stop_asked = False
        self._pump_lock = threading.Lock()
        self.master: int | None = None  # the pty master of a -t container, while it runs

    # -- reporting to the pyrun that launched us
    def _ready(self, report: dict) -> None:
        if self.ready_fd is None:
            return
        try:
            os.write(self.ready_fd, json.dumps(report).encode() + b"\n")
        except OSError:
            pass
        if "listening" not in report:
            os.close(self.ready_fd)
            self.ready_fd = None

    # -- stdio
    def _setup_stdio(self, interactive: bool) -> None:
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.in_w = None
        if interactive:
            in_r, self.in_w = os.pipe()
        else:
            in_r = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((in_r, 0), (out_w, 1), (err_w, 2)):
            os.dup2(fd, target)  # inheritable: the container gets these as its stdio
            os.close(fd)

    def _pump(self) -> None:
        streams = {self.out_r: ("stdout", STDOUT), self.err_r: ("stderr", STDERR)}
        while True:
            ready, _, _ = select.select(list(streams), [], [])
            with self._pump_lock:
                for fd in ready:
                    data = os.read(fd, 65536)
                    if not data:
                        continue
                    name, kind = streams[fd]
                    self.log.write(name, data)
                    self._broadcast(kind, data, modes=("attach",))

    def _drain(self) -> None:
        """Wait until the pump has taken everything the container wrote."""
        while True:
            with self._pump_lock:
                ready, _, _ = select.select([self.out_r, self.err_r], [], [], 0)
                if not ready:
                    self.log.flush()
                    return
            time.sleep(0.005)

    def _broadcast(self, kind: int, payload: bytes, modes: tuple[str, ...]) -> None:
        with self.lock:
            for client in list(self.clients):
                if client.mode in modes and not client.send(kind, payload):
                    self._drop(client)

    def _drop(self, client: _Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
        try:
            client.sock.close()
        except OSError:
            pass

    # -- the socket
    def _listen(self) -> socket.socket:
        dir_fd = os.open(self.container.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            path = _dir_fd_path(dir_fd, SOCKET)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            os.chmod(path, 0o600)
        finally:
            os.close(dir_fd)
        sock.listen(16)
        return sock

    def _accept_loop(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_client, args=(conn,), daemon=True).start()

    def _serve_client(self, conn: socket.socket) -> None:
        hello = b""
        while not hello.endswith(b"\n"):
            chunk = conn.recv(1)
            if not chunk:
                conn.close()
                return
            hello += chunk
        try:
            request = json.loads(hello)
        except ValueError:
            conn.close()
            return
        client = _Client(conn, request.get("mode", "attach"), bool(request.get("stdin")),
                         bool(request.get("stdin_once")))
        with self.lock:
            self.clients.append(client)
        if client.mode == "attach":
            self.attached.set()
        while True:  # stdin and window sizes from the client, until it hangs up
            got = read_frame(conn)
            if got is None:
                break
            kind, payload = got
            if kind == STDIN and client.stdin:
                self._write_stdin(payload)
            elif kind == RESIZE and len(payload) == 4:
                self._resize(payload)
            elif kind == CLOSE_STDIN and client.stdin and client.stdin_once:
                with self.lock:
                    if self.in_w is not None:
                        os.close(self.in_w)
                        self.in_w = None
        with self.lock:
            self._drop(client)

    def _write_stdin(self, data: bytes) -> None:
        fd = self.in_w
        if fd is None:
            return
        try:
            os.write(fd, data)
        except OSError:
            pass

    def _resize(self, payload: bytes) -> None:
        import fcntl

        rows, cols = struct.unpack(">HH", payload)
        master = self.master
        if master is None:
            return
        try:  # the kernel sends the container SIGWINCH
            fcntl.ioctl(master, 0x5414, struct.pack("HHHH", rows, cols, 0, 0))  # TIOCSWINSZ
        except OSError:
            pass

    # -- the container's lives
    def _stopped_by_user(self) -> bool:
        return self.stop_asked or os.path.exists(os.path.join(self.container.dir, STOP_MARK))

    def serve(self, wait_attach: bool) -> None:
        from pybuild.runtime.container import process_start
        from pybuild.runtime.logfile import LogWriter, NullLog, log_path
        from pybuild.runtime.logopts import LogConfig

        c = self.container
        state = c.state()
        with open(os.path.join(c.dir, "config.json")) as f:
            tty = bool(json.load(f)["process"].get("terminal"))
        self._setup_stdio(interactive=not state.get("stdin_null", True))
        logging = LogConfig.from_json(state.get("log_config"))
        self.log = LogWriter(log_path(c.dir, c.id), logging.max_size, logging.max_files,
                             logging.compress, self._log_attrs(logging, state)
                             ) if logging.readable else NullLog()
        server = self._listen()
        threading.Thread(target=self._accept_loop, args=(server,), daemon=True).start()
        threading.Thread(target=self._pump, daemon=True).start()
        me = {"pid": os.getpid(), "start": process_start(os.getpid())}
        c.update(supervisor=me, restart_count=0, tty=tty)
        if wait_attach:
            self._ready({"listening": True})
            self.attached.wait(30)
        from pybuild.runtime.health import monitor_for

        monitor = monitor_for(c, state)
        policy = RestartPolicy.from_json(state.get("restart_policy"))
        backoff = 0.0
        code = None
        try:
            while True:
                began = time.monotonic()
                try:
                    code = c.run(on_started=lambda pid: self._started(pid, monitor),
                                 on_console=self._set_master,
                                 on_stopped=monitor.stop if monitor else None)
                except PybuildError as e:
                    self.master = None
                    self._drain()
                    failure = json.dumps({"code": e.exit_code, "message": str(e)}).encode()
                    self._ready({"error": str(e), "code": e.exit_code})
                    self._broadcast(FAILURE, failure, modes=("attach", "wait"))
                    code = e.exit_code
                    break
                self.master = None
                self._drain()
                self._broadcast(EXIT, str(code).encode(), modes=("wait",))
                if not os.path.isdir(c.dir):  # --rm
                    break
                count = c.state().get("restart_count", 0)
                if not policy.should_restart(code, count, self._stopped_by_user()):
                    break
                backoff = next_backoff(backoff, time.monotonic() - began)
                c.update(status="restarting")
                if self._sleep_unless_stopped(backoff):
                    break
                c.update(restart_count=count + 1)
        finally:
            self._broadcast(EXIT, str(code if code is not None else 125).encode(),
                            modes=("attach",))
            with self.lock:
                for client in list(self.clients):
                    self._drop(client)
            server.close()
            if os.path.isdir(c.dir):
                try:
                    os.unlink(os.path.join(c.dir, SOCKET))
                except FileNotFoundError:
                    pass
                if c.state().get("status") == "restarting":
                    c.update(status="exited")
                c.update(supervisor=None)
            self.log.close()

    def _log_attrs(self, logging, state: dict) -> dict[str, str]:
        """The json-file entries' attrs (--log-opt labels=, env=, tag=)."""
        if not any(k in logging.options for k in ("labels", "labels-regex", "env",
                                                   "env-regex", "tag")):
            return {}
        from pybuild.runtime.lifecycle import name_of

        c = self.container
        with open(os.path.join(c.dir, "config.json")) as f:
            process = json.load(f)["process"]
        image_id = state.get("image_id") or ""
        info = {"ID": c.id[:12], "FullID": c.id, "Name": name_of(c, state),
                "ImageID": image_id[:12], "ImageFullID": image_id,
                "ImageName": state.get("image") or "",
                "Hostname": self._hostname(), "Command": " ".join(process.get("args", ()))}
        return logging.attrs(labels=state.get("labels") or {}, env=process.get("env", ()),
                             info=info)

    def _hostname(self) -> str:
        try:
            with open(os.path.join(self.container.dir, "hostname")) as f:
                return f.read().strip()
        except OSError:
            return ""

    def _started(self, pid: int, monitor) -> None:
        self._ready({"started": pid})
        if monitor is not None:
            monitor.start()

    def _set_master(self, fd: int) -> None:
        self.master = fd

    def _sleep_unless_stopped(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stopped_by_user():
                return True
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return self._stopped_by_user()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="pybuild.runtime.supervisor")
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--wait-attach", action="store_true")
    parser.add_argument("containers_dir")
    parser.add_argument("container_id")
    args = parser.parse_args(argv)
    if os.fork():  # the launcher reaps this first child; the supervisor is nobody's child
        os._exit(0)
    container_dir = os.path.join(args.containers_dir, args.container_id)
    # our own messages go to a file: fds 1 and 2 become the container's pipes
    sys.stderr = open(os.path.join(container_dir, "supervisor.log"), "a", buffering=1)  # noqa: SIM115
    if args.ready_fd is not None:
        os.set_inheritable(args.ready_fd, False)  # not for the container to keep
    sup = Supervisor(args.containers_dir, args.container_id, args.ready_fd)

    def on_term(_sig, _frame):  # between runs; during a run Container.run forwards it
        sup.stop_asked = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        sup.serve(args.wait_attach)
    except BaseException as e:  # noqa: BLE001 - nobody else would see it
        import traceback

        traceback.print_exc()
        sup._ready({"error": f"supervisor failed: {e}", "code": 125})
        os._exit(125)
    os._exit(0)


if __name__ == "__main__":
    main()

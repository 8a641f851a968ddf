"""External OCI runtimes (runc, crun): the same spec written as a bundle config.json, the
overlay rootfs mounted on the host for the runtime's sake, and its errors mapped to Docker's
exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

from pybuild.errors import CommandNotExecutable, CommandNotFound, ContainerError
from pybuild.runtime.mounts import Rootfs, mount_overlay, unmount_tree
from pybuild.runtime.stdio import forward_signals

KNOWN_RUNTIMES = ("runc", "crun")


def runtime_binary(name: str) -> str:
    path = shutil.which(name) if "/" not in name else name
    if not path or not os.access(path, os.X_OK):
        raise ContainerError(f"OCI runtime {name!r} not found in PATH (install the Debian package {name!r})")
    return path


def write_bundle(bundle: str, spec: dict) -> str:
    """config.json in `bundle`, written to a temp file and renamed."""
    path = os.path.join(bundle, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(spec, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return path


def _log_errors(log_path: str) -> list[str]:
    errors = []
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    if line.strip():
                        errors.append(line.strip())
                    continue
                if entry.get("level") in ("error", "fatal"):
                    errors.append(str(entry.get("msg", "")))
    except FileNotFoundError:
        pass
    return errors


def _raise_runtime_error(name: str, errors: list[str], code: int) -> None:
    message = errors[-1]
    text = " ".join(errors)
    if "hybrid" in text and "cgroup" in text:
        raise ContainerError(
            f"{name} cannot run containers on this host: {message} "
            "(cgroups are in hybrid v1/v2 mode; use --runtime runc or the built-in runtime)")
    if "executable file not found" in text or "no such file or directory" in text:
        raise CommandNotFound(f"{name}: {message}")
    if "permission denied" in text:
        raise CommandNotExecutable(f"{name}: {message}")
    raise ContainerError(f"{name} failed (exit {code}): {message}")


def run_bundle(name: str, spec: dict, rootfs: Rootfs, container_id: str, state_root: str,
               *, stdin_null: bool, on_start=None) -> int:
    """Run the container in the foreground with an external runtime; its exit code."""
    binary = runtime_binary(name)
    bundle = os.path.dirname(rootfs.target)
    spec = {**spec, "root": {**spec["root"], "path": rootfs.target}}
    write_bundle(bundle, spec)
    log_path = os.path.join(bundle, f"{name}.log")
    os.makedirs(state_root, 0o700, exist_ok=True)
    mount_overlay(rootfs)
    try:
        cmd = [binary, "--root", state_root, "--log", log_path, "--log-format", "json",
               "run", "--bundle", bundle, container_id]
        with forward_signals() as forwarder:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL if stdin_null else None, start_new_session=True)

            def send(sig: int) -> None:
                if sig == signal.SIGKILL:  # killing runc itself would orphan the container
                    subprocess.run([binary, "--root", state_root, "kill", container_id, "KILL"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   check=False)
                else:
                    _send(proc, sig)

            forwarder.target = send
            # runc sits in its own session: pass window-size changes on (it resizes the pty)
            old_winch = signal.signal(signal.SIGWINCH, lambda *_: _send(proc, signal.SIGWINCH))
            try:
                if on_start is not None:
                    on_start(proc.pid)
                code = proc.wait()
            except BaseException:
                send(signal.SIGKILL)
                proc.wait()
                raise
            finally:
                signal.signal(signal.SIGWINCH, old_winch)
        if code < 0:
            code = 128 - code
        errors = _log_errors(log_path)
        if errors:
            _raise_runtime_error(name, errors, code)
        return code
    finally:
        cleanup_runtime_state(binary, state_root, container_id)
        unmount_tree(rootfs.target)


def _send(proc: subprocess.Popen, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


def cleanup_runtime_state(binary: str, state_root: str, container_id: str) -> None:
    """`runc delete --force` when the runtime still knows the container (it died with us)."""
    if not os.path.isdir(os.path.join(state_root, container_id)):
        return
    subprocess.run([binary, "--root", state_root, "delete", "--force", container_id],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

"""`pyrun run -it` driven through a real pty (pexpect), and the same container run by the
built-in executor and by runc compared from the inside."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.integration.test_runtime import pyrun_argv
from tests.plugins.runtime import child_pids, mount_points

pytestmark = pytest.mark.root


@pytest.mark.parametrize("runtime", ["builtin", "runc"])
def test_interactive_tty_session(busybox_rootfs, tmp_path, runtime):
    pexpect = pytest.importorskip("pexpect")
    if runtime == "runc" and not shutil.which("runc"):
        pytest.skip("runc is not installed")
    before_mounts, before_pids = mount_points(tmp_path.parent), child_pids()
    argv = pyrun_argv(busybox_rootfs, "--rm", "-it", "--runtime", runtime, "sh")
    child = pexpect.spawn(argv[0], argv[1:], env={**os.environ, "PYBUILD_ROOT": str(tmp_path)},
                          encoding="utf-8", timeout=20, dimensions=(30, 100))
    try:
        child.expect("# ")
        child.sendline("tty; echo $TERM; stty size")
        child.expect("/dev/pts/0")
        child.expect("xterm")
        child.expect("30 100")
        child.setwinsize(40, 120)  # SIGWINCH on pyrun -> the container's pty
        child.sendline("stty size")
        child.expect("40 120")
        child.sendline("echo sleep''ing; sleep 100; echo after-sleep")
        child.expect("\nsleeping")  # the output, not the echoed command line
        time.sleep(0.3)
        child.sendcontrol("c")  # raw mode: Ctrl-C reaches the container's terminal
        child.expect("# ")
        child.sendline("echo al''ive")
        child.expect("\nalive")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5
    assert "after-sleep" not in (child.before or "")
    assert mount_points(tmp_path.parent) == before_mounts and child_pids() == before_pids
    assert [e for e in os.listdir(tmp_path / "containers") if len(e) == 64] == []


def test_tty_without_stdin(busybox_rootfs, tmp_path):
    res = subprocess.run(pyrun_argv(busybox_rootfs, "--rm", "-t", "sh", "-c", "tty; exit 3"),
                         env={**os.environ, "PYBUILD_ROOT": str(tmp_path)},
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert res.returncode == 3 and res.stdout.strip() == "/dev/pts/0"
    res = subprocess.run(pyrun_argv(busybox_rootfs, "--rm", "-it", "true"),
                         env={**os.environ, "PYBUILD_ROOT": str(tmp_path)},
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "the input device is not a TTY" in res.stderr


PROBE = (
    "id; hostname; pwd; env | sort; ulimit -n; "
    "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; "
    "awk '{for(i=7;i<=NF;i++) if($i==\"-\") {print $5, $6, $(i+1); break}}' /proc/self/mountinfo; "
    "ls -ln /dev | awk '{print $1, $3, $4, $5, $6, $NF}'; ls /sys/class/net; "
    "cat /etc/hosts /etc/resolv.conf; echo data > /data/f && cat /data/f; "
    # the devices cgroup: a node for /dev/kmsg (c 1:11, not in runc's list) can be made but
    # not opened; /dev/zero can
    "mknod /tmp/kmsg c 1 11 && ( exec 3</tmp/kmsg ) 2>/dev/null && echo kmsg-open "
    "|| echo kmsg-denied; head -c1 /dev/zero | wc -c"
)


@pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed (Makefile DEB_PACKAGES)")
def test_builtin_and_runc_see_the_same_container(busybox_rootfs, tmp_path):
    """Our spec is a valid OCI config: runc runs it and the process sees the same world."""
    data = tmp_path / "data"
    outputs = {}
    for runtime in ("builtin", "runc"):
        before = mount_points(tmp_path.parent)
        args = ["--rm", "-h", "same", "-u", "0:0", "-e", "X=1", "-w", "/srv", "-v",
                f"{data}:/data", "--runtime", runtime, "sh", "-c", PROBE]
        res = subprocess.run(pyrun_argv(busybox_rootfs, *args),
                             env={**os.environ, "PYBUILD_ROOT": str(tmp_path / runtime)},
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert mount_points(tmp_path.parent) == before
        outputs[runtime] = res.stdout
    assert "uid=0(root) gid=0(root)" in outputs["builtin"]
    assert "/dev/mqueue" in outputs["builtin"] and "CapBnd:\t00000000a80425fb" in outputs["builtin"]
    assert "kmsg-denied" in outputs["builtin"]
    assert outputs["builtin"] == outputs["runc"]


def test_crun_failure_is_explained(busybox_rootfs, tmp_path):
    """crun refuses hybrid cgroups (MACHINE.md); the error says so. On a host where crun
    works the container simply runs."""
    before = mount_points(tmp_path.parent)
    res = subprocess.run(pyrun_argv(busybox_rootfs, "--rm", "--runtime", "crun", "true"),
                         env={**os.environ, "PYBUILD_ROOT": str(tmp_path)},
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if not shutil.which("crun"):
        assert res.returncode == 125 and "OCI runtime 'crun' not found" in res.stderr
    elif res.returncode != 0:
        assert res.returncode == 125
        assert "crun cannot run containers on this host" in res.stderr
        assert "hybrid" in res.stderr and "use --runtime runc" in res.stderr
    assert mount_points(tmp_path.parent) == before
    assert [e for e in os.listdir(tmp_path / "containers") if len(e) == 64] == []


def test_privileged_reaches_devices_unprivileged_does_not(busybox_rootfs, tmp_path):
    if not os.path.exists("/dev/kmsg"):
        pytest.skip("no /dev/kmsg on this host")
    probe = ("mknod /tmp/kmsg c 1 11 && ( exec 3</tmp/kmsg ) 2>/dev/null && echo open "
             "|| echo denied")
    seen = []
    for flags in ((), ("--privileged",)):
        res = subprocess.run(pyrun_argv(busybox_rootfs, "--rm", *flags, "sh", "-c", probe),
                             env={**os.environ, "PYBUILD_ROOT": str(tmp_path)},
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        seen.append(res.stdout.strip())
    assert seen == ["denied", "open"]

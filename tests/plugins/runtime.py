"""Runtime fixtures: a busybox rootfs made from Debian's busybox-static (no store needed),
and snapshots of the host's mounts and processes to prove nothing is left behind."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

from pybuild.image.bootstrap import GROUP, PASSWD

BUSYBOX = "/bin/busybox"


def make_busybox_rootfs(dest: str | os.PathLike) -> pathlib.Path:
    """A minimal busybox image rootfs: /bin/busybox, its applet links, /etc/passwd, group."""
    root = pathlib.Path(dest)
    for d in ("bin", "etc", "dev", "proc", "sys", "tmp", "root", "home", "var/www", "usr/bin",
              "usr/sbin", "sbin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "root").chmod(0o700)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    out = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True)
    for rel in out.stdout.split():
        link = root / rel
        if link.name == "busybox" or os.path.lexists(link):
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(root / "bin" / "busybox", link.parent))
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def mount_points(under: str | os.PathLike) -> set[str]:
    """Mount points at or below `under` (a test's own tmp dir: other tests running at the
    same time may mount elsewhere in the host's namespace)."""
    prefix = str(under).rstrip("/")
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f}
    return {p for p in points if p == prefix or p.startswith(prefix + "/")}


def child_pids() -> set[int]:
    """Every process whose ancestry reaches this test process."""
    me = os.getpid()
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = set()
    for pid in parents:
        p, hops = pid, 0
        while p and p != me and hops < 64:
            p, hops = parents.get(p, 0), hops + 1
        if p == me and pid != me:
            found.add(pid)
    return found


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> pathlib.Path:
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (Makefile DEB_PACKAGES)")
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")

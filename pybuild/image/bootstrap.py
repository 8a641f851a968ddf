"""Offline base images made from the host: a minimal busybox rootfs written as one
deterministic layer tar, and the image config that goes with it."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from pybuild.errors import ImageError
from pybuild.image.config import ContainerConfig, HistoryEntry, ImageConfig, rfc3339

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:8:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
nobody:x:65534:
"""
SHADOW_USERS = ("root", "daemon", "bin", "sys", "sync", "mail", "www-data", "operator", "nobody")

# directory -> mode; /tmp is sticky and world-writable like every distribution's
DIRECTORIES = {
    "bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
    "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
    "usr/sbin": 0o755, "var": 0o755, "var/spool": 0o755, "var/spool/mail": 0o755,
    "var/www": 0o755, "var/tmp": 0o1777,
}


@dataclass(frozen=True)
class Entry:
    """One tar member: kind is 'dir', 'file' (data or source path) or 'symlink'."""

    path: str
    kind: str
    mode: int = 0o644
    data: bytes = b""
    source: str | None = None
    target: str = ""


def find_busybox(path: str | None = None) -> str:
    """A statically linked busybox on the host (Debian's busybox-static)."""
    candidates = (path,) if path else BUSYBOX_CANDIDATES
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    found = shutil.which("busybox")
    if found and not path:
        return found
    raise ImageError(
        "no busybox binary found on this host: install Debian's busybox-static "
        "(apt-get install busybox-static)"
    )


def ensure_busybox() -> str:
    """find_busybox, installing busybox-static with apt-get first when root and it is missing."""
    try:
        return find_busybox()
    except ImageError:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "busybox-static"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise ImageError(f"apt-get could not install busybox-static: {r.stderr.strip()[-400:]}")
    return find_busybox()


def applets(busybox: str) -> list[str]:
    """Install paths of every applet (`busybox --list-full`), relative, sorted."""
    r = subprocess.run([busybox, "--list-full"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        raise ImageError(f"{busybox} --list-full failed: is it a full busybox build?")
    out = sorted({line.strip().lstrip("/") for line in r.stdout.splitlines() if line.strip()})
    return [p for p in out if p != "bin/busybox" and ".." not in p.split("/")]


def busybox_entries(busybox: str) -> list[Entry]:
    entries = [Entry(d, "dir", mode) for d, mode in DIRECTORIES.items()]
    entries.append(Entry("bin/busybox", "file", 0o755, source=busybox))
    seen_dirs = set(DIRECTORIES)
    for path in applets(busybox):
        parent = os.path.dirname(path)
        while parent and parent not in seen_dirs:
            entries.append(Entry(parent, "dir", 0o755))
            seen_dirs.add(parent)
            parent = os.path.dirname(parent)
        entries.append(Entry(path, "symlink", 0o777, target="/bin/busybox"))
    shadow = "".join(f"{u}:{'*' if u != 'root' else ''}:10933:0:99999:7:::\n" for u in SHADOW_USERS)
    entries += [
        Entry("etc/passwd", "file", 0o644, PASSWD.encode()),
        Entry("etc/group", "file", 0o644, GROUP.encode()),
        Entry("etc/shadow", "file", 0o640, shadow.encode()),
        Entry("etc/hostname", "file", 0o644, b"busybox\n"),
        Entry("etc/hosts", "file", 0o644, b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        Entry("etc/nsswitch.conf", "file", 0o644, b"hosts: files dns\npasswd: files\ngroup: files\n"),
        Entry("etc/resolv.conf", "file", 0o644, b""),
        Entry("etc/os-release", "file", 0o644,
              b'NAME="BusyBox"\nID=busybox\nPRETTY_NAME="BusyBox (pybuild bootstrap)"\n'),
    ]
    return entries


def write_tar(entries: Iterable[Entry], out: BinaryIO, mtime: int) -> None:
    """A deterministic tar: sorted paths, uid/gid 0, fixed mtime, no user names, PAX-free."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for e in sorted(entries, key=lambda e: e.path):
            info = tarfile.TarInfo(e.path)
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = e.mode, mtime, 0, 0, "", ""
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e.target
                tar.addfile(info)
            elif e.source is not None:
                with open(e.source, "rb") as f:
                    info.size = os.fstat(f.fileno()).st_size
                    tar.addfile(info, f)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))


def layer_mtime(busybox: str) -> int:
    """The busybox binary's mtime (stable per host), clamped by SOURCE_DATE_EPOCH."""
    t = int(os.stat(busybox).st_mtime)
    sde = os.environ.get("SOURCE_DATE_EPOCH", "")
    if sde.isdigit():
        t = min(t, int(sde))
    return t


def busybox_version(busybox: str) -> str:
    r = subprocess.run([busybox], capture_output=True, text=True)
    first = (r.stdout or r.stderr).splitlines()[0] if (r.stdout or r.stderr) else "BusyBox"
    return first.split(" multi-call")[0].strip()


def busybox_config(diff_id: str, created: int, version: str) -> ImageConfig:
    when = rfc3339(created)
    return ImageConfig.new(
        created=when,
        config=ContainerConfig(env=(DEFAULT_PATH,), cmd=("sh",)),
        diff_ids=(diff_id,),
        history=(
            HistoryEntry(created=when, created_by=f"pyrun bootstrap busybox ({version})",
                         comment="host busybox-static with its applet links"),
            HistoryEntry(created=when, created_by='CMD ["sh"]', empty_layer=True),
        ),
    )

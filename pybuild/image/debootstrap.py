"""`pyrun bootstrap debian:SUITE`: a Debian base image made with debootstrap from a Debian
archive (the host's apt mirror by default); a clear error when the archive is unreachable."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

from pybuild.errors import ImageError
from pybuild.image import layers, snapshots
from pybuild.image import reference as refs
from pybuild.image.config import ContainerConfig, HistoryEntry, ImageConfig, rfc3339
from pybuild.image.images import Images

DEFAULT_MIRROR = "http://deb.debian.org/debian"
_SUITE = re.compile(r"^[a-z][a-z0-9-]*$")


def host_mirror() -> str:
    """The first Debian archive URI in the host's apt sources, else deb.debian.org."""
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        m = re.search(r"^URIs:\s*(\S+)", text, re.M) or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M)
        if m and m.group(1).startswith(("http://", "https://")):
            return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def check_reachable(mirror: str, suite: str, timeout: float = 15) -> None:
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            r.read(64)
    except urllib.error.HTTPError as e:
        raise ImageError(f"the Debian archive at {mirror} has no suite {suite!r} (HTTP {e.code} for {url})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ImageError(
            f"the Debian archive at {mirror} is not reachable ({reason}): "
            "bootstrap debian needs network access to it (use --mirror for another one, "
            "or `bootstrap busybox`, which works offline)"
        ) from None


def ensure_debootstrap() -> str:
    found = shutil.which("debootstrap") or (os.path.exists("/usr/sbin/debootstrap") and "/usr/sbin/debootstrap")
    if found:
        return found
    if os.geteuid() != 0:
        raise ImageError("debootstrap is not installed (apt-get install debootstrap, as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise ImageError(f"apt-get could not install debootstrap: {r.stderr.strip()[-400:]}")
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


def bootstrap_debian(images: Images, suite: str, ref: str | None = None, mirror: str | None = None,
                     variant: str = "minbase") -> str:
    if not _SUITE.match(suite):
        raise ImageError(f"invalid Debian suite {suite!r}")
    tag = str(refs.parse_tagged(ref or f"debian:{suite}"))
    mirror = (mirror or host_mirror()).rstrip("/")
    check_reachable(mirror, suite)
    if os.geteuid() != 0:
        raise ImageError("bootstrap debian needs root (debootstrap creates device nodes and owners)")
    tool = ensure_debootstrap()
    store = images.store
    with store.hold():
        stage = tempfile.mkdtemp(prefix="debootstrap-", dir=store.tmp_dir)
        try:
            rootfs = os.path.join(stage, "fs")
            r = subprocess.run([tool, f"--variant={variant}", suite, rootfs, mirror],
                               capture_output=True, text=True)
            if r.returncode != 0:
                tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
                raise ImageError(f"debootstrap {suite} failed: " + " / ".join(tail))
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                d = os.path.join(rootfs, cache)
                for name in os.listdir(d) if os.path.isdir(d) else ():
                    p = os.path.join(d, name)
                    if os.path.isfile(p):
                        os.unlink(p)
            layer = layers.commit_dir(store, rootfs, None)
        finally:
            with contextlib.suppress(FileNotFoundError):
                snapshots.remove_tree(stage)
        now = rfc3339()
        config = ImageConfig.new(
            created=now,
            config=ContainerConfig(env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
                                   cmd=("bash",)),
            diff_ids=(layer.diff_id,),
            history=(HistoryEntry(created=now, created_by=f"debootstrap --variant={variant} {suite} {mirror}"),
                     HistoryEntry(created=now, created_by='CMD ["bash"]', empty_layer=True)),
        )
        return images.put(config.to_bytes(), tags=[tag])

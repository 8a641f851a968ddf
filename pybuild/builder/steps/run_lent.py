"""The mounts a RUN step borrows from the build rather than the image: `type=secret` (read
when the step runs, written to a private tmpfs outside the step's dirs, bound read-only, or
put in one variable of the step's env) and `type=ssh` (the build's agent socket bound in)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pybuild.builder.secrets import SecretSource, read_secret
from pybuild.errors import BuildError

if TYPE_CHECKING:
    from pybuild.builder.steps.run import RunPlan

__all__ = ["lent_mounts"]


def lent_mounts(plan: RunPlan, scratch_dir: str, env: list[str], undo: list,
                 secrets: Mapping[str, SecretSource], ssh_sockets: Mapping[str, str]) -> dict:
    """Binds of the secrets and ssh agents a step mounts. A secret is written to a tmpfs
    of its own outside the step's dirs (never to disk, never into the upper dir), with the
    mount's mode and owner; one that is missing is skipped unless `required`."""
    from pybuild.runtime.spec import BindMount

    binds = {}  # mount index -> its bind, so every bind keeps the Dockerfile's order
    tmpfs = ""
    for i, m in enumerate(plan.mounts):
        if m.kind == "ssh":
            sock = ssh_sockets.get(m.source)
            if sock is None:
                if m.required:
                    raise BuildError(f'no SSH key "{m.source}" forwarded from the client')
                continue
            binds[i] = BindMount(sock, m.target, readonly=True)
        elif m.kind == "secret":
            source = secrets.get(m.source)
            data = None if source is None else read_secret(source)
            if data is None:
                if m.required:
                    raise BuildError(f"secret {m.source}: not found")
                continue
            if m.env:
                env.append(f"{m.env}={data.decode('utf-8', 'replace')}")
            if not m.target:
                continue
            if not tmpfs:
                tmpfs = secret_tmpfs(scratch_dir, undo)
            host = os.path.join(tmpfs, f"secret-{i}")
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
            try:
                os.write(fd, data)
                os.fchown(fd, m.uid, m.gid)
                os.fchmod(fd, m.mode)
            finally:
                os.close(fd)
            binds[i] = BindMount(host, m.target, readonly=True)
    return binds


def secret_tmpfs(scratch_dir: str, undo: list) -> str:
    from pybuild.runtime import linux

    path = os.path.join(scratch_dir, "secrets")
    os.makedirs(path, 0o700)
    linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                "mode=0700,size=16m")
    undo.append(lambda: linux.umount2(path, linux.MNT_DETACH))
    return path

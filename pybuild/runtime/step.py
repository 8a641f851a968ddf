"""A build step's container: one command over a parent's layer dirs, its writes landing in
an upper dir the builder owns (that upper dir becomes the step's layer)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pybuild.runtime.container import _HOSTS, _resolv_conf, new_id
from pybuild.runtime.identity import identity_from_layers
from pybuild.runtime.mounts import Rootfs, mount_stubs, remove_stubs
from pybuild.runtime.spec import BindMount, ImageConfig, RunOptions, build_spec

BUILD_HOSTNAME = "buildkitsandbox"  # what BuildKit calls a RUN step's host


def run_step(
    *,
    lower_dirs: Sequence[str],
    upper_dir: str,
    work_dir: str,
    scratch_dir: str,
    argv: Sequence[str],
    env: Sequence[str] = (),
    user: str = "",
    workdir: str = "/",
    network: str = "host",
    binds: Sequence[BindMount] = (),
    hostname: str = BUILD_HOSTNAME,
    stdout: int | None = None,
    stderr: int | None = None,
    runtime: str = "builtin",
) -> int:
    """Run `argv` (already in exec form: a shell-form RUN is ["/bin/sh", "-c", "..."]) with
    exactly `env` (plus PATH/HOSTNAME/HOME defaults when absent). `upper_dir` and `work_dir`
    must exist on the same filesystem; `scratch_dir` (created if missing) holds the mount
    point and the /etc/hosts, /etc/resolv.conf files. stdin is /dev/null; stdout/stderr are
    fds (default: ours). Returns the command's exit code; raises CommandNotFound (127),
    CommandNotExecutable (126) or ContainerError (125, set-up). Mount points the command
    needed but the image lacks are removed from `upper_dir` afterwards."""
    os.makedirs(scratch_dir, 0o700, exist_ok=True)
    rootfs = Rootfs(tuple(lower_dirs), upper_dir, work_dir, os.path.join(scratch_dir, "rootfs"))
    os.makedirs(rootfs.target, 0o755, exist_ok=True)
    etc = {"/etc/hosts": os.path.join(scratch_dir, "hosts"),
           "/etc/resolv.conf": os.path.join(scratch_dir, "resolv.conf")}
    with open(etc["/etc/hosts"], "w") as f:
        f.write(_HOSTS)
    with open(etc["/etc/resolv.conf"], "w") as f:
        f.write(_resolv_conf(network == "host"))
    opts = RunOptions(args=tuple(argv), entrypoint="", env=tuple(env), workdir=workdir or "/",
                      user=user, hostname=hostname, network=network, binds=tuple(binds))
    layers = rootfs.layers()
    identity = identity_from_layers(user, layers)
    spec = build_spec(ImageConfig(), opts, identity, rootfs=rootfs.target, hostname=hostname,
                      etc_files=etc)
    stubs = mount_stubs(spec, layers)
    try:
        if runtime == "builtin":
            from pybuild.runtime import devices, sandbox

            devices_cg = devices.create(f"step-{new_id()[:32]}")
            try:
                proc = sandbox.spawn(spec, rootfs, stdin_null=True, stdio=(None, stdout, stderr),
                                     cgroup_dirs=[devices_cg] if devices_cg else [])
                try:
                    if devices_cg is not None:
                        devices.add(devices_cg, proc.pid)
                    proc.go()
                    return proc.wait()
                except BaseException:
                    proc.kill()
                    proc.wait()
                    raise
            finally:
                devices.remove(devices_cg)
        from pybuild.runtime import oci

        return oci.run_bundle(runtime, spec, rootfs, new_id(),
                              os.path.join(scratch_dir, ".runtime"), stdin_null=True)
    finally:
        remove_stubs(upper_dir, stubs)

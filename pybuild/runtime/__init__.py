"""The one place that starts containers: RUN steps during a build and `pyrun run`.

    spec.build_spec(image, options, identity, ...) -> OCI runtime config (one description)
    Container.create(...).run()                    -> foreground container, Docker's codes
    run_step(...)                                   -> a build step over given layer dirs
Executors: the built-in sandbox (namespaces + overlay + pivot_root, no external tool) or an
OCI runtime binary (runc) running the same config as a bundle."""

from pybuild.runtime.container import BUILTIN, Container
from pybuild.runtime.mounts import Rootfs
from pybuild.runtime.reap import reap_stale
from pybuild.runtime.spec import BindMount, ImageConfig, RunOptions, build_spec, resolve_command
from pybuild.runtime.step import run_step

__all__ = [
    "BUILTIN", "BindMount", "Container", "ImageConfig", "Rootfs", "RunOptions", "build_spec",
    "reap_stale", "resolve_command", "run_step",
]

"""The one place that starts containers: RUN steps during a build and `pyrun run`.

    spec.build_spec(image, options, identity, ...) -> OCI runtime config (one description)
    Container.create(...).run()                    -> foreground container, Docker's codes
    run_step(...)                                   -> a build step over given layer dirs
Executors: the built-in sandbox (namespaces + overlay + pivot_root, no external tool) or an
OCI runtime binary (runc) running the same config as a bundle.

The exports load on first use (PEP 562): importing one small submodule, such as
runtime.mounts for a cached COPY, must not pay for the container machinery."""

from __future__ import annotations

import importlib

# export -> the submodule that defines it
_EXPORTS = {
    "BUILTIN": "container", "Container": "container", "Rootfs": "mounts",
    "reap_stale": "reap", "BindMount": "spec", "ImageConfig": "spec", "RunOptions": "spec",
    "build_spec": "spec", "resolve_command": "spec", "run_step": "step",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

"""Which host serves a registry name, and the options that reach it: Docker Hub's names,
insecure registries from the flag, $PYBUILD_INSECURE_REGISTRIES and Docker's daemon.json.
No httpx here."""

from __future__ import annotations

import json
import os

from pybuild.registry.options import RegistryOptions

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
DAEMON_JSON = "/etc/docker/daemon.json"


def endpoint(domain: str) -> str:
    """`docker.io` -> `registry-1.docker.io`; anything else is its own endpoint."""
    return DOCKER_HUB_ENDPOINT if domain in ("docker.io", "index.docker.io") else domain


def configured_insecure() -> tuple[str, ...]:
    names = [n.strip() for n in os.environ.get("PYBUILD_INSECURE_REGISTRIES", "").split(",")]
    try:
        with open(DAEMON_JSON) as f:
            daemon = json.load(f)
        names += [str(n) for n in daemon.get("insecure-registries") or []]
    except (OSError, ValueError, AttributeError):
        pass  # no daemon.json, or not ours to judge: Docker's own tools report it
    return tuple(n for n in names if n)


def make_options(insecure: tuple[str, ...] = (), tls_verify: bool = True,
                 ca_cert: str | None = None, **kw) -> RegistryOptions:
    return RegistryOptions(insecure_registries=tuple(insecure) + configured_insecure(),
                           tls_verify=tls_verify, ca_cert=ca_cert, **kw)

"""How to reach registries: TLS, insecure hosts, retries, parallelism, the transport seam.
A plain value, cheap to import (no httpx)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class RegistryOptions:
    insecure_registries: tuple[str, ...] = ()  # host[:port] reached over plain http if no TLS
    tls_verify: bool = True  # False: https without verification (warned)
    ca_cert: str | None = None  # an extra CA bundle (PEM) to trust
    retries: int = 4  # per request, on 5xx/429/network errors
    backoff: float = 0.2  # seconds; doubled on each retry
    timeout: float = 60.0
    parallel: int = 4  # layers transferred at once
    chunk_size: int | None = None  # upload in PATCH chunks of this size
    transport: Any = dataclasses.field(default=None, compare=False)  # an httpx.BaseTransport

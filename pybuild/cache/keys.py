"""The versioned cache key of a build step: what must be equal for a step's result to be reused.

A key is `sha256:` + hex over a canonical JSON array (sorted, no whitespace, ASCII only, so
every Python process and platform encodes it byte for byte the same):

    [KEY_FORMAT, parent, instruction, [[name, value], ...], content]

- parent: the previous step's key, or the base image's manifest/config digest for the
  first step of a stage ("scratch" for FROM scratch);
- instruction: the instruction after build-arg expansion, as the solver runs it;
- build args: only those the step uses, name=value sorted by name; proxy variables are
  left out (BuildKit does the same: a proxy change must not invalidate the cache);
- content: for COPY/ADD the content hash of the sources (pybuild.builder.context), else None.

Bump KEY_FORMAT whenever anything feeding a key changes meaning: old entries then never match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

__all__ = ["KEY_FORMAT", "PROXY_ARGS", "is_proxy_arg", "step_key"]

KEY_FORMAT = "pybuild-cache-key/1"

# BuildKit's predefined proxy args (both cases): they reach RUN but never the cache key
PROXY_ARGS = frozenset(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)


def is_proxy_arg(name: str) -> bool:
    return name in PROXY_ARGS


def step_key(
    parent: str,
    instruction: str,
    build_args: Mapping[str, str] | None = None,
    used: Iterable[str] | None = None,
    content: str | None = None,
) -> str:
    """The key of one step. `build_args` are the args visible to the step; `used` names
    those its expansion referenced (None: all of them count). Proxy args never count."""
    if not parent:
        raise ValueError("a cache key needs a parent key or base image digest")
    args = dict(build_args or {})
    names = set(args) if used is None else set(used) & set(args)
    pairs = [[name, args[name]] for name in sorted(names) if not is_proxy_arg(name)]
    text = json.dumps(
        [KEY_FORMAT, parent, instruction, pairs, content],
        ensure_ascii=True,
        separators=(",", ":"),
    )
    # ensure_ascii escapes lone surrogates (undecodable bytes) too, so encoding cannot fail
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()

"""httpx, imported without its command-line client. httpx's package __init__ imports
httpx._main (click, rich, pygments: about 40% of its import time, ~100 ms here) only to
export `httpx.main`, which pybuild never calls; a stand-in module keeps that out of every
pull and push. Everything else in httpx is untouched."""

from __future__ import annotations

import sys
import types

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _stub = types.ModuleType("httpx._main")

    def _no_cli() -> None:  # pragma: no cover - only `httpx` the CLI would call this
        raise SystemExit("httpx's command-line client is not loaded inside pybuild")

    _stub.main = _no_cli  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _stub

import httpx  # noqa: E402

__all__ = ["httpx"]

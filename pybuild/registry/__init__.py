"""Registries over the OCI distribution API: pull and push images between the store and a
registry, login, search, manifest inspection.

    pull(store, ref, options=None, platform=None, events=...) -> PullResult
    push(store, ref, options=None, events=...) -> PushResult
    RegistryOptions (options.py), Progress events (events.py), credentials (credentials.py)

httpx is imported only when a transfer starts (pybuild.registry.client), never here."""

from __future__ import annotations

from pybuild.registry.events import Progress
from pybuild.registry.options import RegistryOptions


def pull(store, ref, options=None, platform=None, events=None):
    from pybuild.registry import events as ev
    from pybuild.registry.puller import pull as _pull

    return _pull(store, ref, options, platform, events or ev.ignore)


def push(store, ref, options=None, events=None):
    from pybuild.registry import events as ev
    from pybuild.registry.pusher import push as _push

    return _push(store, ref, options, events or ev.ignore)


__all__ = ["Progress", "RegistryOptions", "pull", "push"]

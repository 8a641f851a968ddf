"""Find a container by name, full id or unique id prefix, as Docker's CLI does."""

from __future__ import annotations

import os

from pybuild.errors import ContainerError

_NAMES = ".names"


def find_container(containers_dir: str, ref: str) -> str:
    """The id of the container `ref` names (name, optionally with a leading "/", full id or
    a unique id prefix); ContainerError "No such container" otherwise."""
    if not ref:
        raise ContainerError("No such container: ")
    name = ref[1:] if ref.startswith("/") else ref
    if "/" not in name:
        try:
            cid = os.readlink(os.path.join(containers_dir, _NAMES, name))
            if os.path.isfile(os.path.join(containers_dir, cid, "state.json")):
                return cid
        except OSError:
            pass
    low = ref.lower()
    if all(c in "0123456789abcdef" for c in low):
        try:
            entries = os.listdir(containers_dir)
        except FileNotFoundError:
            entries = []
        found = [e for e in entries if len(e) == 64 and e.startswith(low)
                 and os.path.isfile(os.path.join(containers_dir, e, "state.json"))]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ContainerError(f"multiple IDs found with provided prefix: {ref}")
    raise ContainerError(f"No such container: {ref}")

"""Find a container by name, full id or unique id prefix, as Docker's CLI does (the one
look-up of every verb: runtime/lifecycle.find)."""

from __future__ import annotations

from pybuild.errors import ContainerError, NoSuchContainer


def find_container(containers_dir: str, ref: str) -> str:
    """The id of the container `ref` names (name, optionally with a leading "/", full id or
    a unique id prefix); ContainerError "No such container" otherwise (exit 125, as `docker
    run --volumes-from` answers; the lifecycle verbs exit 1 through NoSuchContainer)."""
    from pybuild.runtime.lifecycle import find

    try:
        return find(containers_dir, ref).id
    except NoSuchContainer as e:
        raise ContainerError(str(e)) from None

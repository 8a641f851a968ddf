"""`commit`: a container's upper dir becomes a layer on top of its image. The upper dir is
copied (the container keeps its own) in overlay form, mount stubs are dropped, the copy is
committed as a snapshot (pybuild.image.layers.commit_dir) and a new image records it with
a history row; a running container is frozen meanwhile when asked."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from pybuild.errors import ContainerError


def is_running(state: dict) -> bool:
    """Whether the container's process is alive (same pid and start time as recorded)."""
    from pybuild.runtime.container import process_start

    pid = state.get("pid")
    return bool(pid) and state.get("status") in ("running", "paused") \
        and process_start(pid) == state.get("pid_start")


@contextlib.contextmanager
def paused(state: dict) -> Iterator[None]:
    """Freeze a running container: its freezer cgroup if it has one, else SIGSTOP to every
    process of its pid namespace; thawed afterwards (a container paused before stays so)."""
    if not is_running(state):
        yield
        return
    cg = None
    if state.get("cgroup"):
        from pybuild.runtime.cgroups import Cgroup

        cg = Cgroup.load(state["cgroup"]["version"], state["cgroup"]["paths"])
        if "freezer" not in cg.paths and cg.version == "v1":
            cg = None
    if cg is not None:
        was_frozen = cg.frozen()
        cg.freeze()
        try:
            yield
        finally:
            if not was_frozen:
                cg.thaw()
        return
    from pybuild.runtime.lookup import pid_namespace_members

    members = pid_namespace_members(state["pid"])
    for p in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


def copy_upper(upper: str, dest: str, stubs: Sequence[str]) -> None:
    """The upper dir in overlay form (whiteouts, opaque dirs) without its mount stubs."""
    from pybuild.runtime.fscopy import copy_contents
    from pybuild.runtime.mounts import remove_stubs

    copy_contents(upper, dest, root_meta=False, keep_overlay=True)
    remove_stubs(dest, stubs)


def _has_stubs(upper: str, stubs: Sequence[str]) -> bool:
    return any(os.path.lexists(os.path.join(upper, s.lstrip("/"))) for s in stubs)


def container_config(image, state: dict):
    """The image's ContainerConfig with what `run`/`create` set for this container: -e,
    --entrypoint (which drops the image's CMD, as in the container), the command, -u, -w,
    labels, --expose, `-v /path` volumes. Containers created before these were recorded
    keep the image's."""
    from pybuild.runtime.spec import merge_env

    opts = state.get("config_opts") or {}
    entrypoint, cmd = image.entrypoint, image.cmd
    if opts.get("Entrypoint") is not None:
        entrypoint, cmd = ((opts["Entrypoint"],) if opts["Entrypoint"] else None), None
    if opts.get("Cmd"):
        cmd = tuple(opts["Cmd"])
    exposed = tuple(sorted(set(image.exposed_ports) | set(opts.get("ExposedPorts") or ())))
    # the image's VOLUMEs and the container's `-v /path` ones (Config.Volumes, as Docker)
    volumes = tuple(sorted(set(image.volumes) | set(opts.get("Volumes") or ())))
    return replace(image, env=tuple(merge_env(image.env, opts.get("Env") or ())),
                   entrypoint=entrypoint, cmd=cmd, user=opts.get("User") or image.user,
                   working_dir=opts.get("WorkingDir") or image.working_dir,
                   labels=dict(state["labels"]) if state.get("labels") is not None
                   else image.labels, exposed_ports=exposed, volumes=volumes)


def commit(root: str, container_id: str, *, ref: str | None = None, message: str = "",
           author: str = "", changes: Sequence[str] = (), pause: bool = True) -> str:
    """Make an image of the container; returns its id (sha256:...)."""
    import json

    from pybuild.image import layers, snapshots
    from pybuild.image import reference as refs
    from pybuild.image.changes import apply_changes
    from pybuild.image.config import HistoryEntry, parse_config, rfc3339
    from pybuild.image.images import Images
    from pybuild.image.records import chain_id, chain_ids
    from pybuild.runtime.container import Container

    c = Container(os.path.join(root, "containers"), container_id)
    state = c.state()
    if not state.get("image_id"):
        raise ContainerError("a container made with --rootfs has no image to commit onto",
                             container_id[:12])
    tag = str(refs.parse_tagged(ref)) if ref else None
    images = Images(root)
    try:
        base = images.get(state["image_id"])
        cfg = parse_config(base.config_bytes, ref=state["image_id"])
        # Docker commits the container's config (the image's, as `run` overrode it), then
        # the -c changes; a bad change fails before anything is copied
        new_cfg = apply_changes(container_config(cfg.config, state), list(changes))
        try:
            with open(os.path.join(c.dir, "config.json")) as f:
                argv = json.load(f)["process"]["args"]
        except (OSError, ValueError, KeyError):
            argv = []
        store = images.store
        upper = os.path.join(c.dir, "upper")
        parents = chain_ids(cfg.diff_ids)
        parent = parents[-1] if parents else None
        with store.hold():
            known = None
            if not is_running(state) and not _has_stubs(upper, state.get("stubs") or ()):
                # a stopped container's upper dir is its diff as it stands (the copy tars to
                # the same bytes): hash it once, and copy nothing if the layer is stored
                known = layers.tar_digest(upper)
            snap = store.snapshot(chain_id(parent, known[0])) if known else None
            if snap is not None:
                layer_diff_id = snap.diff_id
            else:
                stage = snapshots.staging_dir(store)
                try:
                    fs = os.path.join(stage, "fs")
                    with paused(state) if pause else contextlib.nullcontext():
                        copy_upper(upper, fs, state.get("stubs") or ())
                    if known is not None:
                        layers.prepare_upper(fs)
                        layer_diff_id = snapshots.install(store, fs, parent, *known).diff_id
                    else:
                        layer_diff_id = layers.commit_dir(store, fs, parent).diff_id
                finally:
                    snapshots.remove_tree(stage)
            now = rfc3339(time.time())
            history = (*cfg.history, HistoryEntry(created=now, created_by=" ".join(argv),
                                                  author=author, comment=message))
            extra = {k: v for k, v in cfg.extra.items()
                     if k not in ("container", "container_config", "docker_version")}
            new = replace(cfg, config=new_cfg, diff_ids=(*cfg.diff_ids, layer_diff_id),
                          history=history, created=now, author=author, extra=extra)
            return images.put(new.to_bytes(), tags=[tag] if tag else [],
                              parent=state["image_id"])
    finally:
        images.close()

"""The solver: a Dockerfile and a context -> an image in the store. Walks the stage graph level
by level (independent stages in threads), builds each needed stage (pybuild.builder.stage),
and writes the target's config and history as an image, tagged.

Whatever happens (a failed RUN, Ctrl-C, SIGTERM turned into KeyboardInterrupt by the CLI)
the build's tmp dir is unmounted and removed, and nothing is tagged; the steps that finished
are in the cache index already, so the next build starts from them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pybuild.builder.events import (
    BuildDone,
    Progress,
    Vertex,
    VertexCached,
    VertexDone,
    VertexFailed,
    VertexLog,
    VertexStarted,
    Warning,
)
from pybuild.builder.instructions import Arg
from pybuild.builder.stage import StageBuild, StageResult
from pybuild.builder.steps.meta import MetaContext
from pybuild.cache.keys import PROXY_ARGS
from pybuild.errors import BuildError, DockerfileError
from pybuild.image.config import ContainerConfig

if TYPE_CHECKING:
    from pybuild.builder.secrets import SecretSource, SshSource

__all__ = ["BuildOptions", "BuildResult", "build"]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class BuildOptions:
    context_dir: str | None  # None: no context (`pybuild -`, the Dockerfile on stdin)
    dockerfile: str | None = None  # path; None -> <context>/Dockerfile
    dockerfile_text: str | bytes | None = None  # `-f -`: the Dockerfile itself
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    network: str = "default"  # default | none | host
    labels: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    source_date_epoch: int | None = None
    secrets: tuple[SecretSource, ...] = ()  # --secret: lent to RUN --mount=type=secret
    ssh: tuple[SshSource, ...] = ()  # --ssh: agents lent to RUN --mount=type=ssh


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: tuple[str, ...]


class BuildCancelled(BuildError):
    """Another stage failed (or the build was interrupted): this one stopped early."""


def build(store_root: str, options: BuildOptions, progress: Progress) -> BuildResult:
    """Build the image `options` describe into the store at `store_root`."""
    started = time.monotonic()
    try:
        result = _Build(store_root, options, progress).run()
    except BaseException:
        progress.emit(BuildDone(None, (), time.monotonic() - started))
        raise
    progress.emit(BuildDone(result.image_id, result.tags, time.monotonic() - started))
    return result


def _kill_steps(workspace: str) -> None:
    """SIGKILL the RUN sandboxes of this build still going in other threads: our children
    whose root overlay has its upper dir in this build's workspace (nothing else we may
    share a process with, such as a library caller's own children)."""
    needle = f"upperdir={workspace}/"
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/mountinfo") as f:
                    ours = needle in f.read()
                if ours:
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue


class _Build:
    """One build: what every stage shares (store, progress, workspace, context, cache)."""

    def __init__(self, store_root: str, options: BuildOptions, progress: Progress):
        from pybuild.image import reference as refs

        self.options = options
        self.progress = progress
        self.store_root = store_root
        for tag in options.tags:  # a bad -t fails before anything is built
            refs.parse_tagged(tag)
        self._ids = 0
        self._lock = threading.Lock()
        self._context_lock = threading.Lock()
        self._unpack_lock = threading.Lock()
        self._base_lock = threading.Lock()  # one pull of a base, however many stages use it
        self._cancel = threading.Event()
        self._unpacked: set[str] = set()
        self._bases: dict[str, tuple[str, bool]] = {}
        self.results: dict[int, StageResult] = {}
        self._context = None
        self._context_view: str | None = None
        self.memo = None
        self.context_dir = options.context_dir
        self.secrets = {s.id: s for s in options.secrets}
        self.ssh_sockets: dict[str, str] = {}

    # -- services the stages use ----------------------------------------------------------
    def vertex(self, name: str, stage: str | None = None, line: int | None = None) -> Vertex:
        with self._lock:
            self._ids += 1
            return Vertex(self._ids, name, stage, line)

    def internal(self, name: str, job) -> object:
        vertex = self.vertex(name)
        started = time.monotonic()
        self.progress.emit(VertexStarted(vertex, started))
        try:
            value = job()
        except BaseException as e:
            text = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.progress.emit(VertexFailed(vertex, time.monotonic() - started, text))
            raise
        self.progress.emit(VertexDone(vertex, time.monotonic() - started))
        return value

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise BuildCancelled("cancelled")

    def epoch_content(self) -> str | None:
        epoch = self.options.source_date_epoch
        return None if epoch is None else f"source-date-epoch={epoch}"

    def lower_dirs(self, result: StageResult) -> list[str]:
        """Overlay lower dirs (topmost first) of a stage's layers, its base unpacked once."""
        if result.base_image is not None:
            with self._unpack_lock:  # a second stage on the same base waits for the unpack
                if result.base_image not in self._unpacked:
                    self.images.lower_dirs(result.base_image)
                    self._unpacked.add(result.base_image)
        return self.store.lower_dirs(result.chain)

    def context(self):
        """The walked build context (ignore rules applied) and its stat memo, once."""
        with self._context_lock:
            if self._context is not None:
                return self._context
            if self.context_dir is None:
                return None

            def load():
                from pybuild.builder.contenthash import StatMemo
                from pybuild.builder.context import BuildContext

                context = BuildContext.open(self.context_dir, self.options.dockerfile)
                self.memo = StatMemo.load(self.store, context.root)
                return context

            self._context = self.internal("[internal] load build context", load)
            return self._context

    def context_view(self) -> str | None:
        """The context as it is sent (.dockerignore applied), for RUN bind mounts; once."""
        context = self.context()
        if context is None:
            return None
        with self._context_lock:
            if self._context_view is None:
                self._context_view = self.workspace.context_view(context)
            return self._context_view

    def from_source(self, name: str, line: int) -> tuple[str, Callable[[], list[str]]]:
        """(cache key, lower dirs getter) of an earlier stage or an image named by --from."""
        index = self._stage_index(name)
        if index is not None:
            result = self.results[index]
            return result.key, lambda: self.lower_dirs(result)
        image_id = self.base_image(name, line)[0]
        return image_id, lambda: self.images.lower_dirs(image_id)

    def _stage_index(self, name: str) -> int | None:
        if name.lstrip("+-").isdigit():
            return int(name)
        for stage in self.graph.stages:
            if stage.name == name.lower():
                return stage.index
        return None

    def base_image(self, text: str, line: int) -> tuple[str, bool]:
        """Image id of a FROM/--from reference (pulled if needed), resolved once a build."""
        from pybuild.builder.base import resolve_image

        with self._base_lock:
            known = self._bases.get(text)
            if known is not None:
                return known  # (pulled by this build or not: the FROM step shows which)
            from pybuild.image import reference as refs

            name = str(refs.parse_normalized(text).with_default_tag())
            vertex = self.vertex(f"[internal] load metadata for {name}")
            started = time.monotonic()
            self.progress.emit(VertexStarted(vertex, started))

            def events(event) -> None:  # a pull's layer states, as BuildKit shows them
                from pybuild.registry.events import IN_PROGRESS

                if event.status not in IN_PROGRESS:
                    line = f"{event.id}: {event.status}" if event.id else event.status
                    self.progress.emit(VertexLog(vertex, 1, f"{line}\n".encode(),
                                                 time.monotonic()))

            try:
                found = resolve_image(self.images, text, self.options.pull, events)
            except BaseException as e:
                self.progress.emit(VertexFailed(vertex, time.monotonic() - started,
                                                str(e).splitlines()[0] if str(e) else repr(e)))
                raise
            self.progress.emit(VertexDone(vertex, time.monotonic() - started))
            self._bases[text] = found
            return found

    # -- the build --------------------------------------------------------------------------
    def run(self) -> BuildResult:
        from pybuild.builder.graph import build_graph
        from pybuild.builder.parsecache import typed_dockerfile
        from pybuild.image.images import Images

        options = self.options
        data, name = self.internal("[internal] load build definition from Dockerfile",
                                   self._read_dockerfile)
        typed = typed_dockerfile(self.store_root, data, name)
        self.graph = graph = build_graph(typed, build_args=options.build_args,
                                         target=options.target)
        from pybuild.builder.base import check_platform

        check_platform(options.platform)
        for w in graph.warnings:
            self.progress.emit(Warning(str(w), w.line))
        meta_args = dict(graph.auto_args)
        meta_args.update(graph.global_env)
        self.meta = MetaContext(graph.path, graph.escape, dict(options.build_args), meta_args)
        self.images = Images(self.store_root)
        self.store = self.images.store
        try:
            with self.store.hold(), self._ssh_agents() as self.ssh_sockets:
                from pybuild.builder.workspace import Workspace

                self.graph = graph = self._with_image_triggers(typed, graph)
                self._warn_unused_args()

                self.workspace = Workspace(self.store)
                try:
                    for level in graph.levels:
                        self._level(level)
                    return self._export(self.results[graph.target])
                finally:
                    self.workspace.close()
                    if self.memo is not None:
                        self.memo.save(self.store)
        finally:
            self.images.close()

    def _ssh_agents(self):
        if not self.options.ssh:
            return contextlib.nullcontext({})
        from pybuild.builder.secrets import ssh_agents

        return ssh_agents(self.options.ssh)

    def _with_image_triggers(self, typed, graph):
        """Resolve the base images of the stages the target needs (BuildKit loads all their
        metadata first) and put their ONBUILD triggers into the graph, so a trigger's `COPY
        --from=<stage>` makes that stage a dependency; again while that adds stages."""
        from pybuild.builder.base import check_platform, onbuild_triggers
        from pybuild.builder.graph import build_graph

        triggers: dict[int, tuple] = {}
        while True:
            added = False
            for index in graph.order:
                stage = graph.stages[index]
                if (index in triggers or stage.base_stage is not None
                        or stage.base.lower() == "scratch"):
                    continue
                check_platform(stage.platform, f"{graph.path}:{stage.from_.line}: FROM --platform")
                image_id = self.base_image(stage.base, stage.from_.line)[0]
                on_build = self.images.get(image_id).config.config.on_build
                triggers[index] = onbuild_triggers(on_build, stage.from_, graph.path)
                added = added or bool(triggers[index])
            if not added:
                return graph
            graph = build_graph(typed, build_args=self.options.build_args,
                                target=self.options.target, image_triggers=triggers)

    def _read_dockerfile(self) -> tuple[bytes, str]:
        options = self.options
        if options.dockerfile_text is not None:
            text = options.dockerfile_text
            name = os.path.basename(options.dockerfile) if options.dockerfile else "Dockerfile"
            return (text.encode() if isinstance(text, str) else text), name
        path = options.dockerfile or os.path.join(options.context_dir or ".", "Dockerfile")
        try:
            with open(path, "rb") as f:
                return f.read(), os.path.basename(path)
        except OSError as e:
            raise DockerfileError(f"failed to read dockerfile: {e.strerror.lower()}",
                                  path=path) from None

    def _warn_unused_args(self) -> None:
        graph = self.graph
        used = {d.key for a in graph.global_args for d in a.args} | set(dict(graph.auto_args))
        for index in graph.order:
            stage = graph.stages[index]
            for command in (*stage.triggers, *stage.commands):
                if isinstance(command, Arg):
                    used |= {decl.key for decl in command.args}
        unused = sorted(set(self.options.build_args) - used - PROXY_ARGS)
        if unused:
            self.progress.emit(Warning(
                f"One or more build-args [{' '.join(unused)}] were not consumed"))

    def _level(self, level: tuple[int, ...]) -> None:
        if len(level) == 1:
            self._stage(level[0])
            return
        from concurrent.futures import ThreadPoolExecutor, as_completed  # a level of one: none

        with ThreadPoolExecutor(max_workers=len(level), thread_name_prefix="stage") as pool:
            futures = [pool.submit(self._stage, index) for index in level]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException:
                self._cancel.set()
                _kill_steps(self.workspace.root)
                # the first failure is the one to report; the others stopped because of it
                for future in futures:
                    with contextlib.suppress(BaseException):
                        future.result()
                raise

    def _stage(self, index: int) -> None:
        stage = self.graph.stages[index]
        self.check_cancelled()
        triggers = stage.triggers
        from_ref = None
        pulled = False
        if stage.base_stage is not None:
            result = self.results[stage.base_stage].copy()
        elif stage.base.lower() == "scratch":
            from pybuild.image.manifest import host_platform

            p = host_platform()
            result = StageResult(ContainerConfig(env=(DEFAULT_PATH,)), "",
                                 {"architecture": p.architecture, "os": p.os,
                                  "variant": p.variant if p.architecture != "arm64" else None},
                                 [], [], [], "scratch", None)
        else:
            from pybuild.builder.base import check_platform, onbuild_triggers
            from pybuild.image import reference as refs
            from pybuild.image.store import chain_ids

            check_platform(stage.platform, f"{self.graph.path}:{stage.from_.line}: FROM --platform")
            image_id, pulled = self.base_image(stage.base, stage.from_.line)
            config = self.images.get(image_id).config
            result = StageResult(config.config, config.author,
                                 {"architecture": config.architecture, "os": config.os,
                                  "variant": config.variant},
                                 list(config.diff_ids), chain_ids(list(config.diff_ids)),
                                 [h.to_dict() for h in config.history], image_id, image_id)
            triggers = onbuild_triggers(config.config.on_build, stage.from_, self.graph.path)
            from_ref = str(refs.parse_normalized(stage.base).with_default_tag())
        builder = StageBuild(self, stage, result, triggers)
        if from_ref is not None:
            vertex = self.vertex(f"[{builder.prefix}1/{builder.total}] FROM {from_ref}",
                                 stage.label, stage.from_.line)
            if pulled or self.options.no_cache:
                self.progress.emit(VertexStarted(vertex, time.monotonic()))
                self.progress.emit(VertexDone(vertex, 0.0))
            else:
                self.progress.emit(VertexCached(vertex))
        self.results[index] = builder.run()

    def _export(self, result: StageResult) -> BuildResult:
        from pybuild.builder.stage import image_config
        from pybuild.image import reference as refs

        vertex = self.vertex("exporting to image")
        started = time.monotonic()
        self.progress.emit(VertexStarted(vertex, started))

        def say(line: str) -> None:
            self.progress.emit(VertexLog(vertex, 1, f"{line}\n".encode(), time.monotonic()))

        try:
            config = image_config(result, self.options.source_date_epoch, self.options.labels)
            image_id = self.images.put(config.to_bytes(), tags=self.options.tags)
        except BaseException as e:
            self.progress.emit(VertexFailed(vertex, time.monotonic() - started, str(e)))
            raise
        say(f"writing image {image_id} done")
        for tag in self.options.tags:
            say(f"naming to {refs.parse_tagged(tag)} done")
        self.progress.emit(VertexDone(vertex, time.monotonic() - started))
        return BuildResult(image_id, tuple(self.options.tags))

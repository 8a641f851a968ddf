"""One stage of a build, step by step: the base (image, scratch or an earlier stage), its
ONBUILD triggers, config-only instructions applied to the config, and the file-system steps
(RUN, COPY, ADD, WORKDIR) looked up in the cache by key and executed on a miss.

A step's key chains from the previous file-system step's key (or the base image id), so a
config-only change (LABEL, EXPOSE) invalidates nothing, while whatever a RUN sees (its
argv, ENV, ARGs in scope, USER, WORKDIR) is part of its key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field

from pybuild.builder.events import VertexCached, VertexDone, VertexFailed, VertexStarted
from pybuild.builder.instructions import Add, Command, Copy, Run, Workdir
from pybuild.builder.steps.meta import META_TYPES, StageConfig, apply_meta, expander
from pybuild.builder.workspace import Committed
from pybuild.cache.index import lookup, record
from pybuild.cache.keys import step_key
from pybuild.errors import BuildError, DockerfileError
from pybuild.image.config import ContainerConfig, HistoryEntry, ImageConfig, rfc3339

HISTORY_COMMENT = "buildkit.dockerfile.v0"


@dataclass
class StageResult:
    """A stage's state: its config, layers and history so far, and the key of its fs."""

    config: ContainerConfig
    author: str
    platform: dict  # architecture, os, variant of the base
    diff_ids: list[str]
    chain: list[str]  # chain ids, base first
    history: list[dict]  # image-config history items; "created" is a float or None here
    key: str
    base_image: str | None  # the image whose layers are the bottom of `chain`
    args: dict[str, str | None] = field(default_factory=dict)

    def copy(self) -> StageResult:
        return dataclasses.replace(self, diff_ids=list(self.diff_ids), chain=list(self.chain),
                                   history=[dict(h) for h in self.history], args={})


def _shown(command: Command) -> str:
    keyword, _, rest = command.original.strip().partition(" ")
    return f"{keyword.upper()} {rest.strip()}".strip()


class StageBuild:
    """Builds one stage over `result` (the base's state), mutating it step by step."""

    def __init__(self, build, stage, result: StageResult, triggers: tuple[Command, ...]):
        self.build = build  # the solver's _Build: store, progress, workspace, options
        self.stage = stage
        self.result = result
        self.steps = (*triggers, *stage.commands)
        self.conf = StageConfig(result.config, result.author)
        # ONBUILD triggers fire once: the new image does not carry its base's
        self.conf.config = dataclasses.replace(self.conf.config, on_build=())
        n_fs = sum(isinstance(c, Run | Copy | Add | Workdir) for c in self.steps)
        self.total = 1 + n_fs
        self.index = 1
        multi = len(build.graph.stages) > 1
        self.prefix = f"{stage.label} " if multi else ""

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> StageResult:
        for command in self.steps:
            self.build.check_cancelled()
            try:
                self._step(command)
            except BuildError as e:  # where it failed, for the CLI's Dockerfile excerpt
                if e.lines is None:
                    e.lines = (command.line, command.end_line)
                raise
            except DockerfileError as e:
                if e.line == command.line and e.path == self.build.graph.path:
                    e.lines = (command.line, command.end_line)
                raise
        self.result.config = self.conf.config
        self.result.author = self.conf.author
        self.result.args = dict(self.conf.args)
        return self.result

    def _step(self, command: Command) -> None:
        if isinstance(command, Run):
            self._run(command)
        elif isinstance(command, Copy | Add):
            self._copy(command)
        elif isinstance(command, Workdir):
            created_by = apply_meta(command, self.conf, self.build.meta)
            self._workdir(command, created_by)
        elif isinstance(command, META_TYPES):
            created_by = apply_meta(command, self.conf, self.build.meta)
            self._history(created_by, None, empty=True)
        else:
            raise DockerfileError(f"{command.keyword} cannot be used here",
                                  path=self.build.graph.path, line=command.line)

    def _history(self, created_by: str, created: float | None, empty: bool) -> None:
        epoch = self.build.options.source_date_epoch
        item = {"created": float(epoch) if epoch is not None else created,
                "created_by": created_by, "comment": HISTORY_COMMENT}
        if empty:
            item["empty_layer"] = True
        self.result.history.append(item)

    def vertex(self, command: Command):
        self.index += 1
        name = f"[{self.prefix}{self.index}/{self.total}] {_shown(command)}"
        return self.build.vertex(name, self.stage.label, command.line)

    def where(self, command: Command) -> str:
        return f"{self.build.graph.path}:{command.line} {_shown(command)}"

    # -- the cache around every file-system step ------------------------------------------
    def _fs_step(self, command: Command, vertex, key: str, created_by: str, execute) -> None:
        build = self.build
        store = build.store
        entry = None if build.options.no_cache else lookup(store, key)
        if entry is not None:
            build.progress.emit(VertexCached(vertex))
            diff_id = store.snapshot(entry.chain_id).diff_id if entry.chain_id else None
            committed = Committed(entry.chain_id, diff_id)
        else:
            started = time.monotonic()
            build.progress.emit(VertexStarted(vertex, started))
            try:
                committed = execute()
                entry = record(store, key, committed.chain_id)
            except BuildError as e:
                build.progress.emit(VertexFailed(vertex, time.monotonic() - started,
                                                 getattr(e, "reason", str(e)).splitlines()[0]))
                raise
            except BaseException as e:
                build.progress.emit(VertexFailed(vertex, time.monotonic() - started,
                                                 f"{type(e).__name__}: {e}".strip()))
                raise
            build.progress.emit(VertexDone(vertex, time.monotonic() - started))
        self.result.key = key
        if committed.chain_id is not None:
            self.result.chain.append(committed.chain_id)
            self.result.diff_ids.append(committed.diff_id)
        self._history(created_by, entry.created, empty=committed.chain_id is None)

    def _parent_chain(self) -> str | None:
        return self.result.chain[-1] if self.result.chain else None

    # -- RUN --------------------------------------------------------------------------------
    def _run(self, command: Run) -> None:
        from pybuild.builder.steps.run import plan_run

        build = self.build
        plan = plan_run(command, self.conf, build.meta, build.options.network)
        sources = {m.from_: build.from_source(m.from_, command.line)
                   for m in plan.mounts if m.from_}
        vertex = self.vertex(command)
        # a bind of the context brings what it holds (as sent: .dockerignore applies) into
        # the key, as COPY does; BuildKit checksums a bind's selector the same way
        binds = [self._bind_hash(command, vertex, m.source)
                 for m in plan.mounts if m.kind == "bind" and not m.from_]
        content = json.dumps([sorted((k, v[0]) for k, v in sources.items()),
                              build.epoch_content()] + ([binds] if binds else [])) \
            if sources or binds else build.epoch_content()
        key = step_key(self.result.key, plan.key_text, plan.args, None, content)

        def execute() -> Committed:
            from pybuild.builder.events import VertexLog
            from pybuild.builder.steps.run import execute_run

            dirs = build.workspace.step_dirs()
            lowers = build.workspace.lowers(build.lower_dirs(self.result))

            def on_output(stream: int, data: bytes) -> None:
                build.progress.emit(VertexLog(vertex, stream, data, time.monotonic()))

            with contextlib.ExitStack() as stack:
                roots = {name: stack.enter_context(build.workspace.read_only_view(get()))
                         for name, (_, get) in sources.items()}
                try:
                    code, tail = execute_run(plan, lower_dirs=lowers, upper_dir=dirs.upper,
                                             work_dir=dirs.work, scratch_dir=dirs.scratch,
                                             context_dir=build.context_view()
                                             if binds else None,
                                             cache_root=build.workspace.cache_mounts,
                                             on_output=on_output, sources=roots,
                                             secrets=build.secrets,
                                             ssh_sockets=build.ssh_sockets,
                                             source_keys={k: v[0]
                                                          for k, v in sources.items()})
                except BuildError as e:
                    if e.step is not None:
                        raise
                    raise BuildError(e.message, step=self.where(command)) from None
            build.check_cancelled()
            if code != 0:
                reason = (f'process "{" ".join(plan.argv)}" did not complete successfully: '
                          f"exit code: {code}")
                message = reason + "".join(f"\n  | {line}" for line in tail)
                error = BuildError(message, step=self.where(command), code=code)
                error.reason = reason
                raise error
            return build.workspace.commit(dirs, self._parent_chain(),
                                          build.options.source_date_epoch)

        self._fs_step(command, vertex, key, plan.created_by, execute)

    def _bind_hash(self, command: Run, vertex, source: str) -> str:
        from pybuild.builder.contenthash import content_hash

        build = self.build
        context = build.context()
        try:
            if context is None:
                raise BuildError("RUN --mount=type=bind needs a build context, and this build "
                                 "has none (the Dockerfile came on stdin)")
            return content_hash(context, [source], owner=True, memo=build.memo)
        except BuildError as e:
            build.progress.emit(VertexStarted(vertex, time.monotonic()))
            build.progress.emit(VertexFailed(vertex, 0.0, str(e).splitlines()[0]))
            raise BuildError(e.message, step=self.where(command)) from None

    # -- WORKDIR ----------------------------------------------------------------------------
    def _workdir(self, command: Workdir, created_by: str) -> None:
        build = self.build
        path = self.conf.config.working_dir
        user = self.conf.config.user
        key = step_key(self.result.key, json.dumps({"workdir": path, "user": user}), None, None,
                       build.epoch_content())
        vertex = self.vertex(command)

        def execute() -> Committed:
            import os

            from pybuild.runtime.mounts import layered_exists, secure_join

            lowers = build.lower_dirs(self.result)
            if path == "/" or (lowers and layered_exists(lowers, path)):
                return Committed(None, None)
            dirs = build.workspace.step_dirs()
            with build.workspace.mounted(dirs, lowers) as merged:
                owner = None
                if user:  # BuildKit makes the dirs as the USER of the stage
                    from pybuild.runtime.identity import identity_from_layers

                    who = identity_from_layers(user, (dirs.upper, *lowers))
                    owner = (who.uid, who.gid)
                parts = [p for p in path.split("/") if p]
                for i in range(1, len(parts) + 1):
                    target = secure_join(merged, "/".join(parts[:i]))
                    if not os.path.lexists(target):
                        os.mkdir(target, 0o755)
                        os.chmod(target, 0o755)  # whatever the umask
                        if owner is not None:
                            os.chown(target, *owner)
            return build.workspace.commit(dirs, self._parent_chain(),
                                          build.options.source_date_epoch)

        self._fs_step(command, vertex, key, created_by, execute)

    # -- COPY / ADD -------------------------------------------------------------------------
    def _copy(self, command: Copy | Add) -> None:
        try:
            from pybuild.builder.steps import copy as copy_step
        except ImportError:
            raise BuildError(f"{command.keyword} is not available in this pybuild yet",
                             step=self.where(command)) from None
        build = self.build
        ex = expander(self.conf, build.meta, command)
        is_add = isinstance(command, Add)
        request = copy_step.CopyRequest(
            add=is_add,
            sources=tuple(ex(s) for s in command.sources),
            dest=ex(command.dest),
            workdir=self.conf.config.working_dir or "/",
            chown=ex(command.chown) if command.chown else None,
            chmod=ex(command.chmod) if command.chmod else None,
            excludes=tuple(ex(e) for e in command.excludes),
            checksum=ex(command.checksum) if is_add and command.checksum else None,
            heredocs=tuple(command.contents),
            link=command.link,
            parents=getattr(command, "parents", False),
            keep_git_dir=getattr(command, "keep_git_dir", False),
            line=command.line,
            path=build.graph.path,
            env=self.conf.env(),
            unpack=getattr(command, "unpack", None),
        )
        from_stage = getattr(command, "from_stage", None)
        flags = [f"--from={from_stage}"] if from_stage else []
        flags += [f"--chown={request.chown}"] if request.chown else []
        flags += [f"--chmod={request.chmod}"] if request.chmod else []
        names = [*request.sources, *(f"<<{c.name}" for c in command.contents)]
        created_by = " ".join([command.keyword, *flags, *names, request.dest]) + " # buildkit"
        vertex = self.vertex(command)
        request_text = json.dumps(dataclasses.asdict(request) | {"env": None, "heredocs": None},
                                  sort_keys=True, separators=(",", ":"), default=str)
        epoch = build.epoch_content() or ""

        def apply(dirs, prepared) -> Committed:
            lowers = build.lower_dirs(self.result)
            with build.workspace.mounted(dirs, lowers) as merged:
                prepared.apply(merged)
            return build.workspace.commit(dirs, self._parent_chain(),
                                          build.options.source_date_epoch)

        if from_stage is not None:
            # another stage's key (or an image id) fixes every byte it holds: no need to
            # mount and hash it unless the step runs
            source_key, lowers = build.from_source(from_stage, command.line)
            key = step_key(self.result.key, request_text, None, None,
                           f"from={source_key}{epoch}")

            def execute_from() -> Committed:
                dirs = build.workspace.step_dirs()
                with build.workspace.read_only_view(lowers()) as root:
                    prepared = copy_step.prepare_copy(request, context=None, source_root=root,
                                                      memo=None, scratch_dir=dirs.scratch)
                    return apply(dirs, prepared)

            self._fs_step(command, vertex, key, created_by, execute_from)
            return
        context = build.context()
        if context is None:
            raise BuildError(f"{command.keyword} needs a build context, and this build has none "
                             "(the Dockerfile came on stdin)", step=self.where(command))
        dirs = build.workspace.step_dirs()
        try:
            prepared = copy_step.prepare_copy(request, context=context, source_root=None,
                                              memo=build.memo, scratch_dir=dirs.scratch)
        except BuildError as e:
            build.progress.emit(VertexStarted(vertex, time.monotonic()))
            build.progress.emit(VertexFailed(vertex, 0.0, str(e).splitlines()[0]))
            raise
        key = step_key(self.result.key, request_text, None, None, prepared.content + epoch)
        self._fs_step(command, vertex, key, created_by, lambda: apply(dirs, prepared))


def image_config(result: StageResult, epoch: int | None, labels) -> ImageConfig:
    """A finished stage as an image config: history times filled in, --label applied."""
    history = _fill_times(result.history)
    created = rfc3339(epoch) if epoch is not None else (
        history[-1].get("created") if history else None)
    config = result.config
    if labels:
        config = dataclasses.replace(config, labels={**config.labels, **labels})
    return ImageConfig(
        architecture=result.platform["architecture"], os=result.platform["os"],
        variant=result.platform.get("variant"), config=config,
        diff_ids=tuple(result.diff_ids),
        history=tuple(HistoryEntry.from_dict(h) for h in history),
        created=created, author=result.author)


def _fill_times(history: list[dict]) -> list[dict]:
    """BuildKit's normalizeLayersAndHistory: a config-only step takes the time of the first
    new layer after it (else the last one before), so a cached rebuild is byte-identical."""
    items = [dict(h) for h in history]
    created, gap = None, False
    for h in items:
        if h.get("created") is not None:
            created = h["created"]
            if gap:
                break
        else:
            gap = True
    gap = False
    for h in items:
        if h.get("created") is not None:
            if gap:
                created = h["created"]
        else:
            gap = True
            h["created"] = created
    for h in items:
        if isinstance(h.get("created"), float | int):
            h["created"] = rfc3339(h["created"])
        if h.get("created") is None:
            h.pop("created", None)
    return items

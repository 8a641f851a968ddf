"""The stage graph: stages, their bases expanded with the global ARGs and --build-arg, the
dependencies between stages (FROM <stage>, COPY --from, RUN --mount=from=, inherited ONBUILD
triggers), --target pruning, the cycle check, a build order and the parallel levels.

Follows BuildKit's dockerfile2llb: global ARGs are visible only in FROM; a stage is built
only if the target needs it; COPY --from may only name an earlier stage, while a RUN mount
may name any stage (so a cycle is possible and is an error).
"""

from __future__ import annotations

import dataclasses
import heapq
import platform as host_platform
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pybuild.builder.convert import TypedDockerfile, convert, type_dockerfile
from pybuild.builder.instructions import (
    Add,
    Arg,
    BuildWarning,
    Command,
    Copy,
    Env,
    Expose,
    From,
    Label,
    Onbuild,
    Run,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from pybuild.errors import DockerfileError, PybuildError


@dataclass(frozen=True)
class Dependency:
    """Something a stage needs before it can run: another stage, or an image."""

    kind: str  # "base" (FROM), "copy" (COPY --from), "mount" (RUN --mount=from=)
    line: int
    stage: int | None = None  # index of the stage needed, or
    image: str | None = None  # an image reference (never a stage)


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None  # the lower-cased `AS` name
    from_: From
    base: str  # the FROM argument after global-ARG expansion
    platform: str | None  # FROM --platform after expansion
    base_stage: int | None  # the earlier stage this one starts from, if any
    commands: tuple[Command, ...]
    triggers: tuple[Command, ...]  # ONBUILD triggers of the base (stage or image), run first
    dependencies: tuple[Dependency, ...]

    @property
    def label(self) -> str:
        """How BuildKit names a stage in its output: the `AS` name, else `stage-N`."""
        return self.name or f"stage-{self.index}"

    @property
    def stage_dependencies(self) -> tuple[int, ...]:
        return tuple(sorted({d.stage for d in self.dependencies if d.stage is not None}))


@dataclass(frozen=True)
class BuildGraph:
    path: str
    escape: str
    global_args: tuple[Arg, ...]
    global_env: tuple[tuple[str, str], ...]  # declared global ARGs' values, after --build-arg
    auto_args: tuple[tuple[str, str], ...]  # BUILDPLATFORM, TARGETARCH, ... (also seen by FROM)
    build_args: tuple[tuple[str, str], ...]
    stages: tuple[Stage, ...]
    target: int
    order: tuple[int, ...]  # the stages to build, each after everything it needs
    levels: tuple[tuple[int, ...], ...]  # stages in one level may be built in parallel
    warnings: tuple[BuildWarning, ...]

    @property
    def needed(self) -> frozenset[int]:
        return frozenset(self.order)

    @property
    def skipped(self) -> tuple[int, ...]:
        return tuple(s.index for s in self.stages if s.index not in self.needed)


_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def platform_args(target_stage: str = "default") -> dict[str, str]:
    """BuildKit's automatic global ARGs; build and target platform are both this host's."""
    arch = _GOARCH.get(host_platform.machine().lower(), host_platform.machine().lower())
    variant = "v7" if arch == "arm" else ""
    spec = f"linux/{arch}" + (f"/{variant}" if variant else "")
    args = {"TARGETSTAGE": target_stage}
    for prefix in ("BUILD", "TARGET"):
        args.update(
            {
                f"{prefix}PLATFORM": spec,
                f"{prefix}OS": "linux",
                f"{prefix}ARCH": arch,
                f"{prefix}VARIANT": variant,
            }
        )
    return args


class _Recorder(Mapping[str, str]):
    """An env that remembers every name looked up, set or not (for undefined-variable lints)."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.seen: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.seen.add(key)
        return self.env[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.seen.add(key)
        return key in self.env

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)


def _expand(word: str, env: Mapping[str, str], escape: str, path: str, line: int) -> str:
    from pybuild.grammar.words import expand

    try:
        return expand(word, env, escape)
    except PybuildError as e:  # words.ExpansionError
        raise DockerfileError(str(e), path=path, line=line) from None


def _references(word: str, escape: str) -> set[str]:
    """Names of the variables a word refers to (errors are left to dispatch)."""
    from pybuild.grammar.words import expand

    recorder = _Recorder({})
    try:
        expand(word, recorder, escape)
    except PybuildError:
        pass
    return recorder.seen


def _expanded_words(command: Command) -> list[str]:
    """The words BuildKit expands at dispatch, for the variable-scope lint."""
    if isinstance(command, Env | Label):
        return [w for pair in command.pairs for w in (pair.key, pair.value)]
    if isinstance(command, Arg):
        return [decl.default for decl in command.args if decl.default is not None]
    if isinstance(command, Workdir):
        return [command.path]
    if isinstance(command, User):
        return [command.user]
    if isinstance(command, Stopsignal):
        return [command.signal]
    if isinstance(command, Volume):
        return list(command.paths)
    if isinstance(command, Expose):
        return list(command.ports)
    if isinstance(command, Copy | Add):
        words = [*command.sources, command.dest, command.chown or "", command.chmod or ""]
        return words + ([command.checksum or ""] if isinstance(command, Add) else [])
    if isinstance(command, Run):
        return [m.spec for m in command.mounts]
    return []


def _global_env(
    typed: TypedDockerfile, build_args: Mapping[str, str], auto: Mapping[str, str]
) -> dict[str, str]:
    env = dict(auto)
    env.update({k: v for k, v in build_args.items() if k in auto})
    for command in typed.global_args:
        for decl in command.args:
            if decl.key in build_args:
                env[decl.key] = build_args[decl.key]
            elif decl.default is not None:
                env[decl.key] = _expand(decl.default, env, typed.escape, typed.path, command.line)
    return env


def _stage_index(value: str) -> int | None:
    # Go's strconv.Atoi: an optional sign and decimal digits
    return int(value) if re.fullmatch(r"[+-]?[0-9]+", value) else None


def _describe(stages: list[tuple[From, str | None]], index: int) -> str:
    return stages[index][1] or f"stage-{index}"


def build_graph(
    tree,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    auto_args: Mapping[str, str] | None = None,
    image_triggers: Mapping[int, tuple[Command, ...]] | None = None,
) -> BuildGraph:
    """Syntax tree (grammar.Dockerfile) or TypedDockerfile -> the checked stage graph.
    `image_triggers` are the ONBUILD triggers of base images (by stage index), known once
    the solver has resolved them: a trigger's `COPY --from=<stage>` is a dependency too."""
    typed = tree if isinstance(tree, TypedDockerfile) else type_dockerfile(tree)
    path, escape = typed.path, typed.escape
    build_args = dict(build_args or {})
    warnings = list(typed.warnings)

    # names first: duplicates are refused, and --target must resolve before TARGETSTAGE
    names: dict[str, int] = {}
    for index, source in enumerate(typed.stages):
        name = source.from_.stage_name
        if name is None:
            continue
        if name in names:
            first = typed.stages[names[name]].from_.line
            raise DockerfileError(
                f'duplicate stage name "{name}", stage names should be unique '
                f"(first defined on line {first})",
                path=path,
                line=source.from_.line,
            )
        names[name] = index
    target_index = _resolve_target(target, names, typed, path)
    target_name = typed.stages[target_index].from_.stage_name or "default"
    auto = dict(platform_args(target_name) if auto_args is None else auto_args)
    global_env = _global_env(typed, build_args, auto)
    global_keys = {decl.key for command in typed.global_args for decl in command.args}

    stages: list[Stage] = []
    for index, source in enumerate(typed.stages):
        from_ = source.from_
        recorder = _Recorder(global_env)
        base = _expand(from_.base, recorder, escape, path, from_.line)
        if not base:
            raise DockerfileError(
                f"base name ({from_.base}) should not be blank", path=path, line=from_.line
            )
        stage_platform = None
        if from_.platform is not None:
            stage_platform = _expand(from_.platform, recorder, escape, path, from_.line)
        for name in sorted(recorder.seen - set(global_env)):
            warnings.append(
                BuildWarning(
                    path,
                    from_.line,
                    "UndefinedArgInFrom",
                    f"FROM argument '{name}' is not declared",
                )
            )
        base_stage = names.get(base.lower())
        if base_stage is not None and base_stage >= index:
            base_stage = None  # FROM only sees earlier stages; a later name is an image
        triggers: tuple[Command, ...] = ()
        if base_stage is None and image_triggers and base.lower() != "scratch":
            triggers = tuple(image_triggers.get(index, ()))
        if base_stage is not None:
            # a trigger is its own instruction: its text is the ONBUILD's expression
            triggers = tuple(
                dataclasses.replace(convert(c.trigger, path), original=c.expression)
                for c in stages[base_stage].commands
                if isinstance(c, Onbuild) and c.trigger is not None
            )
        deps = [
            Dependency("base", from_.line, stage=base_stage)
            if base_stage is not None
            else Dependency("base", from_.line, image=None if base == "scratch" else base)
        ]
        for command in (*triggers, *source.commands):
            deps.extend(_command_dependencies(command, index, typed, names, path))
        stages.append(
            Stage(
                index=index,
                name=from_.stage_name,
                from_=from_,
                base=base,
                platform=stage_platform,
                base_stage=base_stage,
                commands=source.commands,
                triggers=triggers,
                dependencies=tuple(d for d in deps if d.stage is not None or d.image),
            )
        )
        warnings.extend(_scope_warnings(stages, index, global_keys, escape, path))

    _check_cycles(stages, path)
    order = _build_order(stages, target_index)
    return BuildGraph(
        path=path,
        escape=escape,
        global_args=typed.global_args,
        global_env=tuple(sorted((k, v) for k, v in global_env.items() if k in global_keys)),
        auto_args=tuple(sorted((k, global_env.get(k, v)) for k, v in auto.items())),
        build_args=tuple(sorted(build_args.items())),
        stages=tuple(stages),
        target=target_index,
        order=order,
        levels=_levels(stages, order),
        warnings=tuple(warnings),
    )


def _resolve_target(
    target: str | None, names: dict[str, int], typed: TypedDockerfile, path: str
) -> int:
    if target is None or target == "":
        return len(typed.stages) - 1
    index = names.get(target.lower())
    if index is None:
        from pybuild.builder.flags import suggest

        message = f'target stage "{target}" could not be found'
        match = suggest(target.lower(), names)
        if match:
            message += f" (did you mean {match}?)"
        listing = ", ".join(names) if names else "none (name a stage with FROM ... AS <name>)"
        raise DockerfileError(f"{message}; the named stages are: {listing}", path=path)
    return index


def _command_dependencies(
    command: Command, index: int, typed: TypedDockerfile, names: dict[str, int], path: str
) -> list[Dependency]:
    current = typed.stages[index].from_.stage_name or f"stage-{index}"
    deps: list[Dependency] = []
    if isinstance(command, Copy) and command.from_stage is not None:
        source = command.from_stage
        if re.search(r"\$.", source):
            raise DockerfileError(
                "variable expansion is not supported for --from, define a new stage with "
                "FROM using ARG from global scope as a workaround",
                path=path,
                line=command.line,
            )
        number = _stage_index(source)
        if number is not None and not 0 <= number < len(typed.stages):
            raise DockerfileError(f"invalid stage index {number}", path=path, line=command.line)
        stage = number if number is not None else names.get(source.lower())
        if stage is None:
            deps.append(Dependency("copy", command.line, image=source))
        elif stage >= index:
            name = typed.stages[stage].from_.stage_name or f"stage-{stage}"
            raise DockerfileError(
                f'cannot copy from stage "{name}", it needs to be defined before current '
                f'stage "{current}"',
                path=path,
                line=command.line,
            )
        else:
            deps.append(Dependency("copy", command.line, stage=stage))
    if isinstance(command, Run):
        for mount in command.mounts:
            if mount.from_:
                stage = names.get(mount.from_.lower())
                deps.append(
                    Dependency(
                        "mount",
                        command.line,
                        stage=stage,
                        image=None if stage is not None else mount.from_,
                    )
                )
    return deps


def _scope_warnings(
    stages: list[Stage], index: int, global_keys: set[str], escape: str, path: str
) -> list[BuildWarning]:
    """Global ARGs used in a stage without `ARG NAME` there: they expand to nothing."""
    if not global_keys:
        return []
    in_scope: set[str] = set()
    stage = stages[index]
    parent = stage.base_stage
    while parent is not None:  # a stage inherits its base stage's ARGs and ENVs
        in_scope |= _declared(stages[parent].commands)
        parent = stages[parent].base_stage
    warnings = []
    for command in stage.commands:
        for name in sorted({n for w in _expanded_words(command) for n in _references(w, escape)}):
            if name in global_keys and name not in in_scope:
                warnings.append(
                    BuildWarning(
                        path,
                        command.line,
                        "UndefinedVar",
                        f"Usage of undefined variable '${name}': ARGs declared before the first "
                        f'FROM are usable only in FROM lines; add "ARG {name}" in this stage',
                    )
                )
        in_scope |= _declared((command,))
    return warnings


def _declared(commands) -> set[str]:
    names: set[str] = set()
    for command in commands:
        if isinstance(command, Arg):
            names |= {decl.key for decl in command.args}
        elif isinstance(command, Env):
            names |= {pair.key for pair in command.pairs}
    return names


def _check_cycles(stages: list[Stage], path: str) -> None:
    visiting, done = set(), set()

    def visit(index: int) -> None:
        visiting.add(index)
        for dep in stages[index].dependencies:
            if dep.stage is None or dep.stage in done:
                continue
            if dep.stage in visiting:
                raise DockerfileError(
                    f"circular dependency detected on stage: {stages[dep.stage].label}",
                    path=path,
                    line=dep.line,
                )
            visit(dep.stage)
        visiting.discard(index)
        done.add(index)

    for stage in stages:
        if stage.index not in done:
            visit(stage.index)


def _build_order(stages: list[Stage], target: int) -> tuple[int, ...]:
    needed, todo = set(), [target]
    while todo:
        index = todo.pop()
        if index not in needed:
            needed.add(index)
            todo.extend(stages[index].stage_dependencies)
    # Kahn's algorithm; ties go to the earlier stage so the order follows the file
    waiting = {i: set(stages[i].stage_dependencies) for i in needed}
    ready = [i for i, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for other, deps in waiting.items():
            if index in deps:
                deps.discard(index)
                if not deps:
                    heapq.heappush(ready, other)
    return tuple(order)


def _levels(stages: list[Stage], order: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    depth: dict[int, int] = {}
    for index in order:  # dependencies come first in `order`
        depth[index] = 1 + max((depth[d] for d in stages[index].stage_dependencies), default=-1)
    levels: list[list[int]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for index in order:
        levels[depth[index]].append(index)
    return tuple(tuple(level) for level in levels)

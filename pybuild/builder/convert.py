"""Syntax tree -> typed instructions, checked the way BuildKit's instructions package checks
them: unknown instructions, each instruction's own flag set, argument counts, JSON form where
it is required, HEALTHCHECK values; then grouped into stages (nothing but ARG before the
first FROM). Every error is a DockerfileError naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pybuild.builder.flags import (
    BOOL,
    STRING,
    STRINGS,
    InstructionError,
    go_quote,
    parse_flags,
    parse_go_duration,
    parse_go_int32,
    with_suggestion,
)
from pybuild.builder.instructions import (
    Add,
    Arg,
    ArgDecl,
    BuildWarning,
    Cmd,
    Command,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    SourceContent,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from pybuild.builder.mounts import parse_mount
from pybuild.errors import DockerfileError

if TYPE_CHECKING:
    from pybuild.grammar.parser import Dockerfile
    from pybuild.grammar.parser import Instruction as Node


def _span(node: Node) -> dict:
    return {"original": node.original, "line": node.start_line, "end_line": node.end_line}


def _shell_form(node: Node) -> tuple[str, ...]:
    # BuildKit's handleJSONArgs: exec form keeps the argv, shell form is one string
    return tuple(node.args) if node.json else (" ".join(node.args),) if node.args else ()


def _no_flags(node: Node) -> None:
    parse_flags(node.flags, {})


def _exactly_one(node: Node, name: str) -> str:
    if len(node.args) != 1:
        raise InstructionError(f"{name} requires exactly one argument")
    _no_flags(node)
    return node.args[0]


def _pairs(node: Node, name: str) -> tuple[KeyValue, ...]:
    _no_flags(node)
    args = node.args
    if not args:
        raise InstructionError(f"{name} requires at least one argument")
    if len(args) % 3:
        raise InstructionError(f"Bad input to {name}, too many arguments")
    pairs = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise InstructionError(f"{name} names can not be blank")
        pairs.append(KeyValue(args[i], args[i + 1], legacy=args[i + 2] == ""))
    return tuple(pairs)


def _from(node: Node) -> From:
    args = node.args
    stage_name = None
    if len(args) == 3 and args[1].lower() == "as":
        stage_name = args[2].lower()
        if not re.fullmatch(r"[a-z][a-z0-9\-_.]*", stage_name):
            raise InstructionError(
                f"invalid name for build stage: {go_quote(args[2])}, "
                "name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise InstructionError("FROM requires either one or three arguments")
    flags = parse_flags(node.flags, {"platform": STRING})
    return From(base=args[0], stage_name=stage_name, platform=flags.get("platform"), **_span(node))


def _run(node: Node) -> Run:
    flags = parse_flags(node.flags, {"mount": STRINGS, "network": STRING, "security": STRING})
    # BuildKit's post-parse hooks run in this order: mounts, network, security
    mounts = tuple(parse_mount(spec) for spec in flags.get("mount", ()))  # type: ignore[union-attr]
    network = str(flags.get("network", "default"))
    if network not in ("default", "none", "host"):
        raise InstructionError(f"invalid network mode {go_quote(network)}")
    security = str(flags.get("security", "sandbox"))
    if security not in ("sandbox", "insecure"):
        raise InstructionError(f"security {go_quote(security)} is not valid")
    return Run(
        command=_shell_form(node),
        json=node.json,
        heredocs=tuple(node.heredocs),
        mounts=mounts,
        network=network,
        security=security,
        **_span(node),
    )


_HEREDOC_WORD = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")


def _need_destination(node: Node, name: str) -> None:
    if len(node.args) < 2:
        raise InstructionError(
            f"{name} requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )


def _sources_and_dest(
    node: Node, name: str
) -> tuple[tuple[str, ...], str, tuple[SourceContent, ...]]:
    *sources, dest = node.args
    marker = None if node.json else _HEREDOC_WORD.match(dest)
    if marker and marker.group(3):
        raise InstructionError(f"{name} cannot accept a heredoc as a destination")
    heredocs = list(node.heredocs)
    paths, contents = [], []
    for src in sources:
        marker = None if node.json else _HEREDOC_WORD.match(src)
        if marker and marker.group(3) and heredocs:
            doc = heredocs.pop(0)  # markers and bodies come in the same order
            contents.append(SourceContent(doc.name, doc.body, doc.expand, doc.strip_tabs))
        else:
            paths.append(src)
    return tuple(paths), dest, tuple(contents)


def _copy(node: Node) -> Copy:
    _need_destination(node, "COPY")
    flags = parse_flags(
        node.flags,
        {
            "from": STRING,
            "chown": STRING,
            "chmod": STRING,
            "link": BOOL,
            "parents": BOOL,
            "exclude": STRINGS,
        },
    )
    sources, dest, contents = _sources_and_dest(node, "COPY")
    return Copy(
        sources=sources,
        dest=dest,
        contents=contents,
        from_stage=flags.get("from"),
        chown=flags.get("chown"),
        chmod=flags.get("chmod"),
        link=bool(flags.get("link")),
        parents=bool(flags.get("parents")),
        excludes=tuple(flags.get("exclude", ())),
        **_span(node),
    )


def _add(node: Node) -> Add:
    _need_destination(node, "ADD")
    flags = parse_flags(
        node.flags,
        {
            "chown": STRING,
            "chmod": STRING,
            "link": BOOL,
            "checksum": STRING,
            "keep-git-dir": BOOL,
            "unpack": BOOL,
            "exclude": STRINGS,
        },
    )
    sources, dest, contents = _sources_and_dest(node, "ADD")
    return Add(
        sources=sources,
        dest=dest,
        contents=contents,
        chown=flags.get("chown"),
        chmod=flags.get("chmod"),
        link=bool(flags.get("link")),
        checksum=flags.get("checksum"),
        keep_git_dir=bool(flags.get("keep-git-dir")),
        unpack=flags.get("unpack"),  # type: ignore[arg-type]
        excludes=tuple(flags.get("exclude", ())),
        **_span(node),
    )


def _healthcheck(node: Node) -> Healthcheck:
    if not node.args:
        raise InstructionError("HEALTHCHECK requires at least one argument")
    kind, rest = node.args[0].upper(), node.args[1:]
    if kind == "NONE":
        # BuildKit reads no flags here; we refuse them rather than drop them silently
        if rest or node.flags:
            raise InstructionError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(test=("NONE",), **_span(node))
    flags = parse_flags(
        node.flags,
        {
            "interval": STRING,
            "timeout": STRING,
            "start-period": STRING,
            "start-interval": STRING,
            "retries": STRING,
        },
    )
    if kind != "CMD":
        raise InstructionError(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    command = tuple(rest) if node.json else (" ".join(rest),) if rest else ()
    if not command:
        raise InstructionError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *command) if node.json else ("CMD-SHELL", *command)

    def interval(name: str) -> int:
        text = str(flags.get(name, ""))
        if not text:
            return 0
        ns = parse_go_duration(text)
        if 0 < ns < 1_000_000 or ns < 0:
            raise InstructionError(f"Interval {go_quote(name)} cannot be less than 1ms")
        return ns

    retries = 0
    if flags.get("retries", ""):
        retries = parse_go_int32(str(flags["retries"]))
        if retries < 0:
            raise InstructionError(f"--retries cannot be negative ({retries})")
    return Healthcheck(
        test=test,
        interval=interval("interval"),
        timeout=interval("timeout"),
        start_period=interval("start-period"),
        start_interval=interval("start-interval"),
        retries=retries,
        **_span(node),
    )


def _arg(node: Node) -> Arg:
    _no_flags(node)
    if not node.args:
        raise InstructionError("ARG requires at least one argument")
    decls = []
    for word in node.args:
        key, has_value, value = word.partition("=")
        if has_value and not key:
            raise InstructionError("ARG names can not be blank")
        decls.append(ArgDecl(key, value if has_value else None))
    return Arg(args=tuple(decls), **_span(node))


def _onbuild(node: Node) -> Onbuild:
    if node.inner is None:
        raise InstructionError("ONBUILD requires at least one argument")
    _no_flags(node)
    trigger = node.inner.keyword.upper()
    if trigger == "ONBUILD":
        raise InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InstructionError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    for doc in node.heredocs:
        expression += "\n" + doc.body + doc.name
    return Onbuild(expression=expression, trigger=node.inner, **_span(node))


def _shell(node: Node) -> Shell:
    _no_flags(node)
    if not node.args:
        raise InstructionError("SHELL requires at least one argument")
    if not node.json:
        raise InstructionError("SHELL requires the arguments to be in JSON form")
    return Shell(shell=tuple(node.args), **_span(node))


def _volume(node: Node) -> Volume:
    if not node.args:
        raise InstructionError("VOLUME requires at least one argument")
    _no_flags(node)
    if any(not path.strip() for path in node.args):
        raise InstructionError("VOLUME specified can not be an empty string")
    return Volume(paths=tuple(path.strip() for path in node.args), **_span(node))


def _expose(node: Node) -> Expose:
    if not node.args:
        raise InstructionError("EXPOSE requires at least one argument")
    _no_flags(node)
    return Expose(ports=tuple(node.args), **_span(node))


def _command(cls: type[Cmd] | type[Entrypoint]) -> Callable[[Node], Command]:
    def convert(node: Node) -> Command:
        _no_flags(node)
        return cls(command=_shell_form(node), json=node.json, **_span(node))

    return convert


_CONVERTERS: dict[str, Callable[[Node], Command]] = {
    "from": _from,
    "run": _run,
    "cmd": _command(Cmd),
    "entrypoint": _command(Entrypoint),
    "label": lambda n: Label(pairs=_pairs(n, "LABEL"), **_span(n)),
    "env": lambda n: Env(pairs=_pairs(n, "ENV"), **_span(n)),
    "maintainer": lambda n: Maintainer(name=_exactly_one(n, "MAINTAINER"), **_span(n)),
    "expose": _expose,
    "add": _add,
    "copy": _copy,
    "volume": _volume,
    "user": lambda n: User(user=_exactly_one(n, "USER"), **_span(n)),
    "workdir": lambda n: Workdir(path=_exactly_one(n, "WORKDIR"), **_span(n)),
    "arg": _arg,
    "onbuild": _onbuild,
    "stopsignal": lambda n: Stopsignal(signal=_exactly_one(n, "STOPSIGNAL"), **_span(n)),
    "healthcheck": _healthcheck,
    "shell": _shell,
}
INSTRUCTION_NAMES = tuple(sorted(name.upper() for name in _CONVERTERS))


def convert(node: Node, path: str = "Dockerfile") -> Command:
    """One syntax-tree instruction -> its typed instruction, or DockerfileError at its line."""
    converter = _CONVERTERS.get(node.keyword.lower())
    try:
        if converter is None:
            name = node.keyword.upper()
            raise InstructionError(
                with_suggestion(f"unknown instruction: {name}", name, INSTRUCTION_NAMES)
            )
        return converter(node)
    except InstructionError as e:
        raise DockerfileError(e.message, path=path, line=node.start_line) from None


@dataclass(frozen=True)
class StageSource:
    """One `FROM` and the instructions up to the next one, not yet resolved."""

    from_: From
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class TypedDockerfile:
    path: str
    escape: str
    global_args: tuple[Arg, ...]  # ARGs before the first FROM
    stages: tuple[StageSource, ...]
    warnings: tuple[BuildWarning, ...]


def _lint(command: Command, path: str) -> list[BuildWarning]:
    if isinstance(command, Maintainer):
        return [
            BuildWarning(
                path,
                command.line,
                "MaintainerDeprecated",
                "Maintainer instruction is deprecated in favor of using label",
            )
        ]
    if isinstance(command, Env | Label) and any(pair.legacy for pair in command.pairs):
        return [
            BuildWarning(
                path,
                command.line,
                "LegacyKeyValueFormat",
                f'"{command.keyword} key=value" should be used instead of legacy '
                f'"{command.keyword} key value" format',
            )
        ]
    return []


def type_dockerfile(tree: Dockerfile) -> TypedDockerfile:
    """Convert every instruction and group them into stages (BuildKit instructions.Parse)."""
    path = tree.path
    global_args: list[Arg] = []
    stages: list[tuple[From, list[Command]]] = []
    warnings = [BuildWarning(path, None, "ParseWarning", text) for text in tree.warnings]
    for node in tree.instructions:
        command = convert(node, path)
        warnings.extend(_lint(command, path))
        if isinstance(command, From):
            stages.append((command, []))
        elif not stages:
            if not isinstance(command, Arg):
                raise DockerfileError(
                    "no build stage in current context", path=path, line=command.line
                )
            global_args.append(command)
        else:
            stages[-1][1].append(command)
    if not stages:
        raise DockerfileError("dockerfile contains no stages to build", path=path)
    return TypedDockerfile(
        path=path,
        escape=tree.escape,
        global_args=tuple(global_args),
        stages=tuple(StageSource(f, tuple(cmds)) for f, cmds in stages),
        warnings=tuple(warnings),
    )

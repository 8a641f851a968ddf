"""Typed instructions: one frozen dataclass per Dockerfile instruction, with its own typed
flags. `pybuild.builder.convert` builds them from the syntax tree and checks them.

Words stay as written (unexpanded), as in BuildKit: ARG and ENV values are known only at
dispatch. Every instruction keeps its line span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from pybuild.builder.mounts import Mount

if TYPE_CHECKING:
    from pybuild.grammar.parser import Heredoc
    from pybuild.grammar.parser import Instruction as Node


@dataclass(frozen=True)
class BuildWarning:
    """A lint-style warning (BuildKit's rule names) that does not stop the build."""

    path: str
    line: int | None
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.rule}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class Command:
    """What every instruction has: its text as written and where it is."""

    keyword: ClassVar[str] = ""
    original: str
    line: int
    end_line: int


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    legacy: bool = False  # `ENV key value` rather than `ENV key=value`


@dataclass(frozen=True)
class ArgDecl:
    key: str
    default: str | None  # None: declared without a value


@dataclass(frozen=True)
class SourceContent:
    """A heredoc used as a COPY/ADD source: becomes a file named after its delimiter."""

    name: str
    data: str
    expand: bool
    chomp: bool


@dataclass(frozen=True, kw_only=True)
class From(Command):
    keyword: ClassVar[str] = "FROM"
    base: str  # as written; expanded with the global ARGs by the graph
    stage_name: str | None  # lower-cased `AS` name
    platform: str | None


@dataclass(frozen=True, kw_only=True)
class Run(Command):
    keyword: ClassVar[str] = "RUN"
    command: tuple[str, ...]  # exec form: argv; shell form: one string for the shell
    json: bool
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[Mount, ...] = ()
    network: str = "default"
    security: str = "sandbox"


@dataclass(frozen=True, kw_only=True)
class Cmd(Command):
    keyword: ClassVar[str] = "CMD"
    command: tuple[str, ...]
    json: bool


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Command):
    keyword: ClassVar[str] = "ENTRYPOINT"
    command: tuple[str, ...]
    json: bool


@dataclass(frozen=True, kw_only=True)
class Shell(Command):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Env(Command):
    keyword: ClassVar[str] = "ENV"
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True, kw_only=True)
class Label(Command):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True, kw_only=True)
class Arg(Command):
    keyword: ClassVar[str] = "ARG"
    args: tuple[ArgDecl, ...]


@dataclass(frozen=True, kw_only=True)
class Maintainer(Command):
    keyword: ClassVar[str] = "MAINTAINER"
    name: str


@dataclass(frozen=True, kw_only=True)
class Expose(Command):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Volume(Command):
    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class User(Command):
    keyword: ClassVar[str] = "USER"
    user: str


@dataclass(frozen=True, kw_only=True)
class Workdir(Command):
    keyword: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True, kw_only=True)
class Stopsignal(Command):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@dataclass(frozen=True, kw_only=True)
class Copy(Command):
    keyword: ClassVar[str] = "COPY"
    sources: tuple[str, ...]
    dest: str
    contents: tuple[SourceContent, ...] = ()
    from_stage: str | None = None  # --from: a stage name, a stage index, or an image
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Add(Command):
    keyword: ClassVar[str] = "ADD"
    sources: tuple[str, ...]
    dest: str
    contents: tuple[SourceContent, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None  # None: BuildKit's default (local archives yes, URLs no)
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Command):
    keyword: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]  # ("NONE",) | ("CMD", argv...) | ("CMD-SHELL", text)
    interval: int = 0  # nanoseconds; 0 = the runtime's default
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class Onbuild(Command):
    keyword: ClassVar[str] = "ONBUILD"
    expression: str  # the trigger's text, as stored in the image config
    trigger: Node | None = field(default=None, compare=False)  # its syntax tree

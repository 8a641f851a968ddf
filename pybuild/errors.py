"""The error tree. Library code raises these; only pybuild.cli prints them and picks exit codes.

PybuildError
 +-- DockerfileError(path, line)   a Dockerfile, .dockerignore or build-arg problem
 +-- BuildError(step)              a build step failed (step names file:line)
 +-- ImageError(ref)               a missing, corrupt or invalid image / reference
 +-- StoreError                    the store on disk is inconsistent or locked
 +-- RegistryError(ref, status)    a registry refused or broke a transfer
 +-- ContainerError(id)            a container could not be set up or driven
      +-- CommandNotFound          exit 127 (executable not found)
      +-- CommandNotExecutable     exit 126 (found but not executable)
      +-- NoSuchContainer          exit 1 (no container by that name, id or prefix)
      +-- ContainerStateError      exit 1 (the verb does not fit the state: not running...)
"""

from __future__ import annotations


class PybuildError(Exception):
    """Base of every error a user can cause. `exit_code` follows Docker's CLI."""

    exit_code = 125

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DockerfileError(PybuildError):
    """A problem in a Dockerfile: the message starts with `path:line:`."""

    exit_code = 1

    def __init__(self, message: str, path: str = "Dockerfile", line: int | None = None):
        self.path = path
        self.line = line
        self.lines = (line, line) if line is not None else None  # the span the CLI shows
        self.reason = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class BuildError(PybuildError):
    """A build step failed. `step` is a human label such as `Dockerfile:7 RUN make`."""

    exit_code = 1

    def __init__(self, message: str, step: str | None = None, code: int | None = None):
        self.step = step
        self.code = code
        self.lines: tuple[int, int] | None = None  # the step's Dockerfile lines, first to last
        super().__init__(f"{step}: {message}" if step else message)


class ImageError(PybuildError):
    """An image reference that does not parse, is missing, or whose content is corrupt."""

    def __init__(self, message: str, ref: str | None = None):
        self.ref = ref
        super().__init__(f"{ref}: {message}" if ref else message)


class StoreError(PybuildError):
    """The store on disk is inconsistent, locked or unwritable."""


class RegistryError(PybuildError):
    """A registry answered with an error, a bad digest, or not at all."""

    def __init__(self, message: str, ref: str | None = None, status: int | None = None):
        self.ref = ref
        self.status = status
        prefix = ref or ""
        if status is not None:
            prefix = f"{prefix} (HTTP {status})" if prefix else f"HTTP {status}"
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ContainerError(PybuildError):
    """A container could not be created, started, or driven."""

    def __init__(self, message: str, container: str | None = None):
        self.container = container
        super().__init__(f"{container}: {message}" if container else message)


class CommandNotFound(ContainerError):
    exit_code = 127


class CommandNotExecutable(ContainerError):
    exit_code = 126


class NoSuchContainer(ContainerError):
    """Docker's `No such container: X` (and an ambiguous id prefix): the CLI exits 1."""

    exit_code = 1


class ContainerStateError(ContainerError):
    """The container exists but the verb does not apply now (Docker's daemon answers
    these with a conflict; the CLI exits 1)."""

    exit_code = 1


class NetworkError(PybuildError):
    """A network that is missing, in use, overlapping, or that the kernel refused."""

    def __init__(self, message: str, network: str | None = None):
        self.network = network
        super().__init__(message)

"""The Dockerfile lines of a failed step, printed before the error as BuildKit does
(solver/errdefs Source.Print): a `Dockerfile:N` header, the step's lines marked `>>>`, and
up to two lines of context on each side (one for a step of several lines)."""

from __future__ import annotations

from pybuild.errors import BuildError, DockerfileError, PybuildError


def error_lines(error: PybuildError, name: str) -> tuple[int, int] | None:
    """The (first, last) Dockerfile line an error points at, if it is in `name`."""
    if isinstance(error, BuildError):
        return error.lines
    if isinstance(error, DockerfileError) and error.path == name:
        return error.lines
    return None


def excerpt(data: bytes, name: str, start: int, end: int) -> str:
    """BuildKit's excerpt of lines start..end (1-based) of the Dockerfile `data`."""
    lines = data.decode("utf-8", "replace").split("\n")
    if start < 1 or start > len(lines):
        return ""
    end = min(max(end, start), len(lines))
    marked = range(start, end + 1)
    pad = 4 if end == start else 2
    first, p = start, 0
    while p < pad:  # Go's loop, step for step: context grows on both sides at once
        if start > 1:
            start -= 1
            p += 1
        if end != len(lines):
            end += 1
            p += 1
        p += 1
    out = [f"{name}:{first}", "-" * 20]
    for i in range(start, end + 1):
        out.append(f" {i:3d} | {'>>>' if i in marked else '   '} {lines[i - 1]}")
    out.append("-" * 20)
    return "\n".join(out) + "\n"

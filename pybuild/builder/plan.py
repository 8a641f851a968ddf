"""`pybuild --plan`: the build graph as readable text, or as Graphviz DOT (`--plan=dot`)."""

from __future__ import annotations

import re

from pybuild.builder.graph import BuildGraph, Dependency, Stage
from pybuild.builder.instructions import Add, Command, Copy, Run

_STEP_WIDTH = 100  # a step longer than this is cut, with "..."
_VIA = {"base": "FROM", "copy": "COPY --from", "mount": "RUN --mount"}


def step_text(command: Command, width: int = _STEP_WIDTH) -> str:
    """One line for a step: its original text, white space runs folded, long lines cut."""
    text = re.sub(r"\s+", " ", command.original).strip()
    if len(text) > width:
        text = text[: width - 3].rstrip() + "..."
    docs: list[tuple[str, str]] = []
    if isinstance(command, Run):
        docs = [(doc.name, doc.body) for doc in command.heredocs]
    elif isinstance(command, Copy | Add):
        docs = [(content.name, content.data) for content in command.contents]
    for name, body in docs:
        lines = body.count("\n") + (0 if body.endswith("\n") or not body else 1)
        text += f"  [heredoc {name}: {lines} line{'s' if lines != 1 else ''}]"
    return text


def _where(graph: BuildGraph, command: Command) -> str:
    if command.end_line > command.line:
        return f"{graph.path}:{command.line}-{command.end_line}"
    return f"{graph.path}:{command.line}"


def _dependency_text(graph: BuildGraph, dep: Dependency) -> str:
    what = (
        f"stage {graph.stages[dep.stage].label}" if dep.stage is not None else f"image {dep.image}"
    )
    return f"{what} ({_VIA[dep.kind]}, {graph.path}:{dep.line})"


def _base_text(graph: BuildGraph, stage: Stage) -> str:
    if stage.base_stage is not None:
        text = f"stage {graph.stages[stage.base_stage].label}"
    elif stage.base == "scratch":
        text = "scratch (an empty file system)"
    else:
        text = f"image {stage.base}"
    if stage.base != stage.from_.base:
        text += f"  (written {stage.from_.base})"
    if stage.platform:
        text += f"  platform {stage.platform}"
    return text


def render_text(graph: BuildGraph, source: str | None = None) -> str:
    """The plan as text: stages (base, needs, steps with file:line), order, parallel levels."""
    out = [f"Dockerfile: {source or graph.path}"]
    if graph.global_env:
        out.append("Global ARGs: " + " ".join(f"{k}={v}" for k, v in graph.global_env))
    if graph.build_args:
        out.append("Build args: " + " ".join(f"{k}={v}" for k, v in graph.build_args))
    target = graph.stages[graph.target]
    single = len(graph.stages) == 1
    if single:
        out.append(f"Target: {target.label} (the only stage)")
    else:
        summary = (
            f"Target: {target.label} (builds {len(graph.order)} of {len(graph.stages)} stages)"
        )
        if graph.skipped:
            summary += "; skipped: " + ", ".join(graph.stages[i].label for i in graph.skipped)
        out.append(summary)
    width = max(
        (len(_where(graph, c)) for s in graph.stages for c in (*s.triggers, *s.commands)), default=0
    )
    for stage in graph.stages:
        out.append("")
        heading = f"Stage {stage.index}" + (f": {stage.name}" if stage.name else "")
        if stage.index == graph.target:
            heading += " (target)"
        if stage.index not in graph.needed:
            out.append(
                f"{heading}  [skipped: {target.label} does not need it]"
                f"  {graph.path}:{stage.from_.line}"
            )
            continue
        out.append(f"{heading}  {graph.path}:{stage.from_.line}")
        out.append(f"  base:  {_base_text(graph, stage)}")
        for dep in stage.dependencies:
            if dep.kind != "base":
                out.append(f"  needs: {_dependency_text(graph, dep)}")
        if not stage.commands and not stage.triggers:
            out.append("  steps: none")
            continue
        out.append("  steps:")
        for command in stage.triggers:
            parent = graph.stages[stage.base_stage or 0].label
            out.append(
                f"    {_where(graph, command).ljust(width)}  {step_text(command)}"
                f"  (ONBUILD trigger from {parent})"
            )
        for command in stage.commands:
            out.append(f"    {_where(graph, command).ljust(width)}  {step_text(command)}")
    if single:
        return "\n".join(out) + "\n"
    out.append("")
    out.append("Build order: " + " -> ".join(graph.stages[i].label for i in graph.order))
    out.append("Parallel levels (stages in one level can be built at the same time):")
    for number, level in enumerate(graph.levels, 1):
        out.append(f"  {number}: " + ", ".join(graph.stages[i].label for i in level))
    return "\n".join(out) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_label(lines: list[str]) -> str:
    # \l ends a left-justified line in Graphviz; user text is escaped first
    body = "".join(line.replace("\\", "\\\\").replace('"', '\\"') + "\\l" for line in lines)
    return f'"{body}"'


def render_dot(graph: BuildGraph, source: str | None = None) -> str:
    """The plan as a Graphviz digraph: stages as boxes (steps inside), images as ellipses,
    edges from what is needed to what needs it; stages the target skips are dashed."""
    out = [
        f"digraph {_dot_quote(source or graph.path)} {{",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace", fontsize=10];',
        '  edge [fontname="monospace", fontsize=9];',
    ]
    images: dict[str, str] = {}
    for stage in graph.stages:
        needed = stage.index in graph.needed
        title = stage.label + (" (target)" if stage.index == graph.target else "")
        lines = [title, f"FROM {stage.base}"]
        if needed:
            lines += [f"{c.line}: {step_text(c, 60)}" for c in (*stage.triggers, *stage.commands)]
        else:
            lines.append("(skipped)")
        attrs = [f"label={_dot_label(lines)}"]
        if stage.index == graph.target:
            attrs.append("penwidth=2")
        if not needed:
            attrs.append('style=dashed, color="gray50", fontcolor="gray50"')
        out.append(f"  s{stage.index} [{', '.join(attrs)}];")
        for dep in stage.dependencies:
            if dep.image is not None and dep.image not in images:
                images[dep.image] = f"i{len(images)}"
                out.append(f"  {images[dep.image]} [label={_dot_quote(dep.image)}, shape=ellipse];")
    for stage in graph.stages:
        for dep in stage.dependencies:
            origin = f"s{dep.stage}" if dep.stage is not None else images[dep.image or ""]
            label = _VIA[dep.kind] if dep.kind == "base" else f"{_VIA[dep.kind]} (line {dep.line})"
            style = "" if stage.index in graph.needed else ", style=dashed"
            out.append(f"  {origin} -> s{stage.index} [label={_dot_quote(label)}{style}];")
    out.append("}")
    return "\n".join(out) + "\n"

"""Docker's ways of showing things: tabwriter columns, human sizes ("4.87MB"), ages
("2 minutes ago"), and --format rows and tables (templates: cli/gotemplate.py)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence


def human_size(n: float) -> str:
    """units.HumanSizeWithPrecision(n, 3): decimal units."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    """units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


def ago(ts: float, now: float | None = None) -> str:
    return human_duration((now or time.time()) - ts) + " ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """tabwriter.NewWriter(out, 10, 1, 3, ' ', 0): cells padded by 3, at least 10 wide;
    the last column is not padded."""
    lines = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    out = []
    for line in lines:
        cells = [c.ljust(max(widths[i] + 3, 10)) for i, c in enumerate(line[:-1])]
        out.append(("".join(cells) + line[-1]).rstrip())
    return "\n".join(out)


def render(template: str, fields: Mapping[str, object]) -> str:
    """One row of a --format template (Go's text/template, cli/gotemplate.py); an unknown
    field is a gotemplate.TemplateError (a ValueError)."""
    from pybuild.cli import gotemplate

    return gotemplate.render(template, fields)


def format_rows(template: str, rows: Sequence[Mapping[str, object]], headers: Mapping[str, str]) -> str:
    """--format: 'table ...' gives aligned columns with Docker's header names (the template
    run over the column titles, as Docker's formatter does)."""
    from pybuild.cli import gotemplate

    if template.startswith("table"):
        body = gotemplate.parse(template[5:].strip() or "{{.ID}}")
        lines = [body.execute(gotemplate.headers(headers))] + [body.execute(r) for r in rows]
        split = [line.split("\t") for line in lines]
        if all(len(s) == len(split[0]) for s in split) and len(split[0]) > 1:
            return table(split[0], split[1:])
        return "\n".join(lines)
    parsed = gotemplate.parse(template)
    return "\n".join(parsed.execute(r) for r in rows)

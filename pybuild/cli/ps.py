"""`pyrun ps`: Docker's container list (columns, status texts, filters, --format)."""

from __future__ import annotations

import re
import time

import click

from pybuild.cli.common import store_root
from pybuild.cli.images_fmt import ago, format_rows, human_duration, human_size, table
from pybuild.cli.ps_filters import EXTRA_FILTERS, Matcher, check_value
from pybuild.errors import ContainerError

STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
FILTERS = ("status", "name", "ancestor", "label", "label!", "id", "exited", "until", "before",
           "since", "health", *EXTRA_FILTERS)
HEALTH_STATUSES = ("starting", "healthy", "unhealthy", "none")
HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
           "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
           "Status": "STATUS", "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS",
           "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
           "LocalVolumes": "LOCAL VOLUMES"}


def parse_filters(items, allowed=FILTERS) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise ContainerError(f"bad format of filter (expected name=value): {item}")
        if key.endswith("!"):
            pass
        key = key.strip().lower()
        if key not in allowed:
            raise ContainerError(f"invalid filter '{key}'")
        if key == "status" and value not in STATUSES:
            raise ContainerError(f"invalid filter 'status={value}'")
        if key == "health" and value not in HEALTH_STATUSES:
            raise ContainerError(f"Unrecognised filter value for health: {value}")
        if key == "exited" and not value.lstrip("-").isdigit():
            raise ContainerError(f"invalid filter 'exited={value}'")
        check_value(key, value)
        out.setdefault(key, []).append(value)
    return out


def until_of(value: str, now: float) -> float:
    """until=/since= times: unix seconds, RFC3339, or a Go duration before now."""
    from pybuild.cli.logs import parse_time

    return parse_time(value, now)


def label_match(labels: dict, wanted: dict[str, list[str]]) -> bool:
    for spec in wanted.get("label", ()):
        key, eq, value = spec.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    for spec in wanted.get("label!", ()):
        key, eq, value = spec.partition("=")
        if key in labels and (not eq or labels[key] == value):
            return False
    return True


def status_of(state: dict) -> str:
    """Docker's State.Status word for the state record."""
    from pybuild.runtime.lifecycle import is_active

    status = state.get("status", "created")
    if status in ("running", "restarting", "paused") and not is_active(state):
        return "exited"
    if status == "running" and state.get("paused"):
        return "paused"
    return status if status in STATUSES else "exited"


def health_of(c, state: dict) -> dict | None:
    """State.Health (None: no check, or never started with one)."""
    from pybuild.runtime.health import current_health
    from pybuild.runtime.lifecycle import is_active

    return current_health(c.dir, is_active(state)) if state.get("healthcheck") else None


def status_text(state: dict, now: float, health: dict | None = None) -> str:
    status = status_of(state)
    if status in ("running", "paused"):
        up = "Up " + human_duration(now - (state.get("started") or now))
        if status == "paused":
            return up + " (Paused)"
        if health is not None:  # moby's Health.String()
            word = health.get("Status") or "starting"
            return f"{up} (health: starting)" if word == "starting" else f"{up} ({word})"
        return up
    if status == "restarting":
        return f"Restarting ({state.get('exit_code') or 0}) {ago(state.get('finished') or now, now)}"
    if status == "exited":
        return f"Exited ({state.get('exit_code')}) {ago(state.get('finished') or now, now)}"
    return status.capitalize()


def command_of(c) -> str:
    import json
    import os

    try:
        with open(os.path.join(c.dir, "config.json")) as f:
            return " ".join(json.load(f)["process"]["args"])
    except (OSError, ValueError, KeyError):
        return ""


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def ports_text(state: dict, active: bool) -> str:
    """Published ports as host->container, exposed ones alone (running containers only)."""
    if not active:
        return ""
    out, published = [], set()
    if state.get("network"):
        from pybuild.runtime.netsetup import ContainerNetwork

        for line in ContainerNetwork.from_json(state["network"]).port_lines():
            cport, host = line.split(" -> ", 1)
            out.append(f"{host}->{cport}")
            published.add(cport)
    exposed = (state.get("net_request") or {}).get("exposed", ())
    out += [key for key in exposed if key not in published]
    return ", ".join(out)


def port_pairs(state: dict) -> list[tuple[str | None, str]]:
    """(host port/proto or None, container port/proto) for each of a running container's
    PORTS entries: what `ps -f publish=|expose=` match."""
    from pybuild.runtime.lifecycle import is_active

    if not is_active(state):
        return []
    out: list[tuple[str | None, str]] = []
    if state.get("network"):
        from pybuild.runtime.netsetup import ContainerNetwork

        for line in ContainerNetwork.from_json(state["network"]).port_lines():
            cport, host = line.split(" -> ", 1)
            out.append((f"{host.rpartition(':')[2]}/{cport.partition('/')[2]}", cport))
    published = {cport for _host, cport in out}
    exposed = (state.get("net_request") or {}).get("exposed", ())
    return out + [(None, key) for key in exposed if key not in published]


def _go_quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def rows_for(root: str, entries, *, no_trunc: bool, size: bool) -> list[dict]:
    from pybuild.runtime.lifecycle import is_active, name_of
    from pybuild.runtime.names import names_of

    names = names_of(f"{root}/containers")
    now = time.time()
    rows = []
    for c, state in entries:
        active = is_active(state)
        command = command_of(c)
        labels = state.get("labels") or {}
        row = {
            "ID": c.id if no_trunc else c.id[:12],
            "Image": state.get("image") or state.get("image_id", "")[:19],
            "Command": _go_quote(command if no_trunc else ellipsis(command, 20)),
            "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC",
                                       time.gmtime(state.get("created", now))),
            "RunningFor": ago(state.get("created", now), now),
            "Ports": ports_text(state, active),
            "Status": status_text(state, now, health_of(c, state)),
            "Names": name_of(c, state, names),
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "Mounts": ",".join(m.get("Name") or m.get("Source", "")
                               for m in state.get("mounts") or ()),
            "Networks": (state.get("net_request") or {}).get("mode", "none"),
            "State": status_of(state),
            "LocalVolumes": "0",
            "Size": _size(root, c, state) if size else "",
            "_labels": labels,
        }
        rows.append(row)
    return rows


def _size(root: str, c, state: dict) -> str:
    from pybuild.cli.containers import _dir_size

    rw = _dir_size(f"{c.dir}/upper")
    virtual = rw
    if state.get("image_id"):
        from pybuild.image.images import Images

        images = Images(root)
        try:
            virtual += images.get(state["image_id"]).size
        except Exception:  # noqa: BLE001 - the image may be gone; show what is known
            pass
        finally:
            images.close()
    return f"{human_size(rw)} (virtual {human_size(virtual)})"


def select(root: str, entries, wanted: dict[str, list[str]]):
    from pybuild.runtime.lifecycle import find, name_of
    from pybuild.runtime.names import names_of

    names = names_of(f"{root}/containers")
    ancestors = None
    if "ancestor" in wanted:
        ancestors = _resolve_images(root, wanted["ancestor"])
    created_before = created_after = None
    cdir = f"{root}/containers"
    if "before" in wanted:
        created_before = min(find(cdir, v).state()["created"] for v in wanted["before"])
    if "since" in wanted:
        created_after = max(find(cdir, v).state()["created"] for v in wanted["since"])
    extra = Matcher(root, wanted) if any(k in wanted for k in EXTRA_FILTERS) else None
    for c, state in entries:
        if "status" in wanted and status_of(state) not in wanted["status"]:
            continue
        name = name_of(c, state, names)
        if "name" in wanted and not any(re.search(v.lstrip("/"), name) for v in wanted["name"]):
            continue
        # as moby's filters.Match: the exact id, else a regular expression found in it
        if "id" in wanted and not any(c.id == v or _search(v, c.id) for v in wanted["id"]):
            continue
        if "exited" in wanted and (status_of(state) != "exited" or str(state.get("exit_code"))
                                   not in wanted["exited"]):
            continue
        if "health" in wanted:
            from pybuild.runtime.health import status_word

            if status_word(health_of(c, state)) not in wanted["health"]:
                continue
        if not label_match(state.get("labels") or {}, wanted):
            continue
        if ancestors is not None and not (state.get("image") in ancestors
                                          or state.get("image_id") in ancestors):
            continue
        if created_before is not None and state.get("created", 0) >= created_before:
            continue
        if created_after is not None and state.get("created", 0) <= created_after:
            continue
        if extra is not None and not extra(c, state):
            continue
        if "until" in wanted and not all(state.get("created", 0) < until_of(v, time.time())
                                         for v in wanted["until"]):
            continue
        yield c, state


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _resolve_images(root: str, refs: list[str]) -> set[str]:
    from pybuild.errors import ImageError
    from pybuild.image.images import Images

    out = set(refs)
    images = Images(root)
    try:
        for ref in refs:
            try:
                out.add(images.resolve(ref))
            except ImageError:
                pass
    finally:
        images.close()
    return out


_LABEL_CALL = re.compile(r'\{\{\s*\.Label\s+"([^"]*)"\s*\}\}')


@click.command("ps")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-n", "--last", "last", type=int, default=-1, help="Show n last created containers.")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (key=value).")
@click.option("--format", "fmt", default=None, help="Go-template-like format or 'table ...'.")
@click.pass_context
def ps_cmd(ctx: click.Context, show_all, quiet, last, latest, size, no_trunc, filters,
           fmt) -> int:
    """List containers."""
    from pybuild.runtime.lifecycle import list_states
    from pybuild.runtime.reap import reap_stale

    root = store_root((ctx.obj or {}).get("root"))
    wanted = parse_filters(filters)
    reap_stale(f"{root}/containers")
    entries = list_states(f"{root}/containers")
    if latest:
        last = 1
    if last < 0 and not show_all and "status" not in wanted and "exited" not in wanted:
        entries = [(c, s) for c, s in entries if status_of(s) in ("running", "paused",
                                                                   "restarting")]
    entries = list(select(root, entries, wanted))
    if last >= 0:
        entries = entries[:last]
    if quiet and not fmt:
        for c, _state in entries:
            click.echo(c.id if no_trunc else c.id[:12])
        return 0
    rows = rows_for(root, entries, no_trunc=no_trunc, size=size or bool(fmt and ".Size" in fmt))
    if fmt and "Networks" in fmt:  # every network it is on, sorted, as Docker's column
        from pybuild.runtime.netconnect import networks_of
        from pybuild.runtime.netstore import NetworkStore

        nets = NetworkStore(root).list()
        for row, (c, state) in zip(rows, entries, strict=True):
            row["Networks"] = ",".join(sorted(networks_of(c, state, nets)))
    if fmt:
        labels = dict.fromkeys(_LABEL_CALL.findall(fmt))
        keys = {label: f"Label{_letters(i)}" for i, label in enumerate(labels)}
        template = _LABEL_CALL.sub(lambda m: "{{." + keys[m.group(1)] + "}}", fmt)
        headers = dict(HEADERS, **{v: k.upper() for k, v in keys.items()})
        for row in rows:
            for label, key in keys.items():
                row[key] = row["_labels"].get(label, "")
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        try:
            text = format_rows(template, clean, headers)
        except ValueError as e:
            raise ContainerError(f"template parsing error: {e}") from None
        if text:
            click.echo(text)
        return 0
    cols = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
    if size:
        cols.append("Size")
    click.echo(table([HEADERS[c] for c in cols], [[r[c] for c in cols] for r in rows]))
    return 0


def _letters(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        out = chr(ord("A") + rem) + out
    return out

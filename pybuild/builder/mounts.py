"""`RUN --mount=type=...,target=...`: the CSV option string -> a Mount, with BuildKit's checks.

Follows moby/buildkit frontend/dockerfile/instructions/commands_runmount.go. Values may hold
variables, which are expanded only at dispatch (when ARG and ENV are known): parsing without
an expander checks every literal value now and leaves values with a `$` for the second
pass, except `from=`, which never expands (it names a stage or an image).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass

from pybuild.builder.flags import InstructionError, with_suggestion

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_ALL_KEYS = (
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
)
_VARIABLE = re.compile(r"\$.")
_CANONICAL = {
    "src": "source",
    "dst": "target",
    "destination": "target",
    "ro": "readonly",
    "rw": "readonly",
    "readwrite": "readonly",
}


@dataclass(frozen=True)
class Mount:
    spec: str  # the option string as written, parsed again with an expander at dispatch
    type: str = "bind"
    from_: str | None = None  # a stage name or an image reference
    source: str | None = None
    target: str | None = None
    readonly: bool = True
    id: str | None = None
    sharing: str | None = None
    required: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: str | None = None
    env: str | None = None
    deferred: tuple[str, ...] = ()  # keys whose values wait for expansion


def _parse_bool(key: str, value: str) -> bool:
    # Go's strconv.ParseBool
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise InstructionError(f"invalid value for {key}: {value}")


def _parse_uint(key: str, value: str, base: int) -> int:
    digits = "01234567" if base == 8 else "0123456789"
    if not value or any(ch not in digits for ch in value) or int(value, base) >= 2**32:
        raise InstructionError(f"invalid value {value} for {key}")
    return int(value, base)


def _fields(spec: str) -> list[str]:
    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as e:
        raise InstructionError(f"failed to parse csv mounts: {e}") from None
    return rows[0] if rows else []


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> Mount:
    """Parse one --mount value. Without `expand`, values holding `$` are deferred."""
    fields: dict[str, object] = {"type": "bind"}
    deferred: list[str] = []
    readonly_given = False
    for field in _fields(spec):
        key, has_value, value = field.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro"):
                fields["readonly"], readonly_given = True, True
                continue
            if key in ("readwrite", "rw"):
                fields["readonly"], readonly_given = False, True
                continue
            if key == "required":
                if fields["type"] not in ("secret", "ssh"):
                    raise InstructionError(
                        f"unexpected key '{key}' for mount type '{fields['type']}'"
                    )
                fields["required"] = True
                continue
            raise InstructionError(f"invalid field '{field}' must be a key=value pair")
        if key == "from" and _VARIABLE.search(value):
            raise InstructionError(
                "'from' doesn't support variable expansion, define alias stage instead"
            )
        if expand is not None:
            value = expand(value)
        elif "$" in value and key in _ALL_KEYS:
            deferred.append(_CANONICAL.get(key, key))  # checked at dispatch, once expanded
            continue
        if key == "type":
            if value.lower() not in MOUNT_TYPES:
                raise InstructionError(
                    with_suggestion(f'unsupported mount type "{value}"', value, MOUNT_TYPES)
                )
            fields["type"] = value.lower()
        elif key == "from":
            fields["from_"] = value
        elif key in ("source", "src"):
            fields["source"] = value
        elif key in ("target", "dst", "destination"):
            fields["target"] = value
        elif key in ("readonly", "ro"):
            fields["readonly"], readonly_given = _parse_bool(key, value), True
        elif key in ("readwrite", "rw"):
            fields["readonly"], readonly_given = not _parse_bool(key, value), True
        elif key == "required":
            if fields["type"] not in ("secret", "ssh"):
                raise InstructionError(f"unexpected key '{key}' for mount type '{fields['type']}'")
            fields["required"] = _parse_bool(key, value)
        elif key == "id":
            fields["id"] = value
        elif key == "sharing":
            if value.lower() not in SHARING_MODES:
                raise InstructionError(f'unsupported sharing value "{value}"')
            fields["sharing"] = value.lower()
        elif key == "mode":
            fields["mode"] = _parse_uint(key, value, 8)
        elif key in ("uid", "gid"):
            fields[key] = _parse_uint(key, value, 10)
        elif key == "size":
            fields["size"] = value
        elif key == "env":
            fields["env"] = value
        else:
            raise InstructionError(
                with_suggestion(f"unexpected key '{key}' in '{field}'", key, _ALL_KEYS)
            )
    mount_type = str(fields["type"])
    if "type" not in deferred:
        _check(mount_type, fields, deferred)
    if not readonly_given:  # bind, secret, ssh default to read-only; cache and tmpfs do not
        fields["readonly"] = mount_type not in ("cache", "tmpfs")
    return Mount(spec=spec, deferred=tuple(deferred), **fields)  # type: ignore[arg-type]


def _check(mount_type: str, fields: dict[str, object], deferred: list[str]) -> None:
    later = set(deferred)  # given, but not known until dispatch

    def given(name: str) -> bool:
        return bool(fields.get(name)) or name in later

    file_info_allowed = mount_type in ("secret", "ssh", "cache")
    for key in ("mode", "uid", "gid"):
        if fields.get(key) is not None and not file_info_allowed:
            raise InstructionError(f'{key} not allowed for "{mount_type}" type mounts')
    if fields.get("sharing") and mount_type != "cache":
        raise InstructionError(f"invalid cache sharing set for {mount_type} mount")
    if mount_type == "secret":
        if given("from_"):
            raise InstructionError("secret mount should not have a from")
        if not (given("source") or given("target") or given("id") or given("env")):
            raise InstructionError("invalid secret mount. one of source, target required")
        if given("source") and given("id"):
            raise InstructionError("both source and id can't be set")

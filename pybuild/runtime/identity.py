"""USER resolution the way runc and Docker do it: `name`, `uid`, `name:group`, `uid:gid`
looked up in the image's /etc/passwd and /etc/group; supplementary groups; HOME."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from pybuild.errors import ContainerError

_MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str
    name: str | None = None


def layered_file(layers: Sequence[str], path: str) -> bytes | None:
    """Read `path` (absolute, in the container) from overlay layers, topmost first.

    A whiteout (0/0 char device) or an opaque parent hides the lower copies, like overlayfs."""
    rel = path.lstrip("/")
    for layer in layers:
        full = os.path.join(layer, rel)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            if _opaque_above(layer, rel):
                return None
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None
        if stat.S_ISREG(st.st_mode):
            with open(full, "rb") as f:
                return f.read()
        return None
    return None


def _opaque_above(layer: str, rel: str) -> bool:
    parent = os.path.dirname(rel)
    while parent:
        try:
            if os.getxattr(os.path.join(layer, parent), "trusted.overlay.opaque") == b"y":
                return True
        except OSError:
            pass
        parent = os.path.dirname(parent)
    return False


def _parse_db(data: bytes | None, fields: int) -> list[list[str]]:
    rows = []
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        parts += [""] * (fields - len(parts))
        rows.append(parts)
    return rows


def _as_id(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        return value if value <= _MAX_ID else None
    return None


def resolve_user(spec: str, passwd: bytes | None, group: bytes | None) -> Identity:
    """runc's GetExecUser: defaults root (0:0, HOME=/); explicit groups skip supplementary ones."""
    user_arg, _, group_arg = (spec or "").partition(":")
    uid, gid, home, name = 0, 0, "/", None
    uid_num = _as_id(user_arg)
    users = _parse_db(passwd, 7)
    match = None
    for row in users:
        row_uid = _as_id(row[2])
        if row_uid is None:
            continue
        if (not user_arg and row_uid == 0) or (uid_num is not None and row_uid == uid_num) or (
            uid_num is None and user_arg and row[0] == user_arg
        ):
            match = row
            break
    if match is not None:
        name, uid = match[0], int(match[2])
        gid = _as_id(match[3]) or 0
        home = match[5] or "/"
    elif user_arg:
        if uid_num is None:
            raise ContainerError(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = uid_num
    additional: list[int] = []
    if group_arg or name:
        gid_num = _as_id(group_arg)
        found = []
        for row in _parse_db(group, 4):
            row_gid = _as_id(row[2])
            if row_gid is None:
                continue
            if not group_arg:
                if name in [m.strip() for m in row[3].split(",") if m.strip()]:
                    found.append(row_gid)
            elif (gid_num is not None and row_gid == gid_num) or row[0] == group_arg:
                found.append(row_gid)
        if group_arg:
            if found:
                gid = found[0]
            elif gid_num is None:
                raise ContainerError(
                    f"unable to find group {group_arg}: no matching entries in group file")
            else:
                gid = gid_num
        else:
            additional = found
    return Identity(uid, gid, tuple(additional), home, name)


def identity_from_layers(spec: str, layers: Sequence[str]) -> Identity:
    return resolve_user(spec, layered_file(layers, "/etc/passwd"),
                        layered_file(layers, "/etc/group"))

"""COPY/ADD `--chown` and `--chmod`: owners looked up in the destination's /etc/passwd and
/etc/group (as BuildKit's file op does), modes in octal or chmod(1)'s symbolic form."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ModeError", "Owner", "OwnerError", "parse_chmod", "resolve_chown"]


class OwnerError(ValueError):
    """A --chown user or group that is not found or not valid."""


class ModeError(ValueError):
    """A --chmod value that is neither octal nor symbolic."""


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def _numeric(text: str) -> int | None:
    # BuildKit's parseUID: strconv.ParseUint(text, 10, 32); anything else is a name
    if text.isascii() and text.isdigit():
        value = int(text)
        if value < 1 << 32:
            return value
    return None


def _lookup(dest_root: str, file: str, name: str) -> list[str] | None:
    """The fields of the first line of /etc/<file> naming `name`, read inside dest_root."""
    from pybuild.runtime.mounts import secure_join  # only when a COPY runs

    path = secure_join(dest_root, f"/etc/{file}")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields and fields[0] == name and len(fields) >= 3:
                    return fields
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return None


def resolve_chown(spec: str, dest_root: str) -> Owner:
    """`user[:group]`, each a name or a number. A lone user gives its primary group if it
    is a name, or the same number if it is a number (BuildKit's readUser)."""
    user, sep, group = spec.partition(":")
    if sep and not group:
        raise OwnerError(f"invalid --chown value {spec!r}: empty group")
    uid = _numeric(user)
    if uid is not None:
        gid = uid
    else:
        fields = _lookup(dest_root, "passwd", user)
        if fields is None:
            raise OwnerError(f"unable to find user {user}: no matching entries in passwd file")
        uid, primary = _numeric(fields[2]), _numeric(fields[3]) if len(fields) > 3 else None
        if uid is None or primary is None:
            raise OwnerError(f"user {user}: bad entry in /etc/passwd")
        gid = primary
    if sep:
        number = _numeric(group)
        if number is not None:
            gid = number
        else:
            fields = _lookup(dest_root, "group", group)
            found = _numeric(fields[2]) if fields is not None else None
            if found is None:
                raise OwnerError(
                    f"unable to find group {group}: no matching entries in group file")
            gid = found
    return Owner(uid, gid)


# --- --chmod ------------------------------------------------------------------------------

_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)\Z")
_ACTION = re.compile(r"([-+=])([rwxXst]*|[ugo])")
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}  # bits each class may touch (s, t included)


def parse_chmod(spec: str) -> Callable[[int, bool], int]:
    """A function (current permission bits, is_dir) -> new bits. Octal replaces the bits
    (0..7777); symbolic (`u+x,go=r`, `a+X`) edits them as chmod(1) does."""
    if re.fullmatch(r"[0-7]+", spec):
        value = int(spec, 8)
        if value > 0o7777:
            raise ModeError(f"invalid chmod parameter {spec!r}: out of range")
        return lambda _mode, _is_dir: value
    clauses = []
    for clause in spec.split(","):
        m = _CLAUSE.match(clause)
        if m is None:
            raise ModeError(f"invalid chmod parameter {spec!r}: neither octal nor symbolic"
                            " (like u+x,go=rX)")
        clauses.append((m.group(1) or "a", _ACTION.findall(m.group(2))))

    def apply(mode: int, is_dir: bool) -> int:
        mode &= 0o7777
        for who, actions in clauses:
            mask = 0
            for w in "ugo" if "a" in who else who:
                mask |= _WHO[w]
            for op, perms in actions:
                bits = _bits(perms, mode, is_dir) & mask
                if perms in ("u", "g", "o"):  # copy another class's bits
                    bits = _copy_class(mode, perms) & mask & 0o777
                if op == "+":
                    mode |= bits
                elif op == "-":
                    mode &= ~bits
                else:
                    # `=` clears every bit the class may hold (rwx, and s/t) then sets
                    mode = (mode & ~mask) | bits
        return mode

    return apply


def _bits(perms: str, mode: int, is_dir: bool) -> int:
    if perms in ("u", "g", "o"):
        return 0
    out = 0
    for p in perms:
        if p == "r":
            out |= 0o444
        elif p == "w":
            out |= 0o222
        elif p == "x":
            out |= 0o111
        elif p == "X":
            if is_dir or mode & 0o111:
                out |= 0o111
        elif p == "s":
            out |= 0o6000
        elif p == "t":
            out |= 0o1000
    return out


def _copy_class(mode: int, cls: str) -> int:
    shift = {"u": 6, "g": 3, "o": 0}[cls]
    rwx = (mode >> shift) & 0o7
    return rwx << 6 | rwx << 3 | rwx

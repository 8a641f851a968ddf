"""Content hashes of COPY/ADD sources: a sha256 over exactly what the copy would produce, and
the stat memo that lets a cached rebuild stat the context without reading it.

Per matched source, in order: its kind and the name the copy gives it; then for every entry it
brings (a file source is one entry; a directory brings itself, as ".", and everything sent
below it) the relative path, file type, permission bits (0o7777), uid/gid only when the copy
keeps owners (`owner=True`: no --chown), and the bytes' sha256, link target or device
number. Never mtime, atime or inode: touching a file does not change its hash.

The memo maps (absolute path, size, mtime_ns, inode) -> sha256 of the bytes, kept in the
store's meta.db (`file_hashes`, migration 2). Files modified within RACY_NS of the hash are
not remembered: a later write in the same timestamp tick would go unseen (git's racy rule).
"""

from __future__ import annotations

import hashlib
import stat
import time
from collections.abc import Iterable, Sequence

from pybuild.builder.context import BuildContext, ContextError, Entry, Source
from pybuild.image.store import Store

__all__ = ["HASH_FORMAT", "RACY_NS", "StatMemo", "content_hash", "file_digest"]

HASH_FORMAT = "pybuild-context-hash/2"
RACY_NS = 2_000_000_000
_CHUNK = 1 << 20


def file_digest(path: str) -> str:
    """sha256 of a file's bytes (the one place the hasher reads files: a test seam too)."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class StatMemo:
    """Remembered file digests for one context root; load() once, save() once per build."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[int, int, int, str]] = {}
        self._dirty: dict[str, tuple[int, int, int, str]] = {}

    @classmethod
    def load(cls, store: Store, root: str) -> StatMemo:
        memo = cls()
        prefix = root.rstrip("/") + "/"
        # a range scan of the primary key: every path below the root, and nothing else
        rows = store.db.execute(
            "SELECT path, size, mtime_ns, inode, digest FROM file_hashes"
            " WHERE path >= ? AND path < ?", (prefix, prefix[:-1] + "0"))
        for path, size, mtime_ns, inode, digest in rows:
            memo._rows[path] = (size, mtime_ns, inode, digest)
        return memo

    def get(self, path: str, entry: Entry) -> str | None:
        row = self._rows.get(path)
        if row is None or row[:3] != (entry.size, entry.mtime_ns, entry.inode):
            return None
        return row[3]

    def put(self, path: str, entry: Entry, digest: str, now_ns: int) -> None:
        if entry.mtime_ns >= now_ns - RACY_NS:
            return
        row = (entry.size, entry.mtime_ns, entry.inode, digest)
        self._rows[path] = row
        self._dirty[path] = row

    def save(self, store: Store) -> int:
        """Write what changed in one transaction; returns how many rows."""
        if not self._dirty:
            return 0
        with store.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO file_hashes (path, size, mtime_ns, inode, digest)"
                " VALUES (?, ?, ?, ?, ?)",
                [(p, *row) for p, row in self._dirty.items()])
        count = len(self._dirty)
        self._dirty.clear()
        return count


    def prune(self, store: Store, context: BuildContext) -> int:
        """Forget remembered files below the context root that are no longer sent (deleted,
        now ignored): the table would otherwise only grow. Returns how many rows went."""
        prefix = context.root.rstrip("/") + "/"
        gone = [p for p in self._rows
                if p.startswith(prefix) and p[len(prefix):] not in context.entries]
        if not gone:
            return 0
        with store.transaction() as db:
            db.executemany("DELETE FROM file_hashes WHERE path = ?", [(p,) for p in gone])
        for p in gone:
            self._rows.pop(p, None)
            self._dirty.pop(p, None)
        return len(gone)


def content_hash(
    context: BuildContext,
    sources: Sequence[str] | Iterable[Source],
    *,
    owner: bool = False,
    memo: StatMemo | None = None,
) -> str:
    """The hash of what copying `sources` (strings as written in COPY/ADD, resolved here, or
    Source values from BuildContext.resolve) would produce. Raises ContextError as resolve."""
    matched: list[Source] = []
    for s in sources:
        matched.extend(context.resolve(s) if isinstance(s, str) else [s])
    now_ns = time.time_ns()
    h = hashlib.sha256()
    _feed(h, [HASH_FORMAT, owner])
    for src in matched:
        entry = context.entries[src.path] if src.path else context.root_entry
        if src.kind == "dir":
            _feed(h, ["dir", src.name])
            _record(h, context, ".", entry, owner, memo, now_ns)
            cut = len(src.path) + 1 if src.path else 0
            for inner in context.below(src.path):
                _record(h, context, inner.path[cut:], inner, owner, memo, now_ns)
        else:
            _feed(h, ["item", src.name.rsplit("/", 1)[-1]])
            _record(h, context, ".", entry, owner, memo, now_ns)
    return "sha256:" + h.hexdigest()


def _record(h, context: BuildContext, rel: str, entry: Entry, owner: bool,
            memo: StatMemo | None, now_ns: int) -> None:
    fields: list = [rel, entry.kind, stat.S_IMODE(entry.mode)]
    if owner:
        fields += [entry.uid, entry.gid]
    if entry.kind == "file":
        path = context.abspath(entry.path)
        digest = memo.get(path, entry) if memo is not None else None
        if digest is None:
            try:
                digest = file_digest(path)
            except OSError as e:
                raise ContextError(f"cannot read {entry.path}: {e.strerror}", entry.path) from None
            if memo is not None:
                memo.put(path, entry, digest, now_ns)
        fields += [entry.size, digest]
    elif entry.kind == "symlink":
        fields.append(entry.target)
    elif entry.kind == "other":
        fields += [stat.S_IFMT(entry.mode), entry.rdev]
    _feed(h, fields)


def _feed(h, fields: list) -> None:
    # netstring-like: the field count, then each field's length and bytes, so no file name
    # (which may hold newlines) can make two different trees encode alike. Names are str
    # with surrogate escapes for undecodable bytes: encode them back as they were.
    out = [b"%d\n" % len(fields)]
    for field in fields:
        data = str(field).encode("utf-8", "surrogateescape")
        out.append(b"%d:%s" % (len(data), data))
    h.update(b"".join(out))

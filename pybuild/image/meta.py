"""meta.db: the SQLite schema of the store, its migrations, and the garbage-collection roots.

Every area that keeps rows in meta.db (cache index, containers, ...) appends its schema here:

- MIGRATIONS: (version, sql) in order. Append the next version number; never edit a landed
  entry (stores in the field already ran it). `PRAGMA user_version` holds the last applied
  version; all pending migrations run in one BEGIN IMMEDIATE transaction at open.
- GC_CHAIN_ID_ROOTS / GC_BLOB_ROOTS: SELECTs returning one column of snapshot chain ids /
  blob digests that something outside the image tables still uses (a container's rootfs, a
  cache entry). Store.gc() keeps those (and a chain id's ancestors) alive.
"""

from __future__ import annotations

import sqlite3
import time

from pybuild.errors import StoreError

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,                 -- config digest (Docker's image id)
    config_media_type TEXT NOT NULL,
    created REAL NOT NULL,               -- when it entered this store (unix seconds)
    size INTEGER NOT NULL DEFAULT 0,     -- uncompressed size of its layers
    parent TEXT                          -- image it was built on, if known
);
CREATE TABLE IF NOT EXISTS image_layers (              -- rootfs.diff_ids of the config, in order
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS image_manifests (           -- manifests written or pulled for an image
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE TABLE IF NOT EXISTS repo_digests (              -- docker.io/library/busybox@sha256:... -> image
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (repository, digest)
);
CREATE TABLE IF NOT EXISTS tags (                      -- full reference, e.g. docker.io/library/busybox:latest
    reference TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS layers (                    -- blobs known to hold a diff id (gzip, zstd, plain)
    diff_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    compression TEXT NOT NULL,           -- none | gzip | zstd
    media_type TEXT,                     -- as it came (pull/load), else NULL
    size INTEGER NOT NULL,               -- of the blob
    uncompressed_size INTEGER NOT NULL,  -- of the plain tar
    PRIMARY KEY (diff_id, digest)
);
CREATE INDEX IF NOT EXISTS layers_digest ON layers(digest);
CREATE TABLE IF NOT EXISTS snapshots (
    n INTEGER PRIMARY KEY AUTOINCREMENT, -- snapshots/<n>/fs
    chain_id TEXT NOT NULL UNIQUE,
    parent TEXT,                         -- parent chain id; NULL for a base layer
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL,               -- uncompressed tar size of the layer
    created REAL NOT NULL
);
"""),
    (2, """
CREATE TABLE IF NOT EXISTS cache (                     -- build cache: step key -> its result
    key TEXT PRIMARY KEY,                -- sha256:... from pybuild.cache.keys
    chain_id TEXT,                       -- snapshot of the step's layer; NULL: config-only step
    config_change TEXT NOT NULL,         -- JSON: what the step changed in the image config
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_chain ON cache(chain_id);
CREATE TABLE IF NOT EXISTS file_hashes (               -- context stat memo: skip re-reading files
    path TEXT PRIMARY KEY,               -- absolute path on the host
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    digest TEXT NOT NULL                 -- sha256 of the file's bytes
);
"""),
]

# the build cache keeps the snapshots its entries name (pybuild.cache.index)
GC_CHAIN_ID_ROOTS: list[str] = ["SELECT chain_id FROM cache WHERE chain_id IS NOT NULL"]
GC_BLOB_ROOTS: list[str] = []


def schema_version() -> int:
    return MIGRATIONS[-1][0]


def connect(path: str) -> sqlite3.Connection:
    """Open meta.db in WAL mode with a busy timeout and bring its schema up to date."""
    try:
        db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=60000")
        # switching a fresh file to WAL, and the first migration, can answer "locked" at once
        # (no busy handler) while another process does the same: retry those for a while
        _retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        _retry_locked(lambda: migrate(db))
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot open the store database: {e}") from None
    return db


def _retry_locked(fn, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def migrate(db: sqlite3.Connection) -> int:
    """Apply pending MIGRATIONS in one transaction; return the resulting version."""
    (current,) = db.execute("PRAGMA user_version").fetchone()
    if current >= schema_version():
        if current > schema_version():
            raise StoreError(
                f"meta.db schema version {current} is newer than this pybuild ({schema_version()})")
        return current
    db.execute("BEGIN IMMEDIATE")
    try:
        # re-read under the write lock: another process may have migrated meanwhile
        (current,) = db.execute("PRAGMA user_version").fetchone()
        for version, sql in MIGRATIONS:
            if version > current:
                for statement in _statements(sql):
                    db.execute(statement)
                current = version
        db.execute(f"PRAGMA user_version={current:d}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return current


def _statements(sql: str) -> list[str]:
    # executescript() would COMMIT our transaction; split on complete statements instead
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return [s for s in out if s.strip(" ;\n")]

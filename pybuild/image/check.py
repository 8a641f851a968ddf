"""Consistency check of a store: blobs against their digests, meta.db against the files on
disk (missing blobs, orphan files, snapshots without dirs, tmp/ leftovers), and what gc()
would reclaim. `pyrun system check` prints the findings."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from pybuild.errors import StoreError
from pybuild.image.gc import live_blobs, live_chain_ids
from pybuild.image.store import Store

_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Finding:
    subject: str          # "blob sha256:...", "snapshot 12", "tmp/blob-x", ...
    detail: str
    problem: bool         # False: a note (garbage gc reclaims, a check that was skipped)

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(1 << 20):
            h.update(data)
    return "sha256:" + h.hexdigest()


def check_store(store: Store, verify_blobs: bool = True) -> list[Finding]:
    out: list[Finding] = []

    def problem(subject: str, detail: str) -> None:
        out.append(Finding(subject, detail, True))

    def note(subject: str, detail: str) -> None:
        out.append(Finding(subject, detail, False))

    with store._db_lock:
        (ok,) = store.db.execute("PRAGMA integrity_check").fetchone()
    if ok != "ok":
        problem("meta.db", f"SQLite integrity check failed: {ok}")

    # blobs on disk
    on_disk: set[str] = set()
    for name in sorted(os.listdir(store.blob_dir)):
        path = os.path.join(store.blob_dir, name)
        if not _HEX.match(name) or not os.path.isfile(path) or os.path.islink(path):
            problem(f"blobs/sha256/{name}", "orphan file (not a blob)")
            continue
        digest = "sha256:" + name
        on_disk.add(digest)
        if verify_blobs and _hash_file(path) != digest:
            problem(f"blob {digest}", "corrupt: its content has another digest")

    # metadata -> files
    db = store.db
    with store._db_lock:
        images = db.execute("SELECT id FROM images").fetchall()
        manifests = db.execute("SELECT image_id, digest FROM image_manifests").fetchall()
        layer_rows = db.execute("SELECT diff_id, digest FROM layers").fetchall()
        image_layers = db.execute("SELECT image_id, diff_id, chain_id FROM image_layers").fetchall()
        snaps = db.execute("SELECT chain_id, n, parent FROM snapshots").fetchall()
        live_b = live_blobs(store)
        live_c = live_chain_ids(store)
    for (image_id,) in images:
        if image_id not in on_disk:
            problem(f"image {image_id}", "config blob is missing")
    for image_id, digest in manifests:
        if digest not in on_disk:
            problem(f"image {image_id}", f"manifest blob {digest} is missing")
    for diff_id, digest in layer_rows:
        if digest not in on_disk:
            problem(f"layer {diff_id}", f"blob {digest} is recorded but missing")
    snap_chains = {c for c, _, _ in snaps}
    usable = {c for c, n, _ in snaps
              if os.path.isdir(os.path.join(store.snapshots_dir, str(n), "fs"))}
    blob_diffs = {d for d, digest in layer_rows if digest in on_disk}
    for image_id, diff_id, chain in image_layers:
        if chain not in usable and diff_id not in blob_diffs:
            problem(f"image {image_id}", f"layer {diff_id} has neither a snapshot nor a blob")
    ns = set()
    for chain, n, parent in snaps:
        ns.add(str(n))
        if not os.path.isdir(os.path.join(store.snapshots_dir, str(n), "fs")):
            problem(f"snapshot {n}", f"chain {chain}: snapshots/{n}/fs is missing")
        if parent is not None and parent not in snap_chains:
            problem(f"snapshot {n}", f"parent chain {parent} has no snapshot")
        if chain not in live_c:
            note(f"snapshot {n}", "unused (gc reclaims it)")
    for name in sorted(os.listdir(store.snapshots_dir)):
        if name not in ns:
            problem(f"snapshots/{name}", "orphan dir (no snapshot record)")
    for digest in sorted(on_disk - live_b):
        note(f"blob {digest}", "unreferenced (gc reclaims it)")

    # tmp/: leftovers only count if nobody else is writing right now
    try:
        with store.exclusive(wait=False):
            for name in sorted(os.listdir(store.tmp_dir)):
                problem(f"tmp/{name}", "leftover of an interrupted operation")
    except StoreError:
        note("tmp/", "not checked: another process is using the store")
    return out

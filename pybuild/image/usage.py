"""Disk usage of the images in a store, for `pyrun system df`: total, in use by something
that registered a GC root (a container), and reclaimable."""

from __future__ import annotations

from dataclasses import dataclass

from pybuild.image import meta
from pybuild.image.images import snapshot_content_size
from pybuild.image.store import Store


@dataclass(frozen=True)
class Usage:
    kind: str            # Docker's TYPE column: "Images", ...
    total: int
    active: int
    size: int            # bytes
    reclaimable: int     # bytes


def image_usage(store: Store) -> Usage:
    """Images: layer content as `images` and `history` count it (the files' bytes, each
    shared layer once) plus config blobs; an image is active when a GC root (a container) uses its top layer."""
    with store._db_lock:
        db = store.db
        roots: set[str] = set()
        for sql in meta.GC_CHAIN_ID_ROOTS:
            roots.update(r[0] for r in db.execute(sql) if r[0])
        images = [r[0] for r in db.execute("SELECT id FROM images")]
        chains: dict[str, list[tuple[str, str]]] = {i: [] for i in images}
        for image_id, diff_id, chain in db.execute(
                "SELECT image_id, diff_id, chain_id FROM image_layers ORDER BY image_id, position"):
            chains[image_id].append((diff_id, chain))
        snap_size = dict(db.execute("SELECT chain_id, size FROM snapshots").fetchall())
        layer_size = dict(db.execute("SELECT diff_id, MAX(uncompressed_size) FROM layers "
                                     "GROUP BY diff_id").fetchall())
    sizes: dict[str, int] = {}
    active_chains: set[str] = set()
    active, meta_bytes, active_meta = 0, 0, 0
    for image_id in images:
        layers = chains[image_id]
        is_active = bool(layers) and layers[-1][1] in roots
        active += is_active
        for diff_id, chain in layers:
            if chain not in sizes:
                content = snapshot_content_size(store, chain) if chain in snap_size else None
                sizes[chain] = layer_size.get(diff_id, 0) if content is None else content
            if is_active:
                active_chains.add(chain)
        config = store.blob_size(image_id) if store.has_blob(image_id) else 0
        meta_bytes += config
        active_meta += config if is_active else 0
    total = sum(sizes.values()) + meta_bytes
    used = sum(s for c, s in sizes.items() if c in active_chains) + active_meta
    return Usage("Images", len(images), active, total, total - used)

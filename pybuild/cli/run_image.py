"""IMAGE for `pyrun run`: a reference in the store -> its config and the lower dirs of its
layers (the store's snapshots, unpacked once and shared by every container)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from pybuild.errors import ImageError, StoreError


@dataclass(frozen=True)
class OpenedImage:
    config: dict          # the OCI image config (its "config" object holds Env, Cmd, ...)
    lower_dirs: list[str]  # topmost first
    ref: str              # as the user wrote it (Docker shows it in `ps`)
    image_id: str


def open_image(root: str, ref: str, private_dir: str) -> OpenedImage:
    """Resolve `ref` (tag, digest or id prefix, Docker's order) and make sure every layer is
    unpacked. Layers go to the store's snapshots; a store whose meta.db the snapshot code
    cannot open (the image verbs' interim store) gets them unpacked into `private_dir`,
    which belongs to the container and goes with it."""
    from pybuild.image.images import Images

    images = Images(root)
    try:
        image_id = images.resolve(ref)
        image = images.get(image_id)
        config = json.loads(image.config_bytes)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or ())
        if not diff_ids:
            raise ImageError("the image has no layers: there is nothing to run", ref=ref)
        try:
            lower_dirs = _snapshots(root, images, diff_ids)
        except StoreError:
            lower_dirs = _private_layers(images, diff_ids, private_dir)
    finally:
        images.close()
    return OpenedImage(config, lower_dirs, ref, image_id)


def _snapshots(root: str, images, diff_ids: list[str]) -> list[str]:
    from pybuild.image.store import Store, chain_ids

    store = Store(root)
    try:
        cids = chain_ids(diff_ids)
        parent = None
        for diff_id, cid in zip(diff_ids, cids, strict=True):
            if store.snapshot(cid) is None:
                from pybuild.image import layers  # compression libraries: only when unpacking

                with images.open_layer_tar(diff_id) as tar:
                    layers.unpack_layer(store, parent, tar, expected_diff_id=diff_id,
                                        keep_blob=False)
            parent = cid
        return store.lower_dirs(cids)
    finally:
        store.close()


def _private_layers(images, diff_ids: list[str], private_dir: str) -> list[str]:
    from pybuild.image.unpack import unpack

    dirs = []
    for n, diff_id in enumerate(diff_ids):
        dest = os.path.join(private_dir, str(n))
        os.makedirs(dest, 0o755)
        with images.open_layer_tar(diff_id) as tar:
            unpack(tar, dest)
        dirs.append(dest)
    return dirs[::-1]

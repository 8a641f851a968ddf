"""`import`: a root filesystem tar (plain or compressed) becomes a one-layer image, with
`--change` instructions applied to its config; `bootstrap`: the same for a busybox rootfs
made on the host."""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Sequence
from typing import BinaryIO

from pybuild.errors import ImageError
from pybuild.image import _store_interim as core
from pybuild.image import bootstrap as bb
from pybuild.image import reference as refs
from pybuild.image.changes import apply_changes
from pybuild.image.config import ContainerConfig, HistoryEntry, ImageConfig, rfc3339
from pybuild.image.images import Images


def _check_tar(path: str, source: str) -> None:
    with open(path, "rb") as f:
        comp = core.sniff_compression(f.read(4))
        f.seek(0)
        try:
            with tarfile.open(fileobj=core._decompressor(f, comp), mode="r|") as tar:
                for _ in tar:
                    pass
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ImageError(f"{source}: not a valid tar archive: {e}") from None


def import_tarball(images: Images, src: BinaryIO, source: str, ref: str | None = None,
                   changes: Sequence[str] = (), message: str = "") -> str:
    """Spool `src`, store it as a layer and make an image; returns the image id."""
    tag = str(refs.parse_tagged(ref)) if ref else None
    cfg = apply_changes(ContainerConfig(), list(changes))  # fail on a bad --change before reading
    fd, path = tempfile.mkstemp(dir=images.store.tmp_dir, prefix="import-")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        _check_tar(path, source)
        layer = images.add_layer_file(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    now = rfc3339(time.time())
    config = ImageConfig.new(
        created=now,
        config=cfg,
        diff_ids=(layer.diff_id,),
        history=(HistoryEntry(created=now, comment=message or f"Imported from {source}"),),
    )
    return images.put(config.to_bytes(), tags=[tag] if tag else [])


def bootstrap_busybox(images: Images, ref: str = "busybox:latest", busybox: str | None = None) -> str:
    """A deterministic busybox base image from the host's busybox-static."""
    tag = str(refs.parse_tagged(ref))
    binary = bb.find_busybox(busybox) if busybox else bb.ensure_busybox()
    mtime = bb.layer_mtime(binary)
    fd, path = tempfile.mkstemp(dir=images.store.tmp_dir, prefix="busybox-")
    try:
        with os.fdopen(fd, "wb") as out:
            bb.write_tar(bb.busybox_entries(binary), out, mtime)
        layer = images.add_layer_file(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    config = bb.busybox_config(layer.diff_id, mtime, bb.busybox_version(binary))
    return images.put(config.to_bytes(), tags=[tag])

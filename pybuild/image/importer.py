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
from pybuild.image import bootstrap as bb
from pybuild.image import reference as refs
from pybuild.image.changes import apply_changes
from pybuild.image.compress import DecompressReader
from pybuild.image.config import ContainerConfig, HistoryEntry, ImageConfig, rfc3339
from pybuild.image.images import Images


def _check_tar(path: str, source: str) -> None:
    with open(path, "rb") as f:
        try:
            with tarfile.open(fileobj=DecompressReader(f), mode="r|") as tar:
                for _ in tar:
                    pass
        except (tarfile.TarError, EOFError, OSError, ImageError) as e:
            raise ImageError(f"{source}: not a valid tar archive: {e}") from None


def import_tarball(images: Images, src: BinaryIO, source: str, ref: str | None = None,
                   changes: Sequence[str] = (), message: str = "") -> str:
    """Spool `src`, store it as a layer and make an image; returns the image id."""
    tag = str(refs.parse_tagged(ref)) if ref else None
    cfg = apply_changes(ContainerConfig(), list(changes))  # fail on a bad --change before reading
    with images.store.hold():
        fd, path = tempfile.mkstemp(dir=images.store.tmp_dir, prefix="import-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            _check_tar(path, source)
            with open(path, "rb") as f:
                layer = images.unpack_layer(None, f)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return _finish_import(images, layer.diff_id, cfg, tag, message or f"Imported from {source}")


def _finish_import(images: Images, diff_id: str, cfg: ContainerConfig, tag: str | None, comment: str) -> str:
    now = rfc3339(time.time())
    config = ImageConfig.new(
        created=now,
        config=cfg,
        diff_ids=(diff_id,),
        history=(HistoryEntry(created=now, comment=comment),),
    )
    return images.put(config.to_bytes(), tags=[tag] if tag else [])


def bootstrap_busybox(images: Images, ref: str = "busybox:latest", busybox: str | None = None) -> str:
    """A deterministic busybox base image from the host's busybox-static."""
    tag = str(refs.parse_tagged(ref))
    binary = bb.find_busybox(busybox) if busybox else bb.ensure_busybox()
    mtime = bb.layer_mtime(binary)
    with images.store.hold():
        fd, path = tempfile.mkstemp(dir=images.store.tmp_dir, prefix="busybox-")
        try:
            with os.fdopen(fd, "wb") as out:
                bb.write_tar(bb.busybox_entries(binary), out, mtime)
            with open(path, "rb") as f:
                layer = images.unpack_layer(None, f)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        config = bb.busybox_config(layer.diff_id, mtime, bb.busybox_version(binary))
        return images.put(config.to_bytes(), tags=[tag])

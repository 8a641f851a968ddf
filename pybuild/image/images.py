"""The image-level API over the store: put an image (config + layers), resolve a reference or
an id prefix, read config / manifest / history, tag and untag, remove with Docker's conflict
rules, list, and prune dangling images."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from pybuild.errors import ImageError
from pybuild.image import _store_interim as core
from pybuild.image import reference as refs
from pybuild.image.config import ImageConfig, parse_config, parse_time
from pybuild.image.manifest import (
    MT_DOCKER_CONFIG,
    MT_OCI_CONFIG,
    Descriptor,
    Manifest,
    check_format,
    layer_media_type,
)


@dataclass(frozen=True)
class Layer:
    diff_id: str
    blob_digest: str
    compression: str  # none | gzip | zstd
    size: int  # of the blob
    uncompressed_size: int


@dataclass(frozen=True)
class Image:
    id: str  # config digest
    config_bytes: bytes
    config: ImageConfig
    tags: tuple[str, ...]  # full references, sorted
    digests: tuple[str, ...]  # repository@sha256:... (from a pull or push)
    parent: str | None
    added: float  # when it entered this store
    size: int  # sum of uncompressed layer sizes, as Docker reports it

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def created(self) -> float:
        t = parse_time(self.config.created)
        return t if t is not None else self.added


# A hook other areas register: image id -> ids of containers (running, stopped) that use it.
ImageUsers = Callable[[str], tuple[list[str], list[str]]]
_users: list[ImageUsers] = []


def register_image_users(fn: ImageUsers) -> None:
    """The container area tells rmi/prune which containers use an image."""
    _users.append(fn)


def _containers_using(image_id: str) -> tuple[list[str], list[str]]:
    running: list[str] = []
    stopped: list[str] = []
    for fn in _users:
        r, s = fn(image_id)
        running += r
        stopped += s
    return running, stopped


class Images:
    """Images in one store root. Cheap to create; one per command."""

    def __init__(self, root: str):
        self.store = core.Store(root)
        self.db = self.store.db

    def close(self) -> None:
        self.store.close()

    # -- adding -------------------------------------------------------------------
    def add_layer_file(self, path: str) -> Layer:
        """Store a layer tar (plain, gzip or zstd) and remember its diff id."""
        diff_id, digest, comp, size, usize = core.ingest_layer(self.store, path)
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO layers(diff_id, digest, compression, size, uncompressed_size)"
                " VALUES (?,?,?,?,?)",
                (diff_id, digest, comp, size, usize),
            )
        return Layer(diff_id, digest, comp, size, usize)

    def put(self, config_bytes: bytes, tags: Iterable[str] = (), parent: str | None = None,
            digests: Iterable[str] = ()) -> str:
        """Record an image whose layers are already stored; tag it. Returns the image id."""
        config = parse_config(config_bytes)
        size = 0
        for diff_id in config.diff_ids:
            layer = self.layer(diff_id)
            size += layer.uncompressed_size
        image_id = self.store.put_bytes(config_bytes)
        names = [str(refs.parse_tagged(t)) for t in tags]
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO images(id, config_media_type, parent, created, size) VALUES (?,?,?,?,?)",
                (image_id, MT_OCI_CONFIG, parent, time.time(), size),
            )
            for name in names:
                db.execute("INSERT OR REPLACE INTO tags(reference, image_id, created) VALUES (?,?,?)",
                           (name, image_id, time.time()))
            for d in digests:
                repo, _, digest = d.partition("@")
                db.execute("INSERT OR REPLACE INTO repo_digests(repository, digest, image_id) VALUES (?,?,?)",
                           (repo, digest, image_id))
        return image_id

    # -- reading ------------------------------------------------------------------
    def layer(self, diff_id: str) -> Layer:
        row = self.db.execute(
            "SELECT diff_id, digest, compression, size, uncompressed_size FROM layers"
            " WHERE diff_id=? ORDER BY compression='gzip' DESC LIMIT 1",
            (diff_id,),
        ).fetchone()
        if row is None:
            raise ImageError(f"layer {diff_id} is not in the store")
        return Layer(*row)

    def open_layer_tar(self, diff_id: str) -> BinaryIO:
        """The uncompressed tar stream of a layer."""
        layer = self.layer(diff_id)
        return core.open_uncompressed(self.store, layer.blob_digest, layer.compression)

    def get(self, image_id: str) -> Image:
        row = self.db.execute("SELECT id, parent, created, size FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            raise ImageError(f"No such image: {image_id}")
        data = self.store.read_blob(image_id)
        tags = tuple(sorted(r[0] for r in self.db.execute(
            "SELECT reference FROM tags WHERE image_id=?", (image_id,))))
        digests = tuple(sorted(r[0] for r in self.db.execute(
            "SELECT repository || '@' || digest FROM repo_digests WHERE image_id=?", (image_id,))))
        return Image(row[0], data, parse_config(data, ref=image_id), tags, digests, row[1], row[2], row[3])

    def ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM images ORDER BY created DESC, id")]

    def list(self) -> list[Image]:
        return [self.get(i) for i in self.ids()]

    def children(self, image_id: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM images WHERE parent=?", (image_id,))]

    def resolve(self, text: str) -> str:
        """A reference, a full id or an id prefix -> image id (Docker's look-up order)."""
        digest = refs.parse_digest_ref(text)
        if digest and self._exists(digest):
            return digest
        ref = None
        try:
            ref = refs.parse_normalized(text)
        except ImageError:
            if not refs.looks_like_short_id(text):
                raise
        if ref is not None:
            if ref.digest:
                row = self.db.execute(
                    "SELECT image_id FROM repo_digests WHERE repository=? AND digest=?", (ref.name, ref.digest)
                ).fetchone()
                if row:
                    return row[0]
                if self._exists(ref.digest):  # a digest that is the image id
                    return ref.digest
            else:
                row = self.db.execute(
                    "SELECT image_id FROM tags WHERE reference=?", (str(ref.with_default_tag()),)
                ).fetchone()
                if row:
                    return row[0]
        if refs.looks_like_short_id(text):
            prefix = text if text.startswith("sha256:") else f"sha256:{text}"
            found = [r[0] for r in self.db.execute(
                "SELECT id FROM images WHERE substr(id, 1, ?) = ?", (len(prefix), prefix))]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ImageError(f"ambiguous image id prefix {text!r}: it matches {len(found)} images")
        raise ImageError(f"No such image: {text}")

    def _exists(self, image_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone() is not None

    def manifest(self, image_id: str, fmt: str = "oci") -> Manifest:
        """The manifest of a local image, for the layer blobs the store holds."""
        check_format(fmt)
        data = self.store.read_blob(image_id)
        config = parse_config(data, ref=image_id)
        layers = []
        for diff_id in config.diff_ids:
            layer = self.layer(diff_id)
            layers.append(Descriptor(layer_media_type(layer.compression, fmt), layer.blob_digest, layer.size))
        cfg = Descriptor(MT_DOCKER_CONFIG if fmt == "docker" else MT_OCI_CONFIG, image_id, len(data))
        return Manifest(config=cfg, layers=tuple(layers)).converted(fmt)

    # -- tags and removal -----------------------------------------------------------
    def tag(self, image_id: str, target: str) -> str:
        if not self._exists(image_id):
            raise ImageError(f"No such image: {image_id}")
        name = str(refs.parse_tagged(target))
        if refs.parse_normalized(target).digest:
            raise ImageError("refusing to create a tag with a digest reference", ref=target)
        with self.store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tags(reference, image_id, created) VALUES (?,?,?)",
                           (name, image_id, time.time()))
        return name

    def untag(self, name: str) -> None:
        """Remove a tag (full reference) or a repo digest (`repo@sha256:...`)."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM tags WHERE reference=?", (name,))
            repo, at, digest = name.partition("@")
            if at:
                db.execute("DELETE FROM repo_digests WHERE repository=? AND digest=?", (repo, digest))

    def remove(self, text: str, force: bool = False, prune_parents: bool = True) -> list[tuple[str, str]]:
        """Docker's rmi: returns ("Untagged", ref) and ("Deleted", id) events in order."""
        image_id = self.resolve(text)
        image = self.get(image_id)
        running, stopped = _containers_using(image_id)
        by_ref = self._is_reference(text, image)
        events: list[tuple[str, str]] = []
        if by_ref:
            ref = refs.parse_normalized(text)
            name = str(ref.with_default_tag()) if not ref.digest else f"{ref.name}@{ref.digest}"
            remaining = [t for t in (*image.tags, *image.digests) if t != name]
            if remaining:
                self.untag(name)
                return [("Untagged", refs.familiar(name))]
            if (running or stopped) and not force:
                who = (running + stopped)[0]
                raise ImageError(
                    f'conflict: unable to remove repository reference "{text}" (must force) - '
                    f"container {who[:12]} is using its referenced image {image.short_id}"
                )
            self.untag(name)
            events.append(("Untagged", refs.familiar(name)))
            if running or stopped or self.children(image_id):
                return events  # still used: keep the image, now untagged
        else:
            if running:
                raise ImageError(
                    f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                    f"image is being used by running container {running[0][:12]}"
                )
            if self.children(image_id):
                raise ImageError(
                    f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                    "image has dependent child images"
                )
            if stopped and not force:
                raise ImageError(
                    f"conflict: unable to delete {image.short_id} (must be forced) - "
                    f"image is being used by stopped container {stopped[0][:12]}"
                )
            if len(image.tags) > 1 and not force:
                raise ImageError(
                    f"conflict: unable to delete {image.short_id} (must be forced) - "
                    "image is referenced in multiple repositories"
                )
            for t in image.tags:
                self.untag(t)
                events.append(("Untagged", refs.familiar(t)))
            for d in image.digests:
                events.append(("Untagged", refs.familiar(d)))
        events += self._delete(image_id, prune_parents)
        return events

    def _is_reference(self, text: str, image: Image) -> bool:
        try:
            ref = refs.parse_normalized(text)
        except ImageError:
            return False
        if ref.digest:
            return f"{ref.name}@{ref.digest}" in image.digests
        return str(ref.with_default_tag()) in image.tags

    def _delete(self, image_id: str, prune_parents: bool) -> list[tuple[str, str]]:
        events = []
        while image_id:
            row = self.db.execute("SELECT parent FROM images WHERE id=?", (image_id,)).fetchone()
            parent = row[0] if row else None
            with self.store.transaction() as db:
                db.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
                db.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
                db.execute("UPDATE images SET parent=NULL WHERE parent=?", (image_id,))
                db.execute("DELETE FROM images WHERE id=?", (image_id,))
            events.append(("Deleted", image_id))
            # Docker also deletes untagged parents nothing else needs (build intermediates)
            if not (prune_parents and parent and self._exists(parent)):
                break
            tagged = self.db.execute("SELECT 1 FROM tags WHERE image_id=?", (parent,)).fetchone()
            if tagged or self.children(parent) or any(_containers_using(parent)):
                break
            image_id = parent
        return events

    def dangling(self) -> list[str]:
        """Untagged images that no other image builds on."""
        return [r[0] for r in self.db.execute(
            "SELECT id FROM images i WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.image_id=i.id)"
            " AND NOT EXISTS (SELECT 1 FROM images c WHERE c.parent=i.id)"
            " AND NOT EXISTS (SELECT 1 FROM repo_digests d WHERE d.image_id=i.id)")]

    def prune(self, all_images: bool = False) -> tuple[list[tuple[str, str]], int]:
        """`image prune`: remove dangling (or, with all_images, every unused) image, then
        collect blobs nothing refers to. Returns events and reclaimed bytes."""
        events: list[tuple[str, str]] = []
        while True:
            ids = self.ids() if all_images else self.dangling()
            victims = [i for i in ids if not any(_containers_using(i)) and not self.children(i)]
            if not victims:
                break
            for image_id in victims:
                if not self._exists(image_id):
                    continue
                image = self.get(image_id)
                for t in image.tags + image.digests:
                    events.append(("untagged", refs.familiar(t)))
                events += [(k.lower(), v) for k, v in self._delete(image_id, prune_parents=False)]
        return events, self.gc()

    def gc(self) -> int:
        """Delete blobs no image, layer record or tag reaches; returns bytes freed."""
        keep: set[str] = set()
        live_diff_ids: set[str] = set()
        for image_id in self.ids():
            keep.add(image_id)
            try:
                live_diff_ids.update(parse_config(self.store.read_blob(image_id)).diff_ids)
            except ImageError:
                continue
        with self.store.transaction() as db:
            for diff_id, blob in db.execute("SELECT diff_id, digest FROM layers").fetchall():
                if diff_id in live_diff_ids:
                    keep.add(blob)
                else:
                    db.execute("DELETE FROM layers WHERE diff_id=? AND digest=?", (diff_id, blob))
        freed = 0
        for name in os.listdir(self.store.blob_dir):
            if f"sha256:{name}" not in keep:
                path = os.path.join(self.store.blob_dir, name)
                try:
                    freed += os.stat(path).st_size
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        return freed

    def history(self, image_id: str) -> list[tuple[str, object, int]]:
        """(image id or '<missing>', HistoryEntry, layer size) newest first, as `docker history`."""
        image = self.get(image_id)
        # Docker's rule: row i shows the i-th ancestor's id while the parent chain lasts
        chain = [image_id]
        cur = image.parent
        while cur and self._exists(cur) and len(chain) < len(image.config.history):
            chain.append(cur)
            cur = self.get(cur).parent
        rows = []
        for i, (entry, diff_id) in enumerate(reversed(image.config.layer_history())):
            size = self.layer(diff_id).uncompressed_size if diff_id else 0
            rows.append((chain[i] if i < len(chain) else "<missing>", entry, size))
        if not rows:  # no history at all: one row for the image itself
            rows.append((image_id, None, image.size))
        return rows

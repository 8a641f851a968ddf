"""The image-level API over the store: put an image (config + layers), resolve a reference or
an id prefix, read config / manifest / history, tag and untag, remove with Docker's conflict
rules, list, and prune dangling images."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from pybuild.errors import ImageError
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
from pybuild.image.store import Store, chain_ids

if TYPE_CHECKING:  # imported where used: a build or `pyrun create` of a stored image
    from pybuild.image import layers as layer_ops  # never reads or writes a layer tar


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


def _containers_on_disk(root: str, image_id: str) -> tuple[list[str], list[str]]:
    """Containers of this store root made from the image (containers/<id>/state.json, the
    runtime's record), split into running (owner process alive) and stopped."""
    import json
    import os

    running: list[str] = []
    stopped: list[str] = []
    base = os.path.join(root, "containers")
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return running, stopped
    for name in names:
        try:
            with open(os.path.join(base, name, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(state, dict) or state.get("image_id") != image_id:
            continue
        owner = state.get("owner") or {}
        alive = False
        if state.get("status") == "running" and isinstance(owner.get("pid"), int):
            try:
                os.kill(owner["pid"], 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
        (running if alive else stopped).append(str(state.get("id") or name))
    return running, stopped


class Images:
    """Images in one store root. Cheap to create; one per command."""

    def __init__(self, root: str):
        self.store = Store(root)
        self.db = self.store.db

    def close(self) -> None:
        self.store.close()

    def _containers_using(self, image_id: str) -> tuple[list[str], list[str]]:
        running, stopped = _containers_on_disk(self.store.root, image_id)
        for fn in _users:
            r, st = fn(image_id)
            running += r
            stopped += st
        return running, stopped

    # -- adding -------------------------------------------------------------------
    def unpack_layer(self, parent_chain: str | None, src: BinaryIO, expected_diff_id: str | None = None,
                     expected_digest: str | None = None, size: int | None = None,
                     media_type: str | None = None) -> layer_ops.Layer:
        """A layer blob (plain, gzip or zstd) -> its blob and snapshot, verified in one pass.
        Callers hold the store (store.hold()) until the image that uses it is recorded."""
        from pybuild.image import layers as layer_ops

        return layer_ops.unpack_layer(self.store, parent_chain, src, expected_digest=expected_digest,
                                      expected_diff_id=expected_diff_id, size=size, keep_blob=True,
                                      media_type=media_type)

    def put(self, config_bytes: bytes, tags: Iterable[str] = (), parent: str | None = None,
            digests: Iterable[str] = (), config_media_type: str = MT_OCI_CONFIG) -> str:
        """Record an image whose layers are already stored; tag it. Returns the image id."""
        config = parse_config(config_bytes)
        for diff_id, chain in zip(config.diff_ids, chain_ids(config.diff_ids), strict=True):
            if self.store.snapshot(chain) is None and not self.store.layer_blobs(diff_id):
                raise ImageError(f"layer {diff_id} is not in the store")
        names = [str(refs.parse_tagged(t)) for t in tags]
        record = self.store.add_image(config_bytes, config_media_type, parent=parent)
        for name in names:
            self.store.set_tag(name, record.id)
        for d in digests:
            repo, _, digest = d.partition("@")
            self.store.add_repo_digest(repo, digest, record.id)
        return record.id

    # -- reading ------------------------------------------------------------------
    def layer_size(self, diff_id: str) -> int:
        """Uncompressed size of a layer, from its blob record or its snapshot."""
        row = self.db.execute("SELECT uncompressed_size FROM layers WHERE diff_id=? LIMIT 1",
                              (diff_id,)).fetchone()
        if row is None:
            row = self.db.execute("SELECT size FROM snapshots WHERE diff_id=? LIMIT 1", (diff_id,)).fetchone()
        if row is None:
            raise ImageError(f"layer {diff_id} is not in the store")
        return row[0]

    def _content_size(self, chain: str, diff_id: str) -> int:
        """What `docker history` shows for a layer: the bytes of the files it holds (its
        snapshot's non-directories, hard links once), not its tar's size with headers and
        padding; the tar size when there is no snapshot."""
        size = snapshot_content_size(self.store, chain)
        return self.layer_size(diff_id) if size is None else size

    def content_size(self, image: Image) -> int:
        """What `docker images` shows as SIZE: the content size of all the image's layers,
        each as `history` shows it."""
        diff_ids = list(image.config.diff_ids)
        return sum(self._content_size(c, d)
                   for d, c in zip(diff_ids, chain_ids(diff_ids), strict=True))

    def layer_blob(self, chain: str, diff_id: str, compressed: bool = True) -> Layer:
        """A stored blob of the layer: a compressed one if asked (made now, gzip, if none
        exists yet: compression is lazy), else the cheapest to read."""
        have = self.store.layer_blobs(diff_id)
        order = {"gzip": 0, "zstd": 1, "none": 2} if compressed else {"none": 0, "gzip": 1, "zstd": 2}
        have.sort(key=lambda b: order[b.compression])
        if have and (have[0].compression != "none" or not compressed):
            lb = have[0]
        else:
            from pybuild.image import layers as layer_ops

            lb = layer_ops.ensure_blob(self.store, chain, "gzip")
        return Layer(lb.diff_id, lb.digest, lb.compression, lb.size, lb.uncompressed_size)

    def open_layer_tar(self, diff_id: str) -> BinaryIO:
        """The uncompressed tar stream of a layer."""
        chain = self.db.execute("SELECT chain_id FROM snapshots WHERE diff_id=? LIMIT 1", (diff_id,)).fetchone()
        if chain is None and not self.store.layer_blobs(diff_id):
            raise ImageError(f"layer {diff_id} is not in the store")
        lb = self.layer_blob(chain[0] if chain else "", diff_id, compressed=False)
        from pybuild.image import layers as layer_ops

        return layer_ops.open_plain(self.store, lb.blob_digest)  # type: ignore[return-value]

    def lower_dirs(self, image_id: str) -> list[str]:
        """The overlay lower dirs of an image (topmost first): its layers' snapshots, each
        unpacked once per chain id and shared by every container and build step."""
        config = json.loads(self.get(image_id).config_bytes)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or ())
        cids = chain_ids(diff_ids)
        parent = None
        with self.store.hold():  # gc must not take a snapshot between unpack and use
            for diff_id, cid in zip(diff_ids, cids, strict=True):
                if self.store.snapshot(cid) is None:
                    from pybuild.image import layers as layer_ops

                    with self.open_layer_tar(diff_id) as tar:
                        layer_ops.unpack_layer(self.store, parent, tar,
                                               expected_diff_id=diff_id, keep_blob=False)
                parent = cid
            return self.store.lower_dirs(cids)

    def get(self, image_id: str) -> Image:
        record = self.store.image(image_id)
        if record is None:
            raise ImageError(f"No such image: {image_id}")
        data = self.store.read_blob(image_id)
        tags = tuple(t.reference for t in self.store.tags(image_id))
        digests = tuple(sorted(f"{repo}@{d}" for repo, d, _ in self.store.repo_digests(image_id)))
        return Image(record.id, data, parse_config(data, ref=image_id), tags, digests, record.parent,
                     record.created, record.size)

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
            found = self.store.image_ids_with_prefix(text)
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ImageError(f"ambiguous image id prefix {text!r}: it matches {len(found)} images")
        raise ImageError(f"No such image: {text}")

    def _exists(self, image_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone() is not None

    def manifest(self, image_id: str, fmt: str = "oci") -> Manifest:
        """The manifest of a local image over compressed layer blobs (made now if missing)."""
        check_format(fmt)
        data = self.store.read_blob(image_id)
        config = parse_config(data, ref=image_id)
        descs = []
        for diff_id, chain in zip(config.diff_ids, chain_ids(config.diff_ids), strict=True):
            lb = self.layer_blob(chain, diff_id)
            descs.append(Descriptor(layer_media_type(lb.compression, fmt), lb.blob_digest, lb.size))
        cfg = Descriptor(MT_DOCKER_CONFIG if fmt == "docker" else MT_OCI_CONFIG, image_id, len(data))
        return Manifest(config=cfg, layers=tuple(descs)).converted(fmt)

    # -- tags and removal -----------------------------------------------------------
    def tag(self, image_id: str, target: str) -> str:
        if not self._exists(image_id):
            raise ImageError(f"No such image: {image_id}")
        name = str(refs.parse_tagged(target))
        if refs.parse_normalized(target).digest:
            raise ImageError("refusing to create a tag with a digest reference", ref=target)
        self.store.set_tag(name, image_id)
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
        running, stopped = self._containers_using(image_id)
        by_ref = self._is_reference(text, image)
        events: list[tuple[str, str]] = []
        if by_ref:
            ref = refs.parse_normalized(text)
            name = str(ref.with_default_tag()) if not ref.digest else f"{ref.name}@{ref.digest}"
            tags = [t for t in image.tags if t != name]
            digests = [d for d in image.digests if d != name]
            # Docker: removing the last tag of a repository also drops that repository's
            # digest references (a pulled or pushed image leaves no `<none>` behind)
            same_repo = [] if ref.digest or any(_repo(t) == ref.name for t in tags) else [
                d for d in digests if _repo(d) == ref.name]
            remaining = tags + [d for d in digests if d not in same_repo]
            if remaining:
                for r in (name, *same_repo):
                    self.untag(r)
                    events.append(("Untagged", refs.familiar(r)))
                return events
            if (running or stopped) and not force:
                who = (running + stopped)[0]
                raise ImageError(
                    f'conflict: unable to remove repository reference "{text}" (must force) - '
                    f"container {who[:12]} is using its referenced image {image.short_id}"
                )
            for r in (name, *same_repo):
                self.untag(r)
                events.append(("Untagged", refs.familiar(r)))
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
            with self.store.transaction() as db:  # tags, layers, digests go by ON DELETE CASCADE
                db.execute("UPDATE images SET parent=NULL WHERE parent=?", (image_id,))
                db.execute("DELETE FROM images WHERE id=?", (image_id,))
            events.append(("Deleted", image_id))
            # Docker also deletes untagged parents nothing else needs (build intermediates)
            if not (prune_parents and parent and self._exists(parent)):
                break
            tagged = self.db.execute("SELECT 1 FROM tags WHERE image_id=?", (parent,)).fetchone()
            if tagged or self.children(parent) or any(self._containers_using(parent)):
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
            victims = [i for i in ids if not any(self._containers_using(i)) and not self.children(i)]
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
        """The store's garbage collection (blobs, snapshots, tmp leftovers); bytes freed."""
        return self.store.gc().bytes_freed

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
        chains = dict(zip(image.config.diff_ids, chain_ids(image.config.diff_ids), strict=True))
        for i, (entry, diff_id) in enumerate(reversed(image.config.layer_history())):
            size = self._content_size(chains[diff_id], diff_id) if diff_id else 0
            rows.append((chain[i] if i < len(chain) else "<missing>", entry, size))
        if not rows:  # no history at all: one row for the image itself
            rows.append((image_id, None, image.size))
        return rows


def _repo(reference: str) -> str:
    """The repository of a stored tag (`name:tag`) or digest reference (`name@sha256:...`)."""
    return refs.parse_normalized(reference).name


def snapshot_content_size(store, chain: str) -> int | None:
    """The content size of the snapshot of layer chain `chain` (see content_size), or None
    when the store has no snapshot of it. A snapshot never changes: its size is walked once
    and kept next to its fs/."""
    snap = store.snapshot(chain)
    if snap is None:
        return None
    fs = store.snapshot_dir(snap)
    memo = os.path.join(os.path.dirname(fs), "content-size")
    try:
        with open(memo) as f:
            return int(f.read())
    except (OSError, ValueError):
        pass
    size = content_size(fs)
    tmp = f"{memo}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "w") as f:
            f.write(str(size))
        os.replace(tmp, memo)
    except OSError:  # a read-only store, or gc removed the snapshot meanwhile
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return size


def content_size(path: str) -> int:
    """Sum of the sizes of everything but directories below `path` (lstat: a symlink counts
    its target's length), each inode once, as Docker's directory.Size does."""
    total, seen = 0, set()
    stack = [path]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for e in entries:
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(e.path)
                elif (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total

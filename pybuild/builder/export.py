"""Where a build's result goes (`--output`, BuildKit's exporters): parse the csv syntax, then
write the image as a docker or OCI archive, its final filesystem as a dir or a tar, or keep
it in the store (tagged with `name=`, pushed with `push=true`).

The syntax follows buildx: `type=local,dest=DIR`, `type=tar,dest=F`, `type=oci,dest=F`,
`type=docker,dest=F`, `type=image[,name=REF][,push=true]`, `type=registry` (image with
push); `-o DIR` is local and `-o -` is a tar on stdout; oci and tar without `dest` go to
stdout (never to a terminal); docker without `dest` loads into the store (it is there)."""

from __future__ import annotations

import contextlib
import csv
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from pybuild.errors import PybuildError

__all__ = ["OUTPUT_TYPES", "OutputSpec", "export", "parse_output"]

OUTPUT_TYPES = ("image", "registry", "local", "tar", "oci", "docker")
_KEYS = {  # the attributes each exporter takes; anything else is refused, not ignored
    "image": {"name", "push"},
    "local": {"dest"},
    "tar": {"dest"},
    "oci": {"dest", "name"},
    "docker": {"dest", "name"},
}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass(frozen=True)
class OutputSpec:
    type: str  # "image" | "oci" | "docker" | "local" | "tar" ("registry" is image + push)
    dest: str | None = None  # a dir (local), a file or "-" for stdout (tar, oci, docker)
    names: tuple[str, ...] = ()  # name=: references to tag (image) or record (oci, docker)
    push: bool = False  # image: push every name (and -t tag) to its registry


def parse_output(text: str) -> OutputSpec:
    """One `--output` value -> OutputSpec; PybuildError naming the bad text."""
    try:
        fields = next(csv.reader([text], strict=True), [])
    except csv.Error as e:
        raise PybuildError(f"invalid --output {text!r}: {e}") from None
    if len(fields) == 1 and fields[0] == text and not text.startswith("type="):
        if text == "":
            raise PybuildError("invalid --output '': type is required for output")
        if text == "-":
            return parse_output("type=tar,dest=-")
        _check_dir_dest(text)
        return OutputSpec("local", text)
    attrs: dict[str, str] = {}
    kind = ""
    for field in fields:
        key, eq, value = field.partition("=")
        if not eq:
            raise PybuildError(f"invalid --output {text!r}: invalid value {field}")
        key = key.strip().lower()
        if key == "type":
            kind = value
        else:
            attrs[key] = value
    if not kind:
        raise PybuildError(f"invalid --output {text!r}: type is required for output")
    if kind not in OUTPUT_TYPES:
        raise PybuildError(f"invalid --output {text!r}: unknown output type {kind!r} "
                           f"(one of {', '.join(OUTPUT_TYPES)})")
    push = False
    if kind == "registry":
        kind = "image"
        attrs.setdefault("push", "true")
    unknown = sorted(set(attrs) - _KEYS[kind])
    if unknown:
        raise PybuildError(f"invalid --output {text!r}: the {kind} exporter has no "
                           f"attribute {unknown[0]!r} (it takes {', '.join(sorted(_KEYS[kind]))})")
    if "push" in attrs:
        value = attrs["push"]
        if value not in _TRUE | _FALSE:
            raise PybuildError(f"invalid --output {text!r}: push={value!r} is not a boolean")
        push = value in _TRUE
    names = tuple(n.strip() for n in attrs.get("name", "").split(",") if n.strip())
    dest = attrs.get("dest")
    if kind == "local":
        if not dest:
            raise PybuildError(f"invalid --output {text!r}: dest is required for local exporter")
        if dest == "-":
            raise PybuildError(f"invalid --output {text!r}: dest cannot be stdout for local exporter")
        _check_dir_dest(dest)
    elif kind in ("oci", "tar", "docker"):
        dest = dest or ("-" if kind != "docker" else None)
        # buildx checks where a file goes before the build starts, so do we
        if dest == "-" and _isatty(sys.stdout):
            raise PybuildError(f"dest file is required for {kind} exporter. "
                               "refusing to write to console")
        if dest not in (None, "-") and os.path.isdir(dest):
            raise PybuildError(f"destination file {dest} is a directory")
    return OutputSpec(kind, dest, names, push)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def export(store_root: str, image_id: str, spec: OutputSpec, tags: Sequence[str] = (),
           stdout: BinaryIO | None = None) -> None:
    """Write the built image `image_id` where `spec` says. `tags` are the build's -t
    references (names for archives and pushes when `name=` is not given). A `dest` of "-"
    writes to `stdout` (default: this process's stdout), refused when that is a terminal."""
    from pybuild.image import reference as refs
    from pybuild.image.images import Images

    names = list(spec.names or tags)
    full = []
    for n in names:
        ref = refs.parse_normalized(n)
        if ref.digest:
            raise PybuildError(f"invalid output name {n!r}: a digest reference cannot be a name")
        full.append(str(ref.with_default_tag()))
    images = Images(store_root)
    try:
        with images.store.hold():
            images.get(image_id)  # a clear error for an unknown id
            if spec.type == "image" or (spec.type == "docker" and spec.dest is None):
                for n in full:
                    images.tag(image_id, n)
            elif spec.type in ("oci", "docker"):
                from pybuild.image.archive import write_archive

                fmt = "oci-archive" if spec.type == "oci" else "docker-archive"
                with _open_dest(spec, stdout) as out:
                    write_archive(images, {image_id: full}, out, fmt)
            elif spec.type == "local":
                _check_dir_dest(spec.dest)
                os.makedirs(spec.dest, exist_ok=True)
                merge_layers(images.lower_dirs(image_id), spec.dest)
            elif spec.type == "tar":
                from pybuild.image.snapshots import remove_tree
                from pybuild.image.tarwriter import write_layer_tar

                tree = tempfile.mkdtemp(prefix="export-", dir=images.store.tmp_dir)
                try:
                    merge_layers(images.lower_dirs(image_id), tree)
                    with _open_dest(spec, stdout) as out:
                        write_layer_tar(tree, out)
                finally:
                    remove_tree(tree)
            else:
                raise PybuildError(f"unknown output type {spec.type!r}")
        if spec.type == "image" and spec.push:
            if not full:
                raise PybuildError("push=true needs a name: give -t or name=")
            from pybuild.registry import push
            from pybuild.registry.endpoints import make_options

            options = make_options()  # insecure registries from the environment, as pyrun push
            for n in full:
                push(images.store, n, options)
    finally:
        images.close()


def _check_dir_dest(dest: str) -> None:
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        return
    except OSError as e:
        raise PybuildError(f"invalid destination directory: {dest}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise PybuildError(f"destination directory {dest} is a file")


@contextlib.contextmanager
def _open_dest(spec: OutputSpec, stdout: BinaryIO | None):
    """The file to write: stdout for "-", else a temp file beside dest, fsynced and renamed
    over it only when everything was written (a failed export leaves no half archive)."""
    if spec.dest == "-":
        out = stdout if stdout is not None else sys.stdout.buffer
        if _isatty(out):
            raise PybuildError(f"dest file is required for {spec.type} exporter. "
                               "refusing to write to console")
        yield out
        out.flush()
        return
    dest = spec.dest
    if os.path.isdir(dest):
        raise PybuildError(f"destination file {dest} is a directory")
    parent = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pybuild-export-", dir=parent)
    except OSError as e:
        raise PybuildError(f"failed to open {dest}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def merge_layers(lower_dirs: Sequence[str], dest: str) -> None:
    """Apply overlay-form snapshots (topmost first, as Images.lower_dirs gives them) bottom
    to top into `dest`: the image's final filesystem, whiteouts and opaque dirs applied."""
    from pybuild.builder.merge import apply_snapshot

    for layer in reversed(lower_dirs):
        apply_snapshot(layer, dest)

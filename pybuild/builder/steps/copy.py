"""COPY and ADD: resolve the sources of one instruction into a plan (what will be written,
and the cache content hash of exactly that), then apply the plan to a destination root.

prepare_copy() reads sources (context, another stage's tree, heredocs, URLs) and never
touches the destination; PreparedCopy.apply() writes into it (pybuild.builder.steps
.copy_apply). Semantics follow BuildKit's Dockerfile frontend and its file op (fsutil copy):
a directory source copies its contents; a file goes into the destination when that ends in
`/` or is an existing directory, else becomes it; context files are owned by 0:0, files
from `--from` keep their owners; modes and mtimes are kept; links are copied as links.
"""

from __future__ import annotations

import hashlib
import posixpath
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pybuild.builder.contenthash import StatMemo, file_digest
from pybuild.builder.context import BuildContext, ContextError
from pybuild.builder.steps.copy_perms import ModeError, parse_chmod
from pybuild.builder.steps.copy_sources import (
    Item,
    Node,
    context_items,
    heredoc_item,
    is_git_source,
    is_url,
    root_items,
)
from pybuild.errors import BuildError, DockerfileError
from pybuild.grammar.ignore import IgnoreRules

__all__ = ["CopyRequest", "PreparedCopy", "prepare_copy"]

COPY_HASH_FORMAT = "pybuild-copy/1"


@dataclass(frozen=True)
class CopyRequest:
    add: bool  # ADD semantics (archives, URLs) vs COPY
    sources: tuple[str, ...]  # expanded words as written (globs, URLs for ADD)
    dest: str  # expanded destination (relative -> joined to workdir)
    workdir: str  # the stage's WORKDIR at this step
    chown: str | None = None  # expanded "user[:group]" (names looked up in dest root)
    chmod: str | None = None  # expanded octal, or symbolic (u+x,go=rX)
    excludes: tuple[str, ...] = ()  # --exclude patterns
    checksum: str | None = None  # ADD --checksum=sha256:...
    # COPY <<EOF dest: grammar Heredoc (name, body, expand) or instructions.SourceContent
    # (name, data, expand) values, bodies as written: prepare_copy expands them with `env`
    heredocs: tuple[Any, ...] = ()
    link: bool = False
    parents: bool = False
    keep_git_dir: bool = False
    line: int | None = None
    path: str = "Dockerfile"
    # extensions of the contract:
    env: Mapping[str, str] = field(default_factory=dict)  # expands heredoc bodies
    unpack: bool | None = None  # ADD --unpack: None = local archives yes, URLs no

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    @property
    def keyword(self) -> str:
        return "ADD" if self.add else "COPY"


@dataclass
class PreparedCopy:
    """What one COPY/ADD will write. `content` goes into the step's cache key."""

    content: str
    request: CopyRequest
    items: tuple[Item, ...]
    scratch_dir: str

    def apply(self, dest_root: str) -> None:
        """Write the plan into `dest_root` (a directory: the step's merged overlay)."""
        from pybuild.builder.steps.copy_apply import apply_items

        apply_items(self, dest_root)


def prepare_copy(
    request: CopyRequest,
    *,
    context: BuildContext | None,
    source_root: str | None,
    memo: StatMemo | None,
    scratch_dir: str,
) -> PreparedCopy:
    """Resolve every source of `request` now; raise BuildError (with path:line) for a
    missing source, one outside the context, or a bad flag. Downloads URLs without a
    --checksum into `scratch_dir` (their bytes are their cache content)."""
    where = request.where
    try:
        return _prepare(request, context, source_root, memo, scratch_dir)
    except (ContextError, DockerfileError) as e:
        raise BuildError(getattr(e, "reason", None) or _bare(e), step=where) from None
    except ModeError as e:
        raise BuildError(str(e), step=where) from None
    except BuildError as e:
        if e.step is None:
            raise BuildError(e.message, step=where) from None
        raise


def _bare(e: BuildError) -> str:
    return e.message if e.step is None else e.message[len(e.step) + 2:]


def _prepare(request: CopyRequest, context: BuildContext | None, source_root: str | None,
             memo: StatMemo | None, scratch_dir: str) -> PreparedCopy:
    kw = request.keyword
    if request.chmod is not None:
        parse_chmod(request.chmod)  # bad values fail before anything is read
    if request.keep_git_dir:
        raise BuildError(f"{kw} --keep-git-dir: git sources are not supported by pybuild")
    excludes = _exclude_rules(request)
    urls = [s for s in request.sources if is_url(s) and not is_git_source(s)]
    if request.checksum is not None and (len(urls) != 1 or len(request.sources) != 1
                                         or request.heredocs):
        raise BuildError(f"{kw} --checksum can only be used with a single URL source")
    # in the order written, heredocs last (BuildKit adds SourceContents after SourcePaths)
    items: list[Item] = []
    for source in request.sources:
        if is_git_source(source):
            if not request.add:
                raise BuildError(f'{kw}: source can\'t be a git ref for COPY: "{source}"')
            raise BuildError(f'ADD of a git repository is not supported by pybuild: "{source}"')
        if is_url(source):
            if not request.add:
                raise BuildError(f'{kw}: source can\'t be a URL for COPY: "{source}"')
            from pybuild.builder.steps.copy_url import url_item

            items.append(url_item(source, request, scratch_dir))
        elif source_root is not None:
            items.extend(root_items(source_root, source, excludes, keep_owner=True,
                                    parents=request.parents))
        elif context is not None:
            items.extend(context_items(context, source, excludes, parents=request.parents))
        else:
            raise BuildError(f"{kw} {source}: no build context to copy from")
    for doc in request.heredocs:
        items.append(heredoc_item(doc, request.env))
    if request.add and request.unpack is not False:
        from pybuild.builder.steps.copy_archive import mark_archives

        items = mark_archives(items, urls_too=bool(request.unpack))
    content = _content(request, items, memo, keep_owner=source_root is not None)
    return PreparedCopy(content, request, tuple(items), scratch_dir)


def _exclude_rules(request: CopyRequest) -> IgnoreRules | None:
    if not request.excludes:
        return None
    try:
        return IgnoreRules.from_text("\n".join(request.excludes), source="--exclude")
    except DockerfileError as e:
        raise BuildError(f"{request.keyword} --exclude: {e.reason}") from None


# --- the cache content ---------------------------------------------------------------------

def _content(request: CopyRequest, items: list[Item], memo: StatMemo | None,
             keep_owner: bool) -> str:
    """sha256 over exactly what will be written: per item its kind and name, per node its
    relative path, type, permission bits, owner (only for --from without --chown), and
    bytes digest / link target / device. Never mtimes or inodes."""
    owner = keep_owner and request.chown is None
    now_ns = time.time_ns()
    h = hashlib.sha256()
    _feed(h, [COPY_HASH_FORMAT, request.add, owner])
    for item in items:
        _feed(h, ["item", item.kind, item.name, len(item.prefix)])
        if item.url is not None:
            _feed(h, [item.url, item.digest])
            continue
        for node in (*item.prefix, *item.nodes):
            fields: list = [node.rel, node.kind, stat.S_IMODE(node.mode)]
            if owner:
                fields += [node.uid, node.gid]
            if node.kind == "file":
                fields += [node.size, _node_digest(node, memo, now_ns)]
            elif node.kind == "symlink":
                fields.append(node.target)
            elif node.kind == "other":
                fields += [stat.S_IFMT(node.mode), node.rdev]
            _feed(h, fields)
    return "sha256:" + h.hexdigest()


def _node_digest(node: Node, memo: StatMemo | None, now_ns: int) -> str:
    if node.data is not None:
        return "sha256:" + hashlib.sha256(node.data).hexdigest()
    assert node.src is not None
    entry = node.entry
    digest = memo.get(node.src, entry) if memo is not None and entry is not None else None
    if digest is None:
        try:
            digest = file_digest(node.src)
        except OSError as e:
            raise BuildError(f"cannot read {node.display}: {e.strerror}") from None
        if memo is not None and entry is not None:
            memo.put(node.src, entry, digest, now_ns)
    return digest


def _feed(h, fields: list) -> None:
    # length-prefixed fields (as contenthash.py): no name can make two plans encode alike
    out = [b"%d\n" % len(fields)]
    for f in fields:
        data = str(f).encode("utf-8", "surrogateescape")
        out.append(b"%d:%s" % (len(data), data))
    h.update(b"".join(out))


def dest_path(request: CopyRequest) -> tuple[str, bool]:
    """The absolute destination and whether it names a directory (a trailing `/`, or `.`),
    as BuildKit's pathRelativeToWorkingDir keeps it."""
    dest = request.dest
    if dest in ("", "."):
        dest = "./"
    is_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "..") \
        or dest.endswith("/..")
    joined = posixpath.normpath(posixpath.join("/", request.workdir or "/", dest))
    if joined.startswith("//"):
        joined = "/" + joined.lstrip("/")
    return joined, is_dir


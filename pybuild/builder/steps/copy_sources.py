"""The sources of a COPY/ADD as plan items: matches in the build context (after
.dockerignore), matches in another stage's tree (`--from`, resolved like a chroot), heredoc
bodies. An item is one top-level thing the copy places; its nodes are what it writes."""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pybuild.builder.context import BuildContext, ContextError, Entry, go_match
from pybuild.errors import BuildError
from pybuild.grammar.gocompat import clean_path
from pybuild.grammar.gopattern import valid_match_syntax
from pybuild.grammar.ignore import IgnoreRules
from pybuild.grammar.words import ExpansionError, expand

__all__ = ["Item", "Node", "context_items", "heredoc_item", "is_git_source", "is_url",
           "root_items"]


@dataclass(frozen=True)
class Node:
    """One path an item writes: `rel` is "" for the item itself, else below it."""

    rel: str
    kind: str  # file | dir | symlink | other
    mode: int  # st_mode, type bits included
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    src: str | None = None  # absolute path of the bytes to copy (files)
    target: str | None = None  # symlink target, as written
    rdev: int = 0
    data: bytes | None = None  # inline bytes (heredocs)
    entry: Entry | None = None  # the context entry: the stat memo's key
    display: str = ""  # how errors name the source


@dataclass(frozen=True)
class Item:
    """One top-level thing a copy places: `name` is its base name inside a directory dest.
    kind: file | dir | symlink | other | archive (ADD: extracted) | url (fetched at apply)."""

    name: str
    kind: str
    nodes: tuple[Node, ...] = ()
    url: str | None = None
    digest: str | None = None  # a URL's --checksum or the sha256 of its bytes
    checksum: str | None = None  # verified when a URL is fetched at apply time
    unpack: bool = False  # a URL to extract if it is an archive (ADD --unpack=true)
    # COPY --parents: the source's parent dirs, kept below the destination (rel = their
    # path there, metadata from the source); the item goes inside the last one
    prefix: tuple[Node, ...] = ()


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def is_git_source(source: str) -> bool:
    """What BuildKit's gitutil.ParseGitRef treats as a git repository (a subset)."""
    if source.startswith(("git://", "git@", "ssh://")):
        return True
    return is_url(source) and source.split("#", 1)[0].split("?", 1)[0].endswith(".git")


def _has_meta(segment: str) -> bool:
    return any(c in segment for c in "*?[\\")


def _name(matched: str) -> str:
    base = posixpath.basename(matched.rstrip("/"))
    return base if base not in ("", ".") else "."


def _excluded(rules: IgnoreRules | None, rel: str) -> bool:
    return rules is not None and bool(rel) and rules.ignored(rel)


def _filter_tree(nodes: list[Node], rules: IgnoreRules | None) -> list[Node]:
    """Drop excluded nodes; keep an excluded dir when something below it is kept (a `!`
    exception re-includes it), as the copy has to create it to hold that."""
    if rules is None:
        return nodes
    kept = {n.rel for n in nodes if not n.rel or not rules.ignored(n.rel)}
    for rel in list(kept):
        parent = posixpath.dirname(rel)
        while parent and parent not in kept:
            kept.add(parent)
            parent = posixpath.dirname(parent)
    return [n for n in nodes if n.rel in kept]


# --- the build context ---------------------------------------------------------------------

def _context_node(context: BuildContext, entry: Entry, rel: str) -> Node:
    # The context's owners never count: BuildKit's client sends every file as 0:0.
    src = context.abspath(entry.path) if entry.kind == "file" else None
    return Node(rel, entry.kind, entry.mode, 0, 0, entry.mtime_ns, entry.size, src,
                entry.target, entry.rdev, None, entry, entry.path or ".")


def pivot_depth(source: str) -> int:
    """How many leading components of a matched path --parents drops: those before a
    `/./` in the source as written (BuildKit's pivot), else none."""
    parts = source.lstrip("/").split("/")
    for i, part in enumerate(parts):
        if part == "." and i > 0:
            return len([p for p in parts[:i] if p not in ("", ".")])
    return 0


def _ancestors(name: str, drop: int) -> list[str]:
    """The dirs --parents recreates for the matched path `name` (slash-separated)."""
    parts = [p for p in name.split("/") if p]
    return ["/".join(parts[:i]) for i in range(drop + 1, len(parts))]



def context_items(context: BuildContext, source: str, excludes: IgnoreRules | None,
                  parents: bool = False) -> list[Item]:
    items = []
    drop = pivot_depth(source) if parents else 0
    for match in context.resolve(source):
        if _excluded(excludes, match.name.strip("/")):
            continue
        top = context.entries[match.path] if match.path else context.root_entry
        nodes = [_context_node(context, top, "")]
        if not match.path:
            # BuildKit's context transfer skips the root itself (fsutil's walker), so the
            # root BuildKit copies from is its snapshot's fresh 0755 dir, whatever the
            # context dir's own mode: `COPY . /app` makes /app 0755
            nodes[0] = dataclasses.replace(nodes[0], mode=stat.S_IFDIR | 0o755)
        if match.kind == "dir":
            cut = len(match.path) + 1 if match.path else 0
            nodes += [_context_node(context, e, e.path[cut:]) for e in context.below(match.path)]
            nodes = _filter_tree(nodes, excludes)
        prefix = ()
        if parents:
            prefix = tuple(_context_prefix(context, a, drop) for a in _ancestors(match.name, drop))
        items.append(Item(_name(match.name), match.kind, tuple(nodes), prefix=prefix))
    return items


def _context_prefix(context: BuildContext, ancestor: str, drop: int) -> Node:
    found = context.resolve(ancestor)[0]
    entry = context.entries[found.path] if found.path else context.root_entry
    rel = "/".join(ancestor.split("/")[drop:])
    return _context_node(context, entry, rel)


# --- another stage's tree (COPY --from) ------------------------------------------------------

def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _root_node(full: str, st: os.stat_result, rel: str, display: str) -> Node:
    kind = _kind(st.st_mode)
    return Node(rel, kind, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                st.st_size if kind == "file" else 0, full if kind == "file" else None,
                os.readlink(full) if kind == "symlink" else None,
                st.st_rdev if kind == "other" else 0, None, None, display)


def _walk(full: str, rel: str, display: str, out: list[Node]) -> None:
    try:
        with os.scandir(full) as it:
            found = sorted(it, key=lambda d: d.name)
    except OSError as e:
        raise BuildError(f"cannot read {display}: {e.strerror}") from None
    for d in found:
        st = d.stat(follow_symlinks=False)
        if stat.S_ISSOCK(st.st_mode):
            continue
        child = f"{rel}/{d.name}" if rel else d.name
        out.append(_root_node(d.path, st, child, f"{display}/{d.name}"))
        if stat.S_ISDIR(st.st_mode):
            _walk(d.path, child, f"{display}/{d.name}", out)


def root_items(root: str, source: str, excludes: IgnoreRules | None,
               keep_owner: bool = True, parents: bool = False) -> list[Item]:
    """Matches of `source` inside the directory tree `root`, resolved as if `root` were `/`
    (BuildKit's fs.RootPath: `..` stops at the root, links are followed but never out)."""
    from pybuild.runtime.mounts import secure_join  # not for the context: a cached COPY

    written = source
    path = clean_path("/" + source).lstrip("/") or "."
    segments = [] if path == "." else path.split("/")
    wild = any(_has_meta(s) for s in segments)
    for s in segments:
        if _has_meta(s) and not valid_match_syntax(s):
            raise ContextError(f'"{written}": syntax error in pattern', written)
    names = [""]
    for segment in segments:
        nxt = []
        for name in names:
            if _has_meta(segment):
                real = secure_join(root, name)
                if not os.path.isdir(real) or os.path.islink(real):
                    continue
                nxt.extend(posixpath.join(name, c) if name else c
                           for c in sorted(os.listdir(real)) if go_match(segment, c))
            else:
                nxt.append(posixpath.join(name, segment) if name else segment)
        names = nxt
    items = []
    for name in names:
        real = secure_join(root, name)
        try:
            st = os.lstat(real)
        except (FileNotFoundError, NotADirectoryError):
            if wild:
                continue
            raise ContextError(f'"{written}": not found', written) from None
        if stat.S_ISSOCK(st.st_mode) or _excluded(excludes, name):
            continue
        display = "/" + name
        top = _root_node(real, st, "", display)
        if not keep_owner:
            top = _zero_owner(top)
        nodes = [top]
        if top.kind == "dir":
            _walk(real, "", display.rstrip("/"), nodes)
            nodes = _filter_tree(nodes, excludes)
        prefix = ()
        if parents:
            drop = pivot_depth(source)
            prefix = tuple(_root_prefix(root, a, drop) for a in _ancestors(name, drop))
        items.append(Item(_name(name), top.kind, tuple(nodes), prefix=prefix))
    if not items and wild:
        raise ContextError(f'"{written}": no source files were specified', written)
    return items


def _root_prefix(root: str, ancestor: str, drop: int) -> Node:
    from pybuild.runtime.mounts import secure_join

    real = secure_join(root, ancestor)
    rel = "/".join(ancestor.split("/")[drop:])
    return _root_node(real, os.stat(real), rel, "/" + ancestor)


def _zero_owner(node: Node) -> Node:
    return Node(node.rel, node.kind, node.mode, 0, 0, node.mtime_ns, node.size, node.src,
                node.target, node.rdev, node.data, node.entry, node.display)


# --- heredocs --------------------------------------------------------------------------------

_QUOTE = re.compile(r"\\.|\\\Z|['\"]", re.S)


def expand_heredoc(body: str, env: Mapping[str, str]) -> str:
    """BuildKit's ExpandRaw for COPY heredocs: variables expand, `\\x` gives `x`, quotes
    stay as they are (lex.SkipProcessQuotes). Our scanner always processes quotes, so each
    unescaped quote is escaped first, which makes the scanner keep it literally."""
    protected = _QUOTE.sub(lambda m: m.group(0) if m.group(0)[0] == "\\" else "\\" + m.group(0),
                           body)
    return expand(protected, env, "\\")


def heredoc_item(doc: Any, env: Mapping[str, str]) -> Item:
    """A heredoc source: a file named after its delimiter, 0644, owned by 0:0."""
    body = doc.body if hasattr(doc, "body") else doc.data
    if doc.expand:
        try:
            body = expand_heredoc(body, env)
        except ExpansionError as e:
            raise BuildError(f"heredoc {doc.name}: {e.reason}") from None
    data = body.encode("utf-8", "surrogateescape")
    name = _name(doc.name)
    node = Node("", "file", stat.S_IFREG | 0o644, 0, 0, time.time_ns(), len(data),
                data=data, display=f"<<{doc.name}")
    return Item(name, "file", (node,))

"""The build context: which files are sent (the walk, with .dockerignore applied as BuildKit's
fsutil walker does), and which of them a COPY/ADD source names (globs, symlinks, errors).

Ignored files are invisible, as in BuildKit: no source can name them and no hash sees them.
An ignored directory stays when a `!` exception re-includes something inside it (only that
something is in it). Content hashes of sources live in pybuild.builder.contenthash.
"""

from __future__ import annotations

import bisect
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from pybuild.errors import BuildError
from pybuild.grammar.gocompat import clean_path
from pybuild.grammar.gopattern import valid_match_syntax
from pybuild.grammar.ignore import IgnoreRules, ParentMatches, load_ignore

__all__ = ["BuildContext", "ContextError", "Entry", "Source", "go_match"]

_MAX_LINK_HOPS = 40  # Linux's MAXSYMLINKS


class ContextError(BuildError):
    """A COPY/ADD source that is missing, ignored, or outside the context. `source` names it."""

    def __init__(self, message: str, source: str, step: str | None = None):
        self.source = source
        super().__init__(message, step=step)


@dataclass(frozen=True)
class Entry:
    """One path that is sent, as lstat saw it (symlinks are not followed)."""

    path: str  # slash-separated, relative to the context root
    kind: str  # file | dir | symlink | other (fifo, device)
    mode: int  # st_mode
    uid: int
    gid: int
    size: int
    mtime_ns: int
    inode: int
    rdev: int = 0
    target: str | None = None  # a symlink's target, as written


@dataclass(frozen=True)
class Source:
    """One match of a COPY/ADD source: `name` is the path as written/matched (what the copy
    calls it), `path` where it really is once symlinks are followed ("" is the root)."""

    name: str
    path: str
    kind: str


class BuildContext:
    """A walked context dir. `entries` maps each sent relative path to its Entry."""

    def __init__(self, root: str | os.PathLike, rules: IgnoreRules | None = None):
        self.root = os.path.abspath(root)
        self.rules = rules if rules is not None else IgnoreRules()
        if not os.path.isdir(self.root):
            raise ContextError(f"{self.root}: the build context is not a directory", ".")
        self.entries: dict[str, Entry] = {}
        self._children: dict[str, list[str]] = {"": []}
        self._walk(self.root, "", None)
        self._sorted = sorted(self.entries)
        # `COPY . /app` copies the root's permission bits onto /app, so hashes need them
        self.root_entry = _entry("", os.lstat(self.root), "dir")

    @classmethod
    def open(cls, root: str | os.PathLike, dockerfile: str | Path | None = None) -> BuildContext:
        """Walk `root` with the ignore file a build of `dockerfile` would use."""
        return cls(root, load_ignore(root, dockerfile))

    def files(self) -> list[str]:
        """Every path that is sent (dirs, files, links), sorted."""
        return list(self._sorted)

    def below(self, path: str) -> list[Entry]:
        """The entries strictly inside dir `path` ("" = the root), sorted by path."""
        if not path:
            return [self.entries[p] for p in self._sorted]
        prefix = path + "/"
        start = bisect.bisect_left(self._sorted, prefix)
        out = []
        for p in self._sorted[start:]:
            if not p.startswith(prefix):
                break
            out.append(self.entries[p])
        return out

    def abspath(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def unsent(self) -> list[str]:
        """The paths on disk that are not sent (ignored, or sockets) whose parent dir is:
        hiding exactly these shows a view of the context as BuildKit transfers it."""
        out = []
        for rel in ["", *(p for p, e in self.entries.items() if e.kind == "dir")]:
            sent = set(self._children.get(rel, ()))
            try:
                names = sorted(os.listdir(self.abspath(rel)))
            except OSError:
                continue
            out.extend(_join(rel, n) for n in names if n not in sent)
        return out

    # --- the walk ------------------------------------------------------------------------

    def _walk(self, abs_dir: str, rel_dir: str, state: ParentMatches | None) -> bool:
        """Add what is sent below `rel_dir`; True if anything was."""
        try:
            with os.scandir(abs_dir) as it:
                found = sorted(it, key=lambda d: d.name)
        except OSError as e:
            raise ContextError(f"cannot read {rel_dir or '.'}: {e.strerror}", rel_dir or ".") from None
        rules = self.rules
        any_sent = False
        for d in found:
            rel = f"{rel_dir}/{d.name}" if rel_dir else d.name
            ignored, sub = rules.match(rel, state) if rules.patterns else (False, None)
            try:
                st = d.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we walk
            if stat.S_ISDIR(st.st_mode):
                if ignored and rules.can_skip_dir(rel):
                    continue
                self._children[rel] = []
                mark = len(self.entries)
                self.entries[rel] = _entry(rel, st, "dir")
                inside = self._walk(d.path, rel, sub)
                if ignored and not inside:  # kept only for what an exception re-included
                    del self.entries[rel]
                    del self._children[rel]
                    assert len(self.entries) == mark
                    continue
            elif ignored or stat.S_ISSOCK(st.st_mode):
                continue  # sockets cannot be copied; BuildKit skips them too
            elif stat.S_ISLNK(st.st_mode):
                self.entries[rel] = _entry(rel, st, "symlink", os.readlink(d.path))
            else:
                self.entries[rel] = _entry(rel, st, "file" if stat.S_ISREG(st.st_mode) else "other")
            self._children[rel_dir].append(d.name)
            any_sent = True
        return any_sent

    # --- sources -------------------------------------------------------------------------

    def resolve(self, source: str) -> list[Source]:
        """The matches of one COPY/ADD source, sorted. A leading `/` means the context root
        (as in BuildKit). Raises ContextError when nothing matches or the source leaves the
        context (`../x`, or a symlink pointing out)."""
        written = source
        path = clean_path(source.lstrip("/") or ".")
        if path == ".." or path.startswith("../"):
            raise ContextError(f'"{written}": forbidden path outside the build context', written)
        segments = [] if path == "." else path.split("/")
        wild = any(_has_meta(s) for s in segments)
        for s in segments:
            if _has_meta(s) and not valid_match_syntax(s):
                raise ContextError(f'"{written}": syntax error in pattern', written)
        names = [""]
        for i, segment in enumerate(segments):
            last = i == len(segments) - 1
            nxt = []
            for name in names:
                try:
                    real = self._real(name, written)
                except ContextError:
                    if not wild:
                        raise
                    continue  # a glob passing a link that leaves the context: not a match
                if real is None or (real and self.entries[real].kind != "dir"):
                    continue
                if _has_meta(segment):
                    pattern = _segment_regex(segment)
                    nxt.extend(_join(name, c) for c in self._children[real] if pattern.match(c))
                elif segment in self._children[real]:
                    nxt.append(_join(name, segment))
            names = nxt if last else sorted(set(nxt))
        out = []
        for name in sorted(set(names)):
            real = self._real(name, written)
            if real is None:
                continue  # a dangling link: nothing to copy
            out.append(Source(name, real, self.entries[real].kind if real else "dir"))
        if not out:
            if wild:
                raise ContextError(f'"{written}": no source files were specified', written)
            raise ContextError(
                f'"{written}": not found: file not found in build context or excluded by'
                " .dockerignore", written)
        return out

    def _real(self, path: str, source: str, hops: list[int] | None = None) -> str | None:
        """Follow symlinks in `path` within the context; None if a part is not sent."""
        hops = hops if hops is not None else [0]
        current = ""
        for part in path.split("/") if path else []:
            candidate = _join(current, part)
            entry = self.entries.get(candidate)
            if entry is None:
                return None
            if entry.kind == "symlink":
                hops[0] += 1
                if hops[0] > _MAX_LINK_HOPS:
                    raise ContextError(f'"{source}": too many levels of symbolic links', source)
                target = entry.target or ""
                joined = posixpath.normpath(posixpath.join(current, target))
                if target.startswith("/") or joined == ".." or joined.startswith("../"):
                    raise ContextError(
                        f'"{source}": symlink {candidate} -> {target} points outside the'
                        " build context", source)
                candidate = self._real("" if joined == "." else joined, source, hops)
                if candidate is None:
                    return None
            current = candidate
        return current


def _entry(rel: str, st: os.stat_result, kind: str, target: str | None = None) -> Entry:
    return Entry(rel, kind, st.st_mode, st.st_uid, st.st_gid, st.st_size if kind == "file" else 0,
                 st.st_mtime_ns, st.st_ino, st.st_rdev if kind == "other" else 0, target)


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _has_meta(segment: str) -> bool:
    # Go's filepath hasMeta on Unix: these characters make a source a pattern
    return any(c in segment for c in "*?[\\")


def go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match for one path segment (no `/` in `name`)."""
    return _segment_regex(pattern).match(name) is not None


_regex_cache: dict[str, re.Pattern[str]] = {}


def _segment_regex(pattern: str) -> re.Pattern[str]:
    """filepath.Match as a regex: `*` any run, `?` one char (never `/`), `[...]` classes
    with `^` negation and ranges, `\\` escaping the next char. Callers validated syntax."""
    found = _regex_cache.get(pattern)
    if found is not None:
        return found
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            negate = i < len(pattern) and pattern[i] == "^"
            if negate:
                i += 1
            parts = []
            while i < len(pattern):
                ch = pattern[i]
                if ch == "]" and parts:  # a `]` right after `[` or `[^` is a literal
                    break
                if ch == "\\" and i + 1 < len(pattern):
                    i += 1
                    ch = pattern[i]
                item = re.escape(ch)
                if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
                    hi = pattern[i + 2]
                    i += 2
                    if hi == "\\" and i + 1 < len(pattern):
                        i += 1
                        hi = pattern[i]
                    item = f"{re.escape(ch)}-{re.escape(hi)}"
                parts.append(item)
                i += 1
            body = "".join(parts)
            out.append(f"[^/{body}]" if negate else f"[{body}]")
        else:
            out.append(re.escape(c))
        i += 1
    compiled = re.compile("".join(out) + r"\Z", re.DOTALL)
    _regex_cache[pattern] = compiled
    return compiled

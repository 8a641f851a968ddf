"""Dockerfile text -> syntax tree: logical lines (lines.py) parsed by the LALR grammar
(dockerfile.lark) into instructions with line spans; dump() prints BuildKit's test format.

The grammar's tables come from a cache file, so a run does not rebuild them; lark itself is
imported only when the first Dockerfile is parsed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from pybuild.errors import DockerfileError
from pybuild.grammar import forms
from pybuild.grammar.heredoc import HeredocNameError, heredoc_markers
from pybuild.grammar.lines import Directive, LineReader, LogicalLine

GRAMMAR = Path(__file__).with_name("dockerfile.lark")
_SWAP = str.maketrans("\\`", "`\\")  # the grammar knows `\` as escape; see dockerfile.lark
_HEREDOC_KEYWORDS = ("run", "add", "copy")


@dataclass(frozen=True)
class Heredoc:
    name: str
    body: str  # the lines between marker and terminator, each ending in "\n";
    # for <<- the leading tabs are already removed
    expand: bool  # False if the marker was quoted ('EOF', "EOF")
    strip_tabs: bool  # <<-
    fd: int | None = None  # 3<<EOF


@dataclass(frozen=True)
class Instruction:
    keyword: str  # lowercased keyword as written ("run"; unknown ones kept)
    args: tuple[str, ...]  # the items exactly as BuildKit's dump prints them
    flags: tuple[str, ...]  # raw flag words, e.g. ("--from=build", "--chown=1:1")
    json: bool  # exec (JSON) form
    original: str  # the logical line as written, continuations joined
    start_line: int  # 1-based physical lines, BuildKit's rules
    end_line: int
    heredocs: tuple[Heredoc, ...] = ()
    inner: Instruction | None = None  # ONBUILD's nested instruction


@dataclass(frozen=True)
class Dockerfile:
    path: str
    escape: str
    directives: tuple[Directive, ...]
    instructions: tuple[Instruction, ...]
    warnings: tuple[str, ...] = ()


# ---- the LALR parser, built once per grammar and lark version, then loaded from a file ----

_lock = threading.Lock()
_parser = None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pybuild"


def get_parser():
    """The Lark LALR parser (contextual lexer), from the cache file when it is current."""
    global _parser
    if _parser is not None:
        return _parser
    with _lock:
        if _parser is None:
            _parser = _load_parser()
    return _parser


def _load_parser():
    import lark

    text = GRAMMAR.read_text(encoding="utf-8")
    key = hashlib.sha256(f"{lark.__version__}\0{text}".encode()).hexdigest()[:16]
    cache = _cache_dir() / f"dockerfile-{key}.lark.cache"
    try:
        with open(cache, "rb") as f:
            return lark.Lark.load(f)
    except Exception:  # noqa: BLE001 - missing, stale or damaged: rebuild below
        pass
    parser = lark.Lark(text, parser="lalr", lexer="contextual", start="start")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            parser.save(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home only costs the table build next time
    return parser


# ---- tree -> instructions -------------------------------------------------------------


class _Builder:
    """Turns the grammar's tree for one joined text into Instructions (items, flags)."""

    def __init__(self, text: str, escape: str, path: str):
        self.text = text  # as written (before the escape swap)
        self.escape = escape
        self.swapped = escape != "\\"
        self.path = path

    def value(self, token) -> str:
        return token.value.translate(_SWAP) if self.swapped else token.value

    def instruction(self, tree, line: LogicalLine) -> Instruction:
        children = tree.children
        keyword_token = children[0]
        keyword = _go_lower(self.value(keyword_token))
        flags: list[str] = []
        rest = []
        for child in children[1:]:
            if getattr(child, "type", None) == "FLAG":
                flags.append(child.value)
            else:
                rest.append(child)
        decoded = [forms.unquote_flag(f) for f in flags]
        if any(not f.isascii() or f == "--" for f in decoded):
            return self._bytewise(keyword_token, line)
        if self.swapped:
            decoded = [f.translate(_SWAP) for f in decoded]
        args, is_json, inner = self._items(tree.data, keyword, rest, line)
        return Instruction(
            keyword,
            args,
            tuple(decoded),
            is_json,
            line.text,
            line.start_line,
            line.end_line,
            inner=inner,
        )

    def _bytewise(self, keyword_token, line: LogicalLine) -> Instruction:
        """Flags with non-ASCII bytes (or a quoted `--`): BuildKit reads them byte by byte,
        so take the flags that way and let the grammar parse `KEYWORD -- ARGS`."""
        end = self.text.index("\n", keyword_token.end_pos)
        remainder = self.text[keyword_token.end_pos : end].lstrip("\t\v\f\r ")
        flags, args = forms.extract_flags_bytes(remainder, self.escape)
        keyword = self.text[keyword_token.start_pos : keyword_token.end_pos]
        args = forms.trim_u(args)
        synthetic = f"{keyword} -- {args}" if args else keyword
        plain = _parse_logical(synthetic, self.escape, self.path, line)
        return Instruction(
            plain.keyword,
            plain.args,
            tuple(flags),
            plain.json,
            line.text,
            line.start_line,
            line.end_line,
            inner=plain.inner,
        )

    def _items(self, kind: str, keyword: str, rest: list, line: LogicalLine):
        if kind == "onbuild":
            if not rest:
                return (), False, None
            return (), False, self.instruction(rest[0], line)
        if kind in ("arg", "env"):
            words = [forms.to_unicode(self.value(t)) for t in rest]
            if kind == "arg" or not words:
                return tuple(words), False, None
            return self._key_values(keyword, words, rest[0], line), False, None
        args = forms.trim_u(self.value(rest[0])) if rest else ""
        if kind == "unknown":
            return ("",), False, None
        if kind in ("from", "list_args"):
            return forms.list_items(args), False, None
        if kind == "string_args":
            return ((args,) if args else ()), False, None
        if kind == "healthcheck":
            parts = forms.healthcheck_parts(args)
            if parts is None:
                return (), False, None
            items, is_json = self._json_or(parts[1], line, fallback=None)
            return (parts[0], *items), is_json, None
        fallback = "list" if kind == "json_list" else None
        if not args and fallback is None:
            return (), False, None
        items, is_json = self._json_or(args, line, fallback)
        return items, is_json, None

    def _json_or(self, args: str, line: LogicalLine, fallback: str | None):
        try:
            items = forms.json_items(args)
        except forms.NotStringArray as e:
            raise DockerfileError(str(e), path=self.path, line=line.start_line) from None
        if items is not None:
            return items, True
        if fallback == "list":
            return forms.list_items(args), False
        return ((args,) if args else ()), False

    def _key_values(self, keyword: str, words: list[str], first, line: LogicalLine):
        name = keyword.upper()
        if "=" not in words[0]:
            # Old form `ENV key value`: split the raw arguments once at A-white space.
            end = self.text.index("\n", first.start_pos)
            parts = forms.A_SPLIT.split(self.text[first.start_pos : end], maxsplit=1)
            if len(parts) < 2:
                raise DockerfileError(
                    f"{name} must have two arguments", path=self.path, line=line.start_line
                )
            return (parts[0], parts[1], "")
        items: list[str] = []
        for word in words:
            key, sep, value = word.partition("=")
            if not sep:
                raise DockerfileError(
                    f"Syntax error - can't find = in {word!r}. Must be of the form: name=value",
                    path=self.path,
                    line=line.start_line,
                )
            items += (key, value, "=")
        return tuple(items)


def _go_lower(word: str) -> str:
    """Go's strings.ToLower: simple per-code-point mapping (keywords are ASCII in practice)."""
    if word.isascii():
        return word.lower()
    return "".join(
        "i" if c == "\u0130" else (c.lower() if len(c.lower()) == 1 else c) for c in word
    )


def _parse_text(lines: list[LogicalLine], escape: str, path: str) -> list[Instruction]:
    """Parse many logical lines with one call into the LALR parser."""
    import lark

    texts = [forms.trim_u(line.text) for line in lines]
    text = "\n".join(texts) + "\n"
    builder = _Builder(text, escape, path)
    try:
        tree = get_parser().parse(text.translate(_SWAP) if builder.swapped else text)
    except lark.exceptions.LarkError as e:  # the grammar accepts every line; be safe anyway
        number = text.count("\n", 0, getattr(e, "pos_in_stream", 0) or 0)
        raise DockerfileError(
            f"cannot parse: {e}", path=path, line=lines[min(number, len(lines) - 1)].start_line
        ) from None
    result: list[Instruction] = []
    for line_tree, line in zip(tree.children, lines, strict=True):
        if line_tree.children:
            result.append(builder.instruction(line_tree.children[0], line))
        else:  # an empty logical line: no keyword, BuildKit prints ("")
            result.append(
                Instruction("", ("",), (), False, line.text, line.start_line, line.end_line)
            )
    return result


def _parse_logical(text: str, escape: str, path: str, line: LogicalLine) -> Instruction:
    span = LogicalLine(text, line.start_line, line.end_line)
    return _parse_text([span], escape, path)[0]


def _with_heredocs(instr: Instruction, reader: LineReader, path: str) -> Instruction:
    target = instr.inner if instr.keyword == "onbuild" and instr.inner else instr
    if target.keyword not in _HEREDOC_KEYWORDS or target.json:
        return instr
    try:
        markers = heredoc_markers(instr.original)
    except HeredocNameError as e:
        raise DockerfileError(str(e), path=path, line=instr.start_line) from None
    if not markers:
        return instr
    docs = []
    for marker in markers:
        body = reader.read_heredoc(marker.name, marker.strip_tabs, instr.start_line)
        if marker.strip_tabs:
            body = "".join(part.lstrip("\t") for part in body.splitlines(keepends=True))
        docs.append(Heredoc(marker.name, body, marker.expand, marker.strip_tabs, marker.fd))
    docs_t = tuple(docs)
    end = reader.last_line
    if target is instr:
        return _replace(instr, heredocs=docs_t, end_line=end)
    inner = _replace(target, heredocs=docs_t, end_line=end)
    return _replace(instr, heredocs=docs_t, end_line=end, inner=inner)


def _replace(instr: Instruction, **changes) -> Instruction:
    import dataclasses

    return dataclasses.replace(instr, **changes)


def parse(source: str | bytes, path: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile; raises DockerfileError(message, path, line) for what BuildKit
    rejects at parse time."""
    reader = LineReader(source, path)
    lines: list[LogicalLine] = []
    instructions: list[Instruction | None] = []
    heredoc_lines: list[tuple[int, Instruction]] = []
    while (line := reader.next_logical()) is not None:
        if "<<" in line.text:
            # Heredoc bodies decide where the next instruction starts: parse this line now.
            instr = _with_heredocs(
                _parse_logical(line.text, reader.escape, path, line), reader, path
            )
            heredoc_lines.append((len(instructions), instr))
            instructions.append(instr)
        else:
            lines.append(line)
            instructions.append(None)
    parsed = iter(_parse_text(lines, reader.escape, path)) if lines else iter(())
    result = tuple(item if item is not None else next(parsed) for item in instructions)
    if not result:
        last = reader.line_count or 1
        raise DockerfileError("file with no instructions", path=path, line=last)
    return Dockerfile(path, reader.escape, reader.directives, result)


# ---- BuildKit's printed form ------------------------------------------------------------

_SHORT = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def quote(text: str) -> str:
    """Go's strconv.Quote for a string decoded with surrogateescape."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out = ['"']
    for ch in text:
        cp = ord(ch)
        if 0xDC80 <= cp <= 0xDCFF:
            out.append("\\x%02x" % (cp - 0xDC00))
        elif ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _SHORT:
            out.append(_SHORT[ch])
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\x{cp:02x}")
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


def render(instr: Instruction) -> str:
    text = instr.keyword
    if instr.flags:
        text += " [" + " ".join(quote(f) for f in instr.flags) + "]"
    for item in instr.args:
        text += " " + quote(item)
    if instr.inner is not None:
        text += " (" + render(instr.inner) + ")"
    return forms.trim_u(text)


def dump(tree: Dockerfile) -> str:
    """BuildKit's `result` format: one `(keyword [flags] "item"...)` line per instruction."""
    return "".join(f"({render(instr)})\n" for instr in tree.instructions)

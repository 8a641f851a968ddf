"""Dockerfile text -> syntax tree: logical lines (lines.py) parsed by the LALR grammar
(dockerfile.lark) into instructions with line spans; dump() prints BuildKit's test format.

The grammar's tables come from a cache file, so a run does not rebuild them; lark itself is
imported only when the first Dockerfile is parsed.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from pybuild.errors import DockerfileError
from pybuild.grammar import forms
from pybuild.grammar.heredoc import HeredocNameError, heredoc_markers
from pybuild.grammar.lines import Directive, LineReader, LogicalLine
from pybuild.grammar.printer import dump, quote, render  # noqa: F401  (parser.dump is the contract)

GRAMMAR = Path(__file__).with_name("dockerfile.lark")
_SWAP = str.maketrans("\\`", "`\\")  # the grammar knows `\` as escape; see dockerfile.lark
_HEREDOC_KEYWORDS = ("run", "add", "copy")
KEYWORDS = frozenset(
    (
        "from",
        "run",
        "cmd",
        "label",
        "maintainer",
        "expose",
        "env",
        "add",
        "copy",
        "entrypoint",
        "volume",
        "user",
        "workdir",
        "arg",
        "onbuild",
        "stopsignal",
        "healthcheck",
        "shell",
    )
)
_KEYWORD_SPACE = "\n\t\v\f\r "  # the newline before and the A-white space after a keyword
# The form of a flagless line's arguments, by its token (the grammar's `_line`).
_LINE_KINDS = {
    "LIST_LINE": "list_args",
    "STRING_LINE": "string_args",
    "JSON_STRING_LINE": "json_string",
    "JSON_LIST_LINE": "json_list",
    "ARG_LINE": "arg",
    "KEY_VALUE_LINE": "env",
    "HEALTHCHECK_LINE": "healthcheck",
    "ONBUILD_LINE": "onbuild",
    "KEYWORD_LINE": "unknown",
}
_KEYWORD_HEAD = re.compile(r"\n([^\t\v\f\r \n]*)[\t\v\f\r ]*")


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


_FIELDS = ("keyword", "args", "flags", "json", "original", "start_line", "end_line")
_new = object.__new__


def _instruction(*values, inner: Instruction | None = None) -> Instruction:
    """Instruction(*values, inner=inner) without the frozen dataclass's __init__, which sets
    each field through object.__setattr__: that was a quarter of the cost per instruction.
    (tests/unit/test_grammar_parser.py checks that the two build equal objects.)"""
    obj = _new(Instruction)
    fields = obj.__dict__
    fields.update(zip(_FIELDS, values, strict=True))
    fields["heredocs"] = ()
    fields["inner"] = inner
    return obj


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
_Token = None  # lark.Token, once lark is imported


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
    global _Token
    import lark

    _Token = lark.Token
    text = GRAMMAR.read_text(encoding="utf-8")
    key = hashlib.sha256(f"{lark.__version__}\0{text}".encode()).hexdigest()[:16]
    cache = _cache_dir() / f"dockerfile-{key}.lark.cache"
    try:
        with open(cache, "rb") as f:
            return lark.Lark.load(f)
    except Exception:  # noqa: BLE001 - missing, stale or damaged: rebuild below
        pass
    parser = lark.Lark(text, parser="lalr", lexer="contextual", start=["start", "words"])
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


_word_re = None


def _word_pattern():
    """The grammar's WORD terminal as a compiled regex: findall() over arguments gives the
    same words as parsing them from the `words` start symbol, one call instead of a token
    each."""
    global _word_re
    if _word_re is None:
        _word_re = re.compile(get_parser().get_terminal("WORD").pattern.to_regexp())
    return _word_re


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

    def instruction(self, node, line: LogicalLine) -> Instruction:
        """One instruction from a *_LINE token (no flags) or a rule's tree (flags)."""
        if node.__class__ is _Token:  # (a Token is a str)
            head = node.translate(_SWAP) if self.swapped else node
            kind, children = _LINE_KINDS[node.type], ()
        else:
            children = node.children
            head, kind = self.value(children[0]), node.data
        match = _KEYWORD_HEAD.match(head)
        keyword = match.group(1)
        keyword = keyword.lower() if keyword.isascii() else _go_lower(keyword)
        flags: tuple[str, ...] = ()
        if not children:
            text = head[match.end() :]
        else:
            text = ""
            raw_flags = []
            for child in children[1:]:
                if child.type == "FLAG":
                    raw_flags.append(forms.unquote_flag(child.value))
                else:
                    text = self.value(child)
            if any(not f.isascii() or f == "--" for f in raw_flags):
                return self._bytewise(children[0], line)
            flags = (
                tuple(f.translate(_SWAP) for f in raw_flags) if self.swapped else tuple(raw_flags)
            )
        args = forms.trim_u(text) if text else ""
        items, is_json, inner = self._forms[kind](self, keyword, args, line)
        return _instruction(
            keyword, items, flags, is_json, line.text, line.start_line, line.end_line, inner=inner
        )

    def _bytewise(self, keyword_token, line: LogicalLine) -> Instruction:
        """Flags with non-ASCII bytes (or a quoted `--`): BuildKit reads them byte by byte,
        so take the flags that way and let the grammar parse `KEYWORD -- ARGS`."""
        end = self.text.find("\n", keyword_token.end_pos)
        remainder = self.text[keyword_token.end_pos : end if end >= 0 else len(self.text)]
        flags, args = forms.extract_flags_bytes(remainder, self.escape)
        keyword = self.text[keyword_token.start_pos : keyword_token.end_pos].strip(_KEYWORD_SPACE)
        args = forms.trim_u(args)
        plain = _parse_logical(
            f"{keyword} -- {args}" if args else keyword, self.escape, self.path, line
        )
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

    # One method per argument form (the grammar's rule names): -> (items, json, inner).

    def _list_args(self, keyword, args, line):
        return forms.list_items(args), False, None

    def _string_args(self, keyword, args, line):
        return ((args,) if args else ()), False, None

    def _json_string(self, keyword, args, line):
        if args[:1] != "[":  # (args are trimmed) the shell form, or nothing
            return ((args,) if args else ()), False, None
        items = self._json(args, line)
        return ((args,), False, None) if items is None else (items, True, None)

    def _json_list(self, keyword, args, line):
        items = self._json(args, line)
        return (forms.list_items(args), False, None) if items is None else (items, True, None)

    def _arg(self, keyword, args, line):
        return tuple(self._words(args)), False, None

    def _env(self, keyword, args, line):
        words = self._words(args)
        if not words:
            return (), False, None
        name = keyword.upper()
        if "=" not in words[0]:
            # Old form `ENV key value`: the raw arguments split once at A-white space.
            parts = forms.A_SPLIT.split(args, maxsplit=1)
            if len(parts) < 2:
                raise DockerfileError(
                    f"{name} must have two arguments", path=self.path, line=line.start_line
                )
            return (parts[0], parts[1], ""), False, None
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
        return tuple(items), False, None

    def _healthcheck(self, keyword, args, line):
        parts = forms.healthcheck_parts(args)
        if parts is None:
            return (), False, None
        kind, command = parts
        if not command:
            return (kind,), False, None
        items = self._json(command, line)
        return ((kind, command), False, None) if items is None else ((kind, *items), True, None)

    def _onbuild(self, keyword, args, line):
        if not args:
            return (), False, None
        return (), False, _parse_logical(args, self.escape, self.path, line)

    def _unknown(self, keyword, args, line):
        return ("",), False, None

    _forms = {
        "list_args": _list_args,
        "string_args": _string_args,
        "json_string": _json_string,
        "json_list": _json_list,
        "arg": _arg,
        "env": _env,
        "healthcheck": _healthcheck,
        "onbuild": _onbuild,
        "unknown": _unknown,
    }

    def _json(self, args: str, line: LogicalLine) -> tuple[str, ...] | None:
        try:
            return forms.json_items(args)
        except forms.NotStringArray as e:
            raise DockerfileError(str(e), path=self.path, line=line.start_line) from None

    def _words(self, args: str) -> list[str]:
        """ARG/ENV/LABEL words, by the grammar's WORD terminal (see `words` in the grammar)."""
        if not args:
            return []
        if self.swapped:
            words = [w.translate(_SWAP) for w in _word_pattern().findall(args.translate(_SWAP))]
        else:
            words = _word_pattern().findall(args)
        return words if args.isascii() else [forms.to_unicode(w) for w in words]


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

    # Each line is preceded by "\n" (see dockerfile.lark); an empty line becomes an
    # instruction with an empty keyword, as in BuildKit.
    text = "\n" + "\n".join([forms.trim_u(line.text) for line in lines])
    builder = _Builder(text, escape, path)
    try:
        tree = get_parser().parse(text.translate(_SWAP) if builder.swapped else text, start="start")
    except lark.exceptions.LarkError as e:  # the grammar accepts every line; be safe anyway
        number = text.count("\n", 0, getattr(e, "pos_in_stream", 0) or 0)
        raise DockerfileError(
            f"cannot parse: {e}",
            path=path,
            line=lines[max(0, min(number, len(lines)) - 1)].start_line,
        ) from None
    instruction = builder.instruction
    return [instruction(node, line) for node, line in zip(tree.children, lines, strict=True)]


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
    early: dict[int, Instruction] = {}
    while batch := reader.take_logical():
        lines += batch
        line = batch[-1]
        if "<<" in line.text:
            # Heredoc bodies decide where the next instruction starts: parse this line now.
            instr = _parse_logical(line.text, reader.escape, path, line)
            early[len(lines) - 1] = _with_heredocs(instr, reader, path)
    if not lines:
        raise DockerfileError("file with no instructions", path=path, line=reader.line_count or 1)
    result = _parse_text(lines, reader.escape, path)
    for index, instr in early.items():
        result[index] = instr
    return Dockerfile(path, reader.escape, reader.directives, tuple(result))


def require_known(tree: Dockerfile) -> Dockerfile:
    """Reject unknown instructions, as a build does at dispatch (the parse itself accepts
    them, like BuildKit's): `Dockerfile:7: unknown instruction "RUNN"`."""
    for instr in tree.instructions:
        for level in (instr, instr.inner):
            if level is not None and level.keyword not in KEYWORDS:
                word = (
                    forms.trim_u(level.original).split(maxsplit=1)[0]
                    if level is instr
                    else level.keyword
                )
                raise DockerfileError(
                    f"unknown instruction {quote(word.upper())}",
                    path=tree.path,
                    line=instr.start_line,
                )
    return tree

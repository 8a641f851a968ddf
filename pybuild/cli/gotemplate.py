"""Go text/template, the part Docker's --format uses, over JSON-shaped Python values.

One engine for every --format and -f of the CLI (inspect, ps, images, network, volume,
stats): `{{.A.B}}`, `{{$}}`, `{{$x := .A}}`, pipelines with `|`, `( ... )`, `{{if}}
{{else if}} {{else}} {{end}}`, `{{range $i, $v := .L}}`, `{{with}}`, `{{- trim -}}`,
`{{/* comments */}}`, Go's builtins (and, or, not, eq, ne, lt, le, gt, ge, len, index,
slice, print, printf, println, html, js, urlquery) and Docker's own (json, join, split,
lower, upper, title, pad, truncate).

Written here because no maintained Python package implements Go's template language
(Jinja and friends use other syntax), and Docker users write Go templates.

Values are what json.load gives, plus callables for methods (ps's `{{.Label "k"}}`).
Go tells structs from maps by type; JSON cannot, so a dict whose keys all start with an
upper-case letter is taken as a struct (a missing field is an error, as Docker says) and
any other dict as a map (a missing key is `<no value>`).
"""

from __future__ import annotations

import html as _html
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


class TemplateError(ValueError):
    """A template that does not parse or cannot run over the data, in Go's words."""


class _NoValue:
    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()

# ---------------------------------------------------------------------------- parse

_DELIM = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<comma>,)
  | (?P<lparen>\()
  | (?P<rparen>\)(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
""", re.X | re.S)


@dataclass
class _Cmd:
    args: list  # operands: ("field", [names]) ("var", name, [names]) ("lit", v) ("fn", name) ("pipe", _Pipe, [names])


@dataclass
class _Pipe:
    cmds: list[_Cmd]
    decl: list[str] = field(default_factory=list)  # variables declared (:=) or assigned (=)
    assign: bool = False
    text: str = ""


@dataclass
class _Block:
    kind: str  # "if" | "range" | "with"
    pipe: _Pipe
    body: list
    orelse: list | None = None


class _Parser:
    def __init__(self, text: str):
        self.items = list(self._lex(text))
        self.pos = 0

    @staticmethod
    def _lex(text: str):
        pos, line = 0, 1
        trim_next = False
        for m in _DELIM.finditer(text):
            chunk = text[pos:m.start()]
            if trim_next:
                chunk = chunk.lstrip()
            if m.group(1):
                chunk = chunk.rstrip()
            if chunk:
                yield ("text", chunk, line)
            line += text.count("\n", pos, m.start())
            yield ("action", m.group(2), line)
            line += m.group(0).count("\n")
            trim_next = bool(m.group(3))
            pos = m.end()
        rest = text[pos:]
        if "{{" in rest:
            raise TemplateError(f"template: :{line + rest[:rest.index('{{')].count(chr(10))}: "
                                "unclosed action")
        if trim_next:
            rest = rest.lstrip()
        if rest:
            yield ("text", rest, line)

    def parse(self) -> list:
        nodes, end = self._list()
        if end is not None:
            raise TemplateError(f"template: :{end[1]}: unexpected {{{{{end[0]}}}}}")
        return nodes

    def _list(self):
        """Nodes up to an {{end}}/{{else ...}} (returned as its words) or the end."""
        nodes = []
        while self.pos < len(self.items):
            kind, text, line = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                nodes.append(text)
                continue
            words = _tokens(text, line)
            if not words and text.strip().startswith("/*"):
                continue  # {{/* a comment */}}
            if not words:
                raise TemplateError(f"template: :{line}: missing value for command")
            head = words[0]
            if head == ("ident", "end") or head == ("ident", "else"):
                return nodes, (text.strip(), line, words)
            if head[0] == "ident" and head[1] in ("if", "range", "with"):
                nodes.append(self._block(head[1], words[1:], line))
            elif head == ("ident", "define") or head == ("ident", "template") \
                    or head == ("ident", "block"):
                raise TemplateError(f"template: :{line}: {head[1]} is not supported")
            elif head == ("ident", "break") or head == ("ident", "continue"):
                nodes.append(("loopctl", head[1], line))
            else:
                nodes.append(_pipeline(words, line, text.strip()))
        return nodes, None

    def _block(self, kind: str, words, line: int) -> _Block:
        block = _Block(kind, _pipeline(words, line, kind), [])
        block.body, end = self._list()
        if end is None:
            raise TemplateError(f"template: :{line}: unexpected EOF")
        _, eline, ewords = end
        if ewords[0] == ("ident", "else"):
            rest = ewords[1:]
            if rest and rest[0][0] == "ident" and rest[0][1] in ("if", "with") and kind != "range":
                # {{else if ...}} / {{else with ...}}: a nested block sharing our {{end}}
                block.orelse = [self._block(rest[0][1], rest[1:], eline)]
                return block
            if rest:
                raise TemplateError(f"template: :{eline}: unexpected words after else")
            block.orelse, end = self._list()
            if end is None or end[2][0] != ("ident", "end"):
                raise TemplateError(f"template: :{eline}: expected end; found "
                                    f"{'EOF' if end is None else end[0]}")
        elif len(ewords) > 1:
            raise TemplateError(f"template: :{eline}: unexpected words after end")
        return block


def _tokens(text: str, line: int) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise TemplateError(f"template: :{line}: unexpected {text[pos]!r} in command")
        pos = m.end()
        if m.lastgroup not in ("space", "comment"):
            out.append((m.lastgroup, m.group()))
    return out


def _pipeline(words, line: int, text: str) -> _Pipe:
    pipe = _Pipe([], text=text)
    # declarations: $x := ..., $i, $v := ..., $x = ...
    for i, (kind, _) in enumerate(words):
        if kind in ("declare", "assign"):
            names = [w[1] for w in words[:i] if w[0] == "var"]
            if not names or any(w[0] not in ("var", "comma") for w in words[:i]):
                raise TemplateError(f"template: :{line}: bad declaration in {text!r}")
            pipe.decl, pipe.assign, words = names, kind == "assign", words[i + 1:]
            break
        if kind == "pipe" or kind == "lparen":
            break
    pipe.cmds = _commands(words, line, text)
    return pipe


def _commands(words, line: int, text: str) -> list[_Cmd]:
    cmds, cur, i = [], [], 0
    while i < len(words):
        kind, val = words[i]
        if kind == "pipe":
            if not cur:
                raise TemplateError(f"template: :{line}: missing command in {text!r}")
            cmds.append(_Cmd(cur))
            cur = []
        elif kind == "lparen":
            depth, j = 1, i + 1
            while j < len(words) and depth:
                depth += {"lparen": 1, "rparen": -1}.get(words[j][0], 0)
                j += 1
            if depth:
                raise TemplateError(f"template: :{line}: unclosed left paren in {text!r}")
            inner = _Pipe(_commands(words[i + 1:j - 1], line, text), text=text)
            chain = [p for p in words[j - 1][1][1:].split(".") if p]
            cur.append(("pipe", inner, chain))
            i = j
            continue
        elif kind == "rparen":
            raise TemplateError(f"template: :{line}: unexpected right paren in {text!r}")
        else:
            cur.append(_operand(kind, val, line))
        i += 1
    if not cur:
        raise TemplateError(f"template: :{line}: missing value for command")
    cmds.append(_Cmd(cur))
    return cmds


def _operand(kind: str, val: str, line: int):
    if kind == "field":
        return ("field", [p for p in val.split(".") if p])
    if kind == "var":
        name, *chain = val.split(".")
        return ("var", name, chain)
    if kind == "string":
        return ("lit", json.loads(val) if "\\" not in val else _go_unquote(val))
    if kind == "raw":
        return ("lit", val[1:-1])
    if kind == "char":
        return ("lit", ord(_go_unquote('"' + val[1:-1] + '"')))
    if kind == "number":
        v = val.replace("_", "")
        try:
            return ("lit", int(v, 0))
        except ValueError:
            return ("lit", float(v))
    if kind == "ident":
        if val in ("true", "false"):
            return ("lit", val == "true")
        if val == "nil":
            return ("lit", None)
        if val not in FUNCS and val not in ("and", "or"):
            raise TemplateError(f'template: :{line}: function "{val}" not defined')
        return ("fn", val)
    raise TemplateError(f"template: :{line}: unexpected {val!r} in operand")


def _go_unquote(text: str) -> str:
    try:
        return json.loads(text)
    except ValueError:
        return text[1:-1].encode().decode("unicode_escape")


# ---------------------------------------------------------------------------- values

def _is_struct(d: Mapping) -> bool:
    return bool(d) and all(isinstance(k, str) and k[:1].isupper() for k in d)


def text(value) -> str:
    """fmt's %v of a value."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, Mapping):
        if _is_struct(value) and not isinstance(value, _Headers):
            return "{" + " ".join(text(v) for v in value.values()) + "}"
        return "map[" + " ".join(f"{text(k)}:{text(value[k])}" for k in sorted(value, key=str)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(text(v) for v in value) + "]"
    return str(value)


def _go_float(f: float) -> str:
    """strconv's %g with the shortest digits, as fmt's %v prints a float64."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    from decimal import Decimal

    _, digits, e = Decimal(repr(abs(f))).normalize().as_tuple()
    exp10 = len(digits) + e - 1
    sign = "-" if f < 0 else ""
    if exp10 < -4 or exp10 >= 6:  # strconv: shortest %g decides with precision 6
        ds = "".join(map(str, digits))
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{sign}{mant}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"
    return sign + format(Decimal(repr(abs(f))).normalize(), "f")


def truth(value) -> bool:
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | str | list | tuple | Mapping):
        return bool(value)
    return True


def to_json(value) -> str:
    """Docker's json: encoding/json without HTML escaping, compact."""
    return json.dumps(None if value is NO_VALUE else value, separators=(",", ":"),
                      ensure_ascii=False, default=str)


def _index(item, *keys):
    for key in keys:
        if isinstance(item, Mapping):
            item = item.get(key, NO_VALUE) if not isinstance(item, _Headers) else item[key]
            if item is NO_VALUE:
                return NO_VALUE
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        elif item is None:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(item).__name__}")
    return item


def _slice(item, *bounds):
    if not isinstance(item, list | tuple | str):
        raise TemplateError(f"error calling slice: can't slice item of type {type(item).__name__}")
    if len(bounds) > 2:
        raise TemplateError("error calling slice: too many slice indexes")
    return item[slice(*bounds)]


def _len(item) -> int:
    if isinstance(item, list | tuple | str | Mapping):
        return len(item)
    raise TemplateError(f"error calling len: len of type {type(item).__name__}")


def _cmp(op: str) -> Callable:
    def compare(a, *bs):
        if not bs:
            raise TemplateError(f"wrong number of args for {op}: want at least 2 got 1")
        a = None if a is NO_VALUE else a
        for b in bs:
            b = None if b is NO_VALUE else b
            if op in ("eq", "ne"):
                same = a == b and (type(a) is bool) == (type(b) is bool)
                if op == "eq" and same:
                    return True
                if op == "ne":
                    return not same
                continue
            if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
                raise TemplateError(f"error calling {op}: incompatible types for comparison")
            return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
        return False
    return compare


_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+))?([a-zA-Z%])")


def printf(fmt: str, *args) -> str:
    """fmt.Sprintf for the verbs templates use: %v %s %d %q %x %X %o %b %f %e %g %t %c %%."""
    out, pos, argi = [], 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        spec = flags.replace("#", "") + (width or "") + (f".{prec}" if prec else "")
        try:
            if verb in "vs":
                s = text(arg)[:int(prec)] if prec else text(arg)
                w = int(width or 0)
                out.append(s.ljust(w) if "-" in flags else s.rjust(w))
            elif verb == "q":
                out.append(json.dumps(text(arg) if not isinstance(arg, str) else arg, ensure_ascii=False))
            elif verb == "t":
                out.append(text(bool(arg)))
            elif verb == "c":
                out.append(chr(arg))
            elif verb in "dxXob":
                out.append(format(int(arg), spec + verb.replace("d", "d")))
            elif verb in "feEgG":
                out.append(format(float(arg), spec + verb))
            else:
                out.append(f"%!{verb}({text(arg)})")
        except (TypeError, ValueError):
            out.append(f"%!{verb}({type(arg).__name__}={text(arg)})")
    out.append(fmt[pos:])
    if argi < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{type(a).__name__}={text(a)}" for a in args[argi:]) + ")")
    return "".join(out)


def _print(*args) -> str:
    # fmt.Sprint: spaces between operands when neither side is a string
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(text(a))
    return "".join(out)


def _pad(s, before: int, after: int) -> str:
    return " " * before + text(s) + " " * after


def _truncate(s, n: int) -> str:
    s = text(s)
    return s[:n] if len(s) > n else s


def _split(s, sep: str) -> list[str]:
    return text(s).split(sep) if sep else list(text(s))


def _join(items, sep: str) -> str:
    if not isinstance(items, list | tuple):
        raise TemplateError("error calling join: wrong type for value; expected []string")
    return sep.join(text(i) for i in items)


def _title(s) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), text(s))


def _js(*args) -> str:
    s = _print(*args)
    return "".join(c if c.isalnum() or c in " _.,:;/-" else f"\\u{ord(c):04X}"
                   if c in "<>&='\"`\\" or ord(c) < 32 else c for c in s)


FUNCS: dict[str, Callable] = {
    "json": to_json, "join": _join, "split": _split, "lower": lambda s: text(s).lower(),
    "upper": lambda s: text(s).upper(), "title": _title, "pad": _pad, "truncate": _truncate,
    "len": _len, "index": _index, "slice": _slice, "print": _print,
    "printf": printf, "println": lambda *a: " ".join(text(x) for x in a) + "\n",
    "html": lambda *a: _html.escape(_print(*a)).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"),
    "js": _js, "urlquery": lambda *a: urllib.parse.quote_plus(_print(*a)),
    "not": lambda v: not truth(v),
    "eq": _cmp("eq"), "ne": _cmp("ne"), "lt": _cmp("lt"), "le": _cmp("le"),
    "gt": _cmp("gt"), "ge": _cmp("ge"),
}

# ---------------------------------------------------------------------------- execute


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Exec:
    def __init__(self, root):
        self.scopes: list[dict[str, object]] = [{"$": root}]
        self.out: list[str] = []

    def run(self, nodes, dot) -> None:
        for node in nodes:
            if isinstance(node, str):
                self.out.append(node)
            elif isinstance(node, _Pipe):
                value = self.pipe(node, dot)
                if not node.decl:
                    self.out.append(text(value))
            elif isinstance(node, _Block):
                self.block(node, dot)
            elif node[0] == "loopctl":
                raise _Break() if node[1] == "break" else _Continue()

    def block(self, node: _Block, dot) -> None:
        self.scopes.append({})
        try:
            value = self.pipe(node.pipe, dot, declare_only=node.kind == "range")
            if node.kind == "range":
                self.range(node, value, dot)
            elif truth(value):
                self.run(node.body, value if node.kind == "with" else dot)
            elif node.orelse is not None:
                self.run(node.orelse, dot)
        finally:
            self.scopes.pop()

    def range(self, node: _Block, value, dot) -> None:
        if value is NO_VALUE or value is None:
            items = []
        elif isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value, key=str)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        else:
            raise TemplateError(f"range can't iterate over {text(value)}")
        if not items:
            if node.orelse is not None:
                self.run(node.orelse, dot)
            return
        names = node.pipe.decl
        for key, item in items:
            scope = self.scopes[-1]
            if len(names) == 1:
                scope[names[0]] = item
            elif len(names) == 2:
                scope[names[0]], scope[names[1]] = key, item
            try:
                self.run(node.body, item)
            except _Break:
                break
            except _Continue:
                continue

    def pipe(self, pipe: _Pipe, dot, declare_only: bool = False):
        value = NO_VALUE
        for i, cmd in enumerate(pipe.cmds):
            value = self.command(cmd, dot, value if i else NO_VALUE, has_prev=i > 0, pipe=pipe)
        if pipe.decl and not declare_only:
            if pipe.assign:
                for name in pipe.decl:
                    self._scope_of(name, pipe)[name] = value
            else:
                self.scopes[-1][pipe.decl[0]] = value
        return value

    def _scope_of(self, name: str, pipe: _Pipe) -> dict:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope
        raise TemplateError(f'template: undefined variable "{name}" in {pipe.text!r}')

    def command(self, cmd: _Cmd, dot, prev, has_prev: bool, pipe: _Pipe):
        first, rest = cmd.args[0], cmd.args[1:]
        if first[0] == "fn":
            args = [self.operand(a, dot, pipe) for a in rest]
            if has_prev:
                args.append(prev)
            return self.call(first[1], args, pipe)
        if first[0] == "field" and (rest or has_prev):
            # a method call: the last name in the chain takes the arguments
            args = [self.operand(a, dot, pipe) for a in rest] + ([prev] if has_prev else [])
            target = self.chain(dot, first[1][:-1], pipe)
            method = self.chain(target, first[1][-1:], pipe, call_last=False)
            if not callable(method):
                raise TemplateError(f"template: executing {pipe.text!r}: "
                                    f"{first[1][-1]} has arguments but cannot be invoked")
            return method(*args)
        if rest or has_prev:
            raise TemplateError(f"template: executing {pipe.text!r}: can't give argument to non-function")
        return self.operand(first, dot, pipe)

    def call(self, name: str, args: list, pipe: _Pipe):
        if name == "and":
            for a in args:
                if not truth(a):
                    return a
            return args[-1] if args else NO_VALUE
        if name == "or":
            for a in args:
                if truth(a):
                    return a
            return args[-1] if args else NO_VALUE
        try:
            return FUNCS[name](*args)
        except TemplateError as e:
            raise TemplateError(f"template: executing {pipe.text!r}: {e}") from None
        except TypeError as e:
            raise TemplateError(f"template: executing {pipe.text!r}: wrong arguments for {name}: "
                                f"{e}") from None

    def operand(self, op, dot, pipe: _Pipe):
        kind = op[0]
        if kind == "lit":
            return op[1]
        if kind == "field":
            return self.chain(dot, op[1], pipe)
        if kind == "var":
            for scope in reversed(self.scopes):
                if op[1] in scope:
                    return self.chain(scope[op[1]], op[2], pipe)
            raise TemplateError(f'template: undefined variable "{op[1]}"')
        if kind == "pipe":
            return self.chain(self.pipe(op[1], dot), op[2], pipe)
        if kind == "fn":
            return self.call(op[1], [], pipe)
        raise TemplateError(f"template: bad operand {op!r}")

    def chain(self, value, names, pipe: _Pipe, call_last: bool = True):
        for i, name in enumerate(names):
            if isinstance(value, Mapping):
                try:
                    value = value[name]
                except KeyError:
                    if _is_struct(value):
                        raise TemplateError(f"template: executing {pipe.text!r}: "
                                            f"can't evaluate field {name}") from None
                    value = NO_VALUE
                if callable(value) and not isinstance(value, Mapping) and \
                        (call_last or i < len(names) - 1):
                    value = value()
            elif value is None or value is NO_VALUE:
                raise TemplateError(f"template: executing {pipe.text!r}: "
                                    f"nil pointer evaluating .{name}")
            else:
                raise TemplateError(f"template: executing {pipe.text!r}: can't evaluate field "
                                    f"{name} in type {_go_type(value)}")
        return value


def _go_type(value) -> str:
    return {str: "string", int: "int", float: "float64", bool: "bool",
            list: "[]interface {}"}.get(type(value), type(value).__name__)


class _Headers(dict):
    """The header row's data for `table` templates: a field's column title, or its name
    in capitals when there is no title for it, as Docker's formatter does."""

    def __missing__(self, key: str) -> str:
        return key.upper()


@dataclass(frozen=True)
class Template:
    source: str
    nodes: tuple

    def execute(self, data) -> str:
        ex = _Exec(data)
        try:
            ex.run(self.nodes, data)
        except (_Break, _Continue):
            raise TemplateError("template: break or continue outside range") from None
        return "".join(ex.out)


def parse(source: str) -> Template:
    """Docker's handling first: `\\t` and `\\n` typed on the command line are tab and newline."""
    source = source.replace("\\t", "\t").replace("\\n", "\n")
    return Template(source, tuple(_Parser(source).parse()))


def render(source: str, data) -> str:
    return parse(source).execute(data)


def headers(titles: Mapping[str, str]) -> _Headers:
    return _Headers(titles)

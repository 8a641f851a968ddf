"""Typed Dockerfiles remembered by their bytes, so a rebuild of an unchanged Dockerfile skips
lark and the parser (a third of a fully cached build's time).

An entry is JSON in <root>/buildcache/dockerfiles/<key>.json: the TypedDockerfile's dataclass
tree, each object tagged with its class name and rebuilt only from the classes listed here
(plain data: nothing in the file can run code). The key covers the bytes, the name used in
messages, and the size and mtime of the modules that turn text into instructions, so an
edited grammar or converter never serves an old tree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from pybuild.builder import convert, instructions, mounts
from pybuild.builder.convert import TypedDockerfile

FORMAT = "pybuild-parse-cache/1"
_CODE = ("grammar/parser.py", "grammar/lines.py", "grammar/heredoc.py", "grammar/forms.py",
         "grammar/dockerfile.lark", "builder/convert.py", "builder/instructions.py",
         "builder/mounts.py", "builder/flags.py", "builder/parsecache.py")
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dataclasses(module) -> dict[str, type]:
    return {value.__name__: value for value in vars(module).values()
            if isinstance(value, type) and dataclasses.is_dataclass(value)
            and value.__module__ == module.__name__}


class _Classes(dict):
    """Class name -> class. The parser's node classes (heredocs, syntax nodes) are looked up
    only when an entry holds one: most Dockerfiles have none, and the grammar package costs
    a cached build a tenth of its start-up."""

    def __missing__(self, name: str) -> type:
        from pybuild.grammar import parser

        for key, value in _dataclasses(parser).items():
            self.setdefault(key, value)
        found = self.get(name)  # get(): no second __missing__
        if found is None:
            raise KeyError(name)  # not a class we know
        return found


def _classes() -> dict[str, type]:
    found = _Classes()
    for module in (instructions, convert, mounts):
        found.update(_dataclasses(module))
    return found


def _code_stamp() -> str:
    parts = []
    for rel in _CODE:
        try:
            st = os.stat(os.path.join(_PACKAGE, rel))
            parts.append(f"{rel}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{rel}:-")
    return "|".join(parts)


def _encode(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"@": type(value).__name__,
                "f": {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"@t": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {"@d": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if value is None or isinstance(value, str | int | float | bool):
        return str(value) if isinstance(value, str) else value  # lark Tokens become str
    raise TypeError(f"cannot remember a {type(value).__name__} in a parsed Dockerfile")


def _decode(value, classes: dict[str, type]):
    if isinstance(value, dict):
        if "@" in value:
            cls = classes[value["@"]]  # KeyError: not a class we know -> the entry is ignored
            return cls(**{k: _decode(v, classes) for k, v in value["f"].items()})
        if "@t" in value:
            return tuple(_decode(v, classes) for v in value["@t"])
        if "@d" in value:
            return {_decode(k, classes): _decode(v, classes) for k, v in value["@d"]}
        raise ValueError("unknown object in a parse cache entry")
    if isinstance(value, list):
        return [_decode(v, classes) for v in value]
    return value


def typed_dockerfile(store_root: str, data: bytes, name: str) -> TypedDockerfile:
    """The typed Dockerfile of `data` (its errors name `name`), from the cache when it can."""
    key = hashlib.sha256(
        json.dumps([FORMAT, _code_stamp(), name]).encode() + b"\0" + data).hexdigest()
    directory = os.path.join(store_root, "buildcache", "dockerfiles")
    path = os.path.join(directory, f"{key}.json")
    try:
        with open(path, "rb") as f:
            typed = _decode(json.loads(f.read()), _classes())
        if isinstance(typed, TypedDockerfile):
            return typed
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or unreadable: parse again (and rewrite it)
    from pybuild.grammar import parse

    typed = convert.type_dockerfile(parse(data, path=name))
    try:
        text = json.dumps(_encode(typed), separators=(",", ":")).encode()
        os.makedirs(directory, 0o755, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        with open(tmp, "wb") as f:
            f.write(text)
        os.replace(tmp, path)
    except (OSError, TypeError):
        pass  # a read-only store still builds, just without the shortcut
    return typed

"""pybuild.dataclass_cache: our modules' dataclasses behave exactly as without the cache,
whether their methods were compiled now (a miss) or loaded from __pycache__ (a hit); the
file is written only when bytecode may be written; other modules' dataclasses are left
alone. Each case runs in a fresh interpreter over a throwaway module under tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

if sys.version_info[:2] != (3, 11):
    pytest.skip("the cache patches Python 3.11's dataclasses only", allow_module_level=True)

# a module named pybuild.* whose file lives in tmp_path: what our real modules look like
_MODULE = '''
from __future__ import annotations
import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

@dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    kind: ClassVar[str] = "point"

@dataclass
class Box:
    items: list[int] = field(default_factory=list)
    name: str = "box"

@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int = 0
'''

_PROBE = '''
import dataclasses, inspect, json, sys, types
import pybuild, pybuild.dataclass_cache as cache
path, name = sys.argv[1], sys.argv[2]
mod = types.ModuleType(name)  # run from source: a same-second edit must not meet a stale .pyc
mod.__file__ = path
sys.modules[name] = mod
with open(path) as f:
    exec(compile(f.read(), path, "exec"), mod.__dict__)
P, B, V = mod.Point, mod.Box, mod.Version
p = P(1, tags=("a",))
try:
    p.x = 2
    frozen = "no error"
except dataclasses.FrozenInstanceError as e:
    frozen = type(e).__name__
b = B()
b.items.append(1)
out = {
    "repr": [repr(p), repr(B()), repr(V(1, 2))],
    "eq": [p == P(1, 0, ("a",)), p == P(2), B() == B(), B() is not B()],
    "hash": [hash(p) == hash(P(1, 0, ("a",))), B.__hash__ is None],
    "order": [V(1, 2) < V(1, 3), sorted([V(2), V(1, 5)]) == [V(1, 5), V(2)]],
    "frozen": frozen,
    "factory": [B().items, b.items],
    "signature": [str(inspect.signature(P)), str(inspect.signature(B))],
    "doc": [P.__doc__, B.__doc__],
    "init_annotations": {k: str(v) for k, v in P.__init__.__annotations__.items()},
    "fields": [f.name for f in dataclasses.fields(P)],
    "classvar": P.kind,
    "missed": sorted(cache._missed),
    "qualname": P.__init__.__qualname__,
}
print(json.dumps(out))
'''


def _probe(tmp_path, name: str, write: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    res = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "values.py"), name],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _cache_file(tmp_path):
    return tmp_path / "__pycache__" / f"values.{sys.implementation.cache_tag}.dataclasses"


def test_miss_then_hit_behave_like_plain_dataclasses(tmp_path):
    (tmp_path / "values.py").write_text(_MODULE)
    plain = _probe(tmp_path, "values_plain", write=True)  # not pybuild.*: no cache at all
    assert plain["missed"] == [] and not _cache_file(tmp_path).exists()

    missed = _probe(tmp_path, "pybuild.values_probe", write=True)
    assert missed["missed"] == ["pybuild.values_probe"]
    assert _cache_file(tmp_path).exists()

    hit = _probe(tmp_path, "pybuild.values_probe", write=True)
    assert hit["missed"] == []  # every method came from the file
    for result in (missed, hit):
        for key in plain:
            if key != "missed":
                assert result[key] == plain[key], key


def test_nothing_written_without_bytecode_writing(tmp_path):
    (tmp_path / "values.py").write_text(_MODULE)
    result = _probe(tmp_path, "pybuild.values_probe", write=False)
    assert result["missed"] == ["pybuild.values_probe"]
    assert not _cache_file(tmp_path).exists()


def test_an_edited_class_is_a_miss_and_a_damaged_file_is_ignored(tmp_path):
    (tmp_path / "values.py").write_text(_MODULE)
    _probe(tmp_path, "pybuild.values_probe", write=True)
    # a new default is passed in, not compiled in: still a hit, and still honoured
    (tmp_path / "values.py").write_text(_MODULE.replace("y: int = 0", "y: int = 7"))
    redefault = _probe(tmp_path, "pybuild.values_probe", write=True)
    assert redefault["missed"] == []
    assert redefault["repr"][0] == "Point(x=1, y=7, tags=('a',))"
    # a new field changes the methods' text: a miss
    (tmp_path / "values.py").write_text(_MODULE.replace("y: int = 0", "y: int = 7\n    z: int = 3"))
    edited = _probe(tmp_path, "pybuild.values_probe", write=True)
    assert edited["missed"] == ["pybuild.values_probe"]
    assert edited["repr"][0] == "Point(x=1, y=7, z=3, tags=('a',))"
    _cache_file(tmp_path).write_bytes(b"\x00not marshal")
    damaged = _probe(tmp_path, "pybuild.values_probe", write=True)
    assert damaged["missed"] == ["pybuild.values_probe"]
    assert damaged["repr"][0] == "Point(x=1, y=7, z=3, tags=('a',))"
    assert _probe(tmp_path, "pybuild.values_probe", write=True)["missed"] == []

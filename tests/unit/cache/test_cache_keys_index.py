"""Cache keys (stable, versioned, proxy-free) and the SQLite index (migration, gc roots)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pybuild.cache import index, keys
from pybuild.image import gc, meta, snapshots
from pybuild.image.store import Store

BASE = "sha256:" + "ab" * 32


def test_key_is_stable_and_versioned():
    k = keys.step_key(BASE, "RUN echo hi", {"A": "1"}, used=["A"])
    assert k.startswith("sha256:") and len(k) == 71
    assert k == keys.step_key(BASE, "RUN echo hi", {"A": "1"}, used=["A"])
    assert k != keys.step_key(BASE, "RUN echo ho", {"A": "1"}, used=["A"])
    assert k != keys.step_key("sha256:" + "cd" * 32, "RUN echo hi", {"A": "1"}, used=["A"])
    assert k != keys.step_key(BASE, "RUN echo hi", {"A": "2"}, used=["A"])


def test_key_format_version_matters(monkeypatch):
    before = keys.step_key(BASE, "RUN true")
    monkeypatch.setattr(keys, "KEY_FORMAT", "pybuild-cache-key/999")
    assert keys.step_key(BASE, "RUN true") != before


def test_only_used_args_count_sorted():
    used = keys.step_key(BASE, "RUN x", {"A": "1", "B": "2"}, used=["A"])
    assert used == keys.step_key(BASE, "RUN x", {"A": "1", "B": "other"}, used=["A"])
    assert used == keys.step_key(BASE, "RUN x", {"A": "1"}, used=["A", "NOT_AN_ARG"])
    both = keys.step_key(BASE, "RUN x", {"A": "1", "B": "2"})
    assert both == keys.step_key(BASE, "RUN x", {"B": "2", "A": "1"})
    assert both != used


@pytest.mark.parametrize("name", ["HTTP_PROXY", "https_proxy", "NO_PROXY", "ftp_proxy", "ALL_PROXY"])
def test_proxy_args_stay_out(name):
    plain = keys.step_key(BASE, "RUN curl x")
    assert keys.step_key(BASE, "RUN curl x", {name: "http://proxy:3128"}) == plain
    assert keys.step_key(BASE, "RUN curl x", {name: "http://p"}, used=[name]) == plain


def test_content_hash_counts():
    a = keys.step_key(BASE, "COPY a /a", content="sha256:" + "1" * 64)
    assert a != keys.step_key(BASE, "COPY a /a", content="sha256:" + "2" * 64)
    assert a != keys.step_key(BASE, "COPY a /a")


def test_no_parent_is_refused():
    with pytest.raises(ValueError):
        keys.step_key("", "RUN x")


def test_key_same_in_another_process():
    args = {"V": "ünï\u00e9", "W": "x y"}
    here = keys.step_key(BASE, "RUN echo $V ✓", args, used=["V", "W"], content="sha256:" + "3" * 64)
    code = (
        "from pybuild.cache import keys;"
        f"print(keys.step_key({BASE!r}, 'RUN echo $V ✓', {args!r}, used=['W', 'V'],"
        f" content='sha256:' + '3' * 64))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.strip()
    assert out == here


def _snapshot(store: Store, name: str, parent: str | None = None):
    def fill(d):
        with open(os.path.join(d, name), "w") as f:
            f.write(name)
        return "sha256:" + name.encode().hex().ljust(64, "0")[:64], 1
    return snapshots.create(store, parent, None, fill, durable=False)


def test_migration_creates_cache_table(store):
    assert meta.schema_version() >= 2
    cols = {r[1] for r in store.db.execute("PRAGMA table_info(cache)")}
    assert {"key", "chain_id", "config_change", "created"} <= cols


def test_record_and_lookup(store):
    assert index.lookup(store, "sha256:none") is None
    snap = _snapshot(store, "a")
    e = index.record(store, "sha256:k1", snap.chain_id, {"Env": ["A=1"]})
    got = index.lookup(store, "sha256:k1")
    assert got is not None and got.chain_id == snap.chain_id
    assert got.config_change == {"Env": ["A=1"]} == e.config_change
    index.record(store, "sha256:k2", None, {"Cmd": ["sh"]})
    assert index.lookup(store, "sha256:k2").chain_id is None
    with pytest.raises(ValueError):
        index.record(store, "sha256:k3", "sha256:" + "9" * 64)
    assert index.lookup(store, "sha256:k3") is None
    assert index.forget(store, ["sha256:k2"]) == 1
    assert index.lookup(store, "sha256:k2") is None


def test_gc_keeps_cached_snapshots_and_their_parents(store):
    base = _snapshot(store, "base")
    top = _snapshot(store, "top", parent=base.chain_id)
    loose = _snapshot(store, "loose")
    index.record(store, "sha256:k", top.chain_id)
    result = gc.collect(store)
    assert loose.chain_id in result.snapshots
    assert store.snapshot(top.chain_id) is not None
    assert store.snapshot(base.chain_id) is not None
    assert os.path.isfile(os.path.join(store.snapshot_dir(top), "top"))
    index.forget(store)
    result = gc.collect(store)
    assert set(result.snapshots) == {top.chain_id, base.chain_id}


def test_lookup_of_vanished_snapshot_is_a_miss(store):
    snap = _snapshot(store, "gone")
    index.record(store, "sha256:k", snap.chain_id)
    snapshots.delete(store, [snap.chain_id])
    assert index.lookup(store, "sha256:k") is None


def test_index_survives_reopen(tmp_path):
    with Store(str(tmp_path / "r")) as s:
        index.record(s, "sha256:k", None, {"User": "app"})
    with Store(str(tmp_path / "r")) as s:
        assert index.lookup(s, "sha256:k").config_change == {"User": "app"}

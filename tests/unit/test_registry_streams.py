"""PrefetchReader: chunks fetched by a thread of their own reach the reader in order and the
sink sees each once; an error in the fetching thread is raised by the read that reaches it;
close() mid-stream stops and joins the thread and ends the source (its finally runs)."""

from __future__ import annotations

import threading

import pytest

from pybuild.registry.streams import PrefetchReader


def fetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fetch-")]


def test_chunks_and_sink_in_order():
    chunks = [bytes([i]) * (1000 + i) for i in range(50)]
    seen = []
    with PrefetchReader(iter(chunks), sink=seen.append, depth=3, name="fetch-order") as r:
        got = []
        while data := r.read(1 << 20):
            got.append(data)
    assert got == chunks and seen == chunks
    assert fetch_threads() == []


def test_error_in_the_fetching_thread_reaches_the_reader():
    def source():
        yield b"first"
        raise OSError("connection lost")

    r = PrefetchReader(source(), name="fetch-error")
    assert r.read(100) == b"first"
    with pytest.raises(OSError, match="connection lost"):
        r.read(100)
    r.close()
    assert fetch_threads() == []


def test_close_mid_stream_stops_the_source():
    ended = threading.Event()
    produced = []

    def endless():
        try:
            n = 0
            while True:
                n += 1
                produced.append(n)
                yield b"x" * 4096
        finally:
            ended.set()

    r = PrefetchReader(endless(), depth=2, name="fetch-close")
    assert r.read(10) == b"x" * 10
    r.close()
    assert ended.is_set() and fetch_threads() == []
    count = len(produced)
    assert count < 100  # the queue bounded how far it ran ahead

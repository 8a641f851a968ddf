"""json-file rotation without a container: LogWriter's max-size/max-file/compress, reading
across rotated files, following through rotations, and the option parsing."""

from __future__ import annotations

import os
import threading

import pytest

from pybuild.errors import ContainerError
from pybuild.runtime.logfile import LogWriter, follow, read_entries, rotated_paths
from pybuild.runtime.logopts import LogConfig, parse_size


def _write(writer: LogWriter, first: int, last: int) -> None:
    for i in range(first, last):
        writer.write("stdout", f"line-{i}\n".encode())


def test_rotation_keeps_max_files_and_reads_in_order(tmp_path):
    path = str(tmp_path / "c-json.log")
    writer = LogWriter(path, max_size=500, max_files=3)
    _write(writer, 0, 100)
    writer.close()
    assert sorted(os.listdir(tmp_path)) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert rotated_paths(path) == [path + ".2", path + ".1"]
    texts = [e.log for e in read_entries(path)[0]]
    first = int(texts[0].split("-")[1])
    assert texts == [f"line-{i}\n" for i in range(first, 100)]
    assert [e.log for e in read_entries(path, tail=2)[0]] == ["line-98\n", "line-99\n"]


def test_compress_and_single_file(tmp_path):
    path = str(tmp_path / "c-json.log")
    writer = LogWriter(path, max_size=500, max_files=3, compress=True)
    _write(writer, 0, 100)
    writer.close()
    assert sorted(os.listdir(tmp_path)) == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
    texts = [e.log for e in read_entries(path)[0]]
    assert texts[-1] == "line-99\n" and len(texts) > 12
    one = str(tmp_path / "one-json.log")
    writer = LogWriter(one, max_size=500)
    _write(writer, 0, 100)
    writer.close()
    assert os.path.getsize(one) < 600 and not rotated_paths(one)


def test_follow_goes_through_rotations(tmp_path):
    path = str(tmp_path / "c-json.log")
    writer = LogWriter(path, max_size=300, max_files=50)
    _write(writer, 0, 1)
    finished = threading.Event()
    got: list[str] = []

    def reader():
        for entry in follow(path, 0, finished.is_set, interval=0.01):
            got.append(entry.log)

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(1000):  # the follower has the first file open
        if got:
            break
        threading.Event().wait(0.01)
    _write(writer, 1, 200)
    writer.close()
    finished.set()
    t.join(30)
    assert got == [f"line-{i}\n" for i in range(200)]


def test_parse_options():
    assert parse_size("10m") == 10_000_000 and parse_size("1.5k") == 1500
    assert parse_size("2MiB") == 2_000_000 and parse_size("100") == 100
    config = LogConfig.parse(None, ["max-size=1k", "max-file=3", "compress=true"])
    assert (config.max_size, config.max_files, config.compress) == (1000, 3, True)
    assert config.to_json() == {"Type": "json-file", "Config": {
        "max-size": "1k", "max-file": "3", "compress": "true"}}
    assert LogConfig.parse("none", []).readable is False
    assert LogConfig.from_json(None) == LogConfig()
    with pytest.raises(ContainerError, match="invalid size: '1x'"):
        LogConfig.parse("json-file", ["max-size=1x"])
    with pytest.raises(ContainerError, match="not supported"):
        LogConfig.parse("json-file", ["mode=non-blocking"])

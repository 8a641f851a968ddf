"""Speed of one `COPY . /app`: prepare (resolve + cache content hash, cold and with the
stat memo) and apply (write the files into an empty destination root).

Peer for apply: GNU `cp -a ctx/. dest/` (the same bytes, modes, mtimes, links), the
plainest way to copy a tree. Prints medians and the ratio pybuild/peer (below 1 = faster).

    .venv/bin/python bench/copy_step.py [FILES [BYTES_PER_FILE]]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pybuild.builder.contenthash import StatMemo  # noqa: E402
from pybuild.builder.context import BuildContext  # noqa: E402
from pybuild.builder.steps.copy import CopyRequest, prepare_copy  # noqa: E402

OLD = 1_500_000_000
RUNS = 5


def median_seconds(fn, setup=None) -> float:
    times = []
    for _ in range(RUNS):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ctx"
        for i in range(count):
            d = root / f"d{i % 50:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}.txt").write_bytes(os.urandom(size))
            os.utime(d / f"f{i}.txt", (OLD, OLD))
        dest = Path(tmp) / "dest"
        request = CopyRequest(add=False, sources=(".",), dest="/app", workdir="/")
        memo = StatMemo()

        def prepare(m=None):
            return prepare_copy(request, context=BuildContext(root), source_root=None,
                                memo=m, scratch_dir=tmp)

        prepare(memo)  # fills the memo, as a first build would
        prepared = prepare()

        def fresh():
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()

        cold = median_seconds(prepare)
        warm = median_seconds(lambda: prepare(memo))
        apply = median_seconds(lambda: prepared.apply(str(dest)), fresh)
        peer = median_seconds(
            lambda: subprocess.run(["cp", "-a", f"{root}/.", f"{dest}/app"], check=True),
            lambda: (fresh(), (dest / "app").mkdir()))
    print(f"COPY . /app of {count} files ({size} bytes each), median of {RUNS}")
    print(f"prepare, cold (reads all) : {cold * 1000:8.1f} ms")
    print(f"prepare, warm (stat memo) : {warm * 1000:8.1f} ms")
    print(f"apply                     : {apply * 1000:8.1f} ms")
    print(f"peer cp -a                : {peer * 1000:8.1f} ms")
    print(f"ratio apply/peer = {apply / peer:.2f}")


if __name__ == "__main__":
    main()

"""Speed of hashing a 10,000-file build context (the COPY . cache check), cold and memoized.

pybuild: walk + ignore rules + content hash of `.`; cold = no stat memo (every file read),
warm = stat memo loaded from meta.db (files only stat'ed). Peer: `tar -cf - . | sha256sum`
(GNU tar), the obvious shell way to fingerprint a tree, which reads every byte every time.

Prints medians and the ratios pybuild/peer (below 1 = pybuild faster).

    .venv/bin/python bench/context_hash.py [FILES [BYTES_PER_FILE]]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pybuild.builder.contenthash import StatMemo, content_hash  # noqa: E402
from pybuild.builder.context import BuildContext  # noqa: E402
from pybuild.grammar.ignore import IgnoreRules  # noqa: E402
from pybuild.image.store import Store  # noqa: E402

OLD = 1_500_000_000


def median_seconds(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ctx"
        for i in range(count):
            d = root / f"d{i % 100:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}.txt").write_bytes(os.urandom(size))
            os.utime(d / f"f{i}.txt", (OLD, OLD))
        (root / ".dockerignore").write_text("*.log\n!keep.log\n")
        rules = IgnoreRules.from_text((root / ".dockerignore").read_text())
        with Store(str(Path(tmp) / "store")) as store:
            def cold():
                content_hash(BuildContext(root, rules), ["."])

            def warm():
                content_hash(BuildContext(root, rules), ["."],
                             memo=StatMemo.load(store, str(root)))

            memo = StatMemo.load(store, str(root))
            content_hash(BuildContext(root, rules), ["."], memo=memo)
            memo.save(store)

            def peer():
                subprocess.run(f"tar -C {root} -cf - . | sha256sum", shell=True, check=True,
                               stdout=subprocess.DEVNULL)

            c, w, p = median_seconds(cold), median_seconds(warm), median_seconds(peer)
    print(f"files={count} ({size} bytes each), median of 5")
    print(f"pybuild cold (reads all) : {c * 1000:8.1f} ms")
    print(f"pybuild warm (stat memo) : {w * 1000:8.1f} ms")
    print(f"peer tar | sha256sum     : {p * 1000:8.1f} ms")
    print(f"ratio cold/peer = {c / p:.2f}, warm/peer = {w / p:.2f}")


if __name__ == "__main__":
    main()

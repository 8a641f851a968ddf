"""Parse the real-world Dockerfile corpus with pybuild and with dockerfile-parse, in one run.

    .venv/bin/python bench/parse.py [--rounds N]

Prints the time per pass of each parser and their ratio pybuild / dockerfile-parse (below 1
means pybuild is faster). Both get the same bytes, already in memory; both produce their
instruction list (dockerfile-parse: `.structure`, pybuild: `parse()`).
"""

from __future__ import annotations

import argparse
import io
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "conformance" / "real-world"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed passes over the corpus")
    ns = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from dockerfile_parse import DockerfileParser

    from pybuild.grammar import parse

    files = [p.read_bytes() for p in sorted(CORPUS.rglob("Dockerfile"))]
    if not files:
        print(f"no Dockerfiles under {CORPUS}", file=sys.stderr)
        return 1

    def ours() -> int:
        return sum(len(parse(data).instructions) for data in files)

    def theirs() -> int:
        return sum(
            sum(
                1
                for s in DockerfileParser(fileobj=io.BytesIO(data)).structure
                if s["instruction"] != "COMMENT"
            )
            for data in files
        )

    t0 = time.perf_counter()
    ours()  # the first call loads the grammar tables (from the cache file when present)
    first = time.perf_counter() - t0
    theirs()
    timings: dict[str, list[float]] = {"pybuild": [], "dockerfile-parse": []}
    for _ in range(ns.rounds):
        for name, fn in (("pybuild", ours), ("dockerfile-parse", theirs)):
            t0 = time.perf_counter()
            count = fn()
            timings[name].append(time.perf_counter() - t0)
    size = sum(map(len, files))
    print(
        f"corpus: {len(files)} Dockerfiles, {size / 1024:.0f} KiB, {count} instructions; "
        f"{ns.rounds} rounds; pybuild first call (grammar load + parse) {first * 1000:.1f} ms"
    )
    med = {name: statistics.median(t) for name, t in timings.items()}
    for name, t in med.items():
        print(f"{name:17s} {t * 1000:8.1f} ms per pass (median)")
    print(
        f"ratio pybuild / dockerfile-parse: {med['pybuild'] / med['dockerfile-parse']:.2f}"
        " (below 1: pybuild is faster)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

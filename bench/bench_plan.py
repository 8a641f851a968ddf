"""Speed of `pybuild --plan`, beside a Python peer that reads Dockerfiles.

Peer: dockerfile-parse (a test dependency), which splits a Dockerfile into instructions
and expands ARGs in FROM-less use, but neither checks instructions nor builds a stage
graph; pybuild does both here (parse, typed instructions with their flag checks, stage
graph, text rendering). The figures compare a reader with a planner, not equal work.

1. in process, over every real-world Dockerfile in ../shared/conformance/real-world;
2. a whole `pybuild --plan` process on the multi-stage fixture, against a process that
   imports dockerfile-parse and prints its structure (start-up is most of both).

Prints medians and the ratio pybuild/peer (below 1 = pybuild faster).

    .venv/bin/python bench/bench_plan.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pybuild.builder.graph import build_graph  # noqa: E402
from pybuild.builder.plan import render_text  # noqa: E402
from pybuild.grammar import parse  # noqa: E402

CORPUS = REPO.parent / "shared" / "conformance" / "real-world"
FIXTURE = REPO / "fixtures" / "dockerfiles" / "multi-stage"
PEER_SCRIPT = (
    "import sys; from dockerfile_parse import DockerfileParser; "
    "p = DockerfileParser(path=sys.argv[1], cache_content=True); "
    "print(p.baseimage); [print(i['startline'] + 1, i['instruction'], i['value']) "
    "for i in p.structure]"
)


def plan_corpus(sources: list[tuple[str, bytes]]) -> None:
    for _, source in sources:
        render_text(build_graph(parse(source)))


def peer_corpus(sources: list[tuple[str, bytes]]) -> None:
    from dockerfile_parse import DockerfileParser

    for _, source in sources:
        parser = DockerfileParser(fileobj=_Buffer(source))
        _ = parser.structure, parser.baseimage


class _Buffer:
    """The file-like object DockerfileParser reads from (it wants read/seek/truncate)."""

    def __init__(self, data: bytes):
        import io

        self.io = io.BytesIO(data)

    def __getattr__(self, name):
        return getattr(self.io, name)


def wall(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    try:
        import dockerfile_parse  # noqa: F401
    except ImportError:
        print("dockerfile-parse is not installed (pip install '.[test]')")
        return 1
    files = sorted(CORPUS.rglob("Dockerfile"))
    if not files:
        print(f"no corpus at {CORPUS}")
        return 1
    sources = [(str(p), p.read_bytes()) for p in files]
    plan_corpus(sources)  # warm the grammar's table cache and imports
    ours = min(timeit.repeat(lambda: plan_corpus(sources), number=1, repeat=5))
    peer = min(timeit.repeat(lambda: peer_corpus(sources), number=1, repeat=5))
    print(f"{len(files)} real-world Dockerfiles, in process (best of 5):")
    print(
        f"  pybuild parse+check+graph+plan {ours * 1e3:8.1f} ms"
        f"  ({ours / len(files) * 1e3:.2f} ms per file)"
    )
    print(f"  dockerfile-parse structure     {peer * 1e3:8.1f} ms")
    print(f"  ratio pybuild/peer             {ours / peer:8.2f}")
    ours = wall([sys.executable, "-m", "pybuild.cli.build", "--plan", str(FIXTURE)], 11)
    peer = wall([sys.executable, "-c", PEER_SCRIPT, str(FIXTURE / "Dockerfile")], 11)
    print("one process on fixtures/dockerfiles/multi-stage (median of 11):")
    print(f"  pybuild --plan                 {ours * 1e3:8.1f} ms")
    print(f"  python + dockerfile-parse      {peer * 1e3:8.1f} ms")
    print(f"  ratio pybuild/peer             {ours / peer:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

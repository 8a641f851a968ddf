"""`make demo`: a newcomer's first look. Until the builder exists it prints the build plan
of every Dockerfile in fixtures/dockerfiles/."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def main() -> int:
    fixtures = sorted(p for p in (REPO / "fixtures" / "dockerfiles").glob("*/Dockerfile"))
    rc = 0
    for dockerfile in fixtures:
        context = str(dockerfile.parent.relative_to(REPO))
        print(f"\n$ pybuild --plan {context}", flush=True)
        r = subprocess.run([sys.executable, "-m", "pybuild.cli.build", "--plan", context], cwd=REPO)
        rc = rc or r.returncode
    print(
        "\n(The same graph as Graphviz: pybuild --plan=dot fixtures/dockerfiles/multi-stage"
        " | dot -Tsvg > plan.svg)"
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())

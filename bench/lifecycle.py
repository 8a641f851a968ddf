"""Container lifecycle and `exec` latency: pyrun next to podman (runc) on the busybox image,
in one run. Needs root.

    .venv/bin/python bench/lifecycle.py [--containers 50] [--execs 30]

1. create + start + stop + rm of N containers, one after the other (each step timed; the
   container's command stops at once on SIGTERM, so `stop` measures the tool, not a timeout);
2. `exec CONTAINER true` into one running container, N times.
The two tools take turns (one lifecycle or one exec each), so load on the machine hits both
alike. Prints medians per step and ratios (podman / pyrun: above 1 means pyrun is faster).
podman (runc, cgroupfs, a private --root) is installed with apt-get when missing (Debian
package) and gets busybox from our store through `pyrun save` + `podman load`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.run import PODMAN_ULIMITS, ensure_podman  # noqa: E402

# stops at once on SIGTERM (a pid 1 without a handler would ignore it until the timeout)
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
STEPS = ("create", "start", "stop", "rm")


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    res = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr}")
    return elapsed, res.stdout.strip()


def lifecycle_once(tool: list[str], create_flags: list[str], name: str, env: dict
                   ) -> list[float]:
    """create, start, stop, rm of one container: the seconds of each."""
    return [run([*tool, "create", "--name", name, *create_flags, "busybox", *COMMAND], env)[0],
            run([*tool, "start", name], env)[0],
            run([*tool, "stop", name], env)[0],
            run([*tool, "rm", name], env)[0]]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--execs", type=int, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/lifecycle.py needs root (namespaces, mounts, cgroups)")
        return 1
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "pybuild")],
                   check=True)
    # the same for the methods @dataclass compiles (pybuild.dataclass_cache)
    subprocess.run([sys.executable, "-c", "import pybuild.dataclass_cache as c; c.prime()"],
                   cwd=REPO, check=True)
    work = tempfile.mkdtemp(prefix="pybuild-bench-lifecycle-")
    env = {**os.environ, "PYBUILD_ROOT": os.path.join(work, "store")}
    pyrun = [sys.executable, "-m", "pybuild.cli.pyrun"]
    pod = None
    try:
        run([*pyrun, "bootstrap", "busybox"], env)
        tools = {"pyrun": (pyrun, [])}
        podman = ensure_podman()
        if podman and shutil.which("runc"):
            pod = [podman, "--root", os.path.join(work, "podman"), "--runroot",
                   os.path.join(work, "podman-run"), "--cgroup-manager", "cgroupfs",
                   "--events-backend", "file", "--runtime", "runc"]
            tar = os.path.join(work, "busybox.tar")
            run([*pyrun, "save", "-o", tar, "busybox"], env)
            run([*pod, "load", "-i", tar], env)
            tools["podman"] = (pod, [*PODMAN_ULIMITS, "--network", "none"])
        else:
            print("podman or runc unavailable: pyrun alone")
        results = {t: {s: [] for s in (*STEPS, "total", "exec")} for t in tools}
        # the tools take turns, so a busy moment of the machine hits both alike
        for i in range(args.containers):
            for t, (cmd, flags) in tools.items():
                steps = lifecycle_once(cmd, flags, f"bench-{os.getpid()}-{i}", env)
                for step, seconds in zip(STEPS, steps, strict=True):
                    results[t][step].append(seconds)
                results[t]["total"].append(sum(steps))
        execs = {t: f"bench-exec-{os.getpid()}" for t in tools}
        for t, (cmd, flags) in tools.items():
            run([*cmd, "run", "-d", "--name", execs[t], *flags, "busybox", *COMMAND], env)
            run([*cmd, "exec", execs[t], "true"], env)  # warm-up
        try:
            for _ in range(args.execs):
                for t, (cmd, _flags) in tools.items():
                    results[t]["exec"].append(run([*cmd, "exec", execs[t], "true"], env)[0])
        finally:
            for t, (cmd, _flags) in tools.items():
                subprocess.run([*cmd, "rm", "-f", execs[t]], env=env, capture_output=True,
                               check=False)
        print(f"create+start+stop+rm of {args.containers} busybox containers, "
              f"`exec CTR true` x {args.execs}: median wall ms per step")
        names = list(results)
        print(f"  {'step':8s}" + "".join(f"{t:>12s}" for t in names)
              + ("   podman/pyrun" if len(names) > 1 else ""))
        for step in (*STEPS, "total", "exec"):
            meds = [statistics.median(results[t][step]) for t in names]
            line = f"  {step:8s}" + "".join(f"{m * 1000:12.1f}" for m in meds)
            if len(meds) > 1:
                line += f"   {meds[1] / meds[0]:8.2f}x"
            print(line)
        for t in names:
            print(f"  {t}: {args.containers} lifecycles in {sum(results[t]['total']):.2f} s")
        return 0
    finally:
        left = subprocess.run([*pyrun, "ps", "-aq", "--no-trunc"], env=env, capture_output=True,
                              text=True, check=False).stdout.split()
        if left:
            subprocess.run([*pyrun, "rm", "-f", *left], env=env, capture_output=True, check=False)
        if pod is not None:
            subprocess.run([*pod, "rm", "-fa"], capture_output=True, check=False)
            subprocess.run(["umount", "-R", os.path.join(work, "podman", "overlay")],
                           capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""`run --rm IMG true` latency: pyrun (built-in runtime, and --runtime runc) next to runc on a
prepared bundle and podman (runc), on the same busybox rootfs, in one run. Needs root.

    .venv/bin/python bench/run.py [--runs N]

Prints medians and ratios. podman is installed with apt-get when missing (Debian package)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.plugins.runtime import make_busybox_rootfs  # noqa: E402

PODMAN_ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr.decode()}")
    return elapsed


def ensure_podman() -> str | None:
    if shutil.which("podman"):
        return shutil.which("podman")
    if os.geteuid() != 0:
        return None
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "podman"],
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return shutil.which("podman")


def runc_bundle(work: str, rootfs: str, pyrun_env: dict) -> str:
    """The spec pyrun writes for this container, as a bundle runc runs on the plain rootfs."""
    store = pyrun_env["PYBUILD_ROOT"]
    subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", "run", "--rootfs", rootfs,
                    "true"], env=pyrun_env, check=True, stdin=subprocess.DEVNULL)
    containers = os.path.join(store, "containers")
    (cid,) = [c for c in os.listdir(containers) if len(c) == 64]
    with open(os.path.join(containers, cid, "config.json")) as f:
        spec = json.load(f)
    bundle = os.path.join(work, "bundle")
    os.mkdir(bundle)
    for m in spec["mounts"]:  # the hosts files live in the container dir: keep them
        if m["type"] == "bind":
            copy = os.path.join(bundle, os.path.basename(m["source"]))
            shutil.copyfile(m["source"], copy)
            m["source"] = copy
    spec["root"]["path"] = rootfs
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    shutil.rmtree(os.path.join(containers, cid))
    return bundle


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/run.py needs root (namespaces, mounts)")
        return 1
    # An installed package has its bytecode; an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 would recompile pybuild on every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "pybuild")],
                   check=True)
    # the same for the methods @dataclass compiles (pybuild.dataclass_cache)
    subprocess.run([sys.executable, "-c", "import pybuild.dataclass_cache as c; c.prime()"],
                   cwd=REPO, check=True)
    work = tempfile.mkdtemp(prefix="pybuild-bench-run-")
    try:
        rootfs = str(make_busybox_rootfs(os.path.join(work, "rootfs")))
        env = {**os.environ, "PYBUILD_ROOT": os.path.join(work, "store")}
        pyrun = [sys.executable, "-m", "pybuild.cli.pyrun", "run", "--rm"]
        cases: dict[str, list[str]] = {
            "pyrun run --rm (built-in)": [*pyrun, "--rootfs", rootfs, "true"],
            "pyrun run --rm --runtime runc": [*pyrun, "--runtime", "runc", "--rootfs", rootfs,
                                              "true"],
        }
        from pybuild.image.store import Store

        Store(env["PYBUILD_ROOT"]).close()
        subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", "bootstrap", "busybox"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        cases["pyrun run --rm busybox (store)"] = [*pyrun, "busybox", "true"]
        runc = shutil.which("runc")
        if runc:
            bundle = runc_bundle(work, rootfs, env)
            state = os.path.join(work, "runc-state")
            cases["runc run (prepared bundle)"] = [runc, "--root", state, "run", "--bundle",
                                                   bundle, "ID"]
        podman = ensure_podman()
        if podman and runc:
            pod = [podman, "--root", os.path.join(work, "podman"), "--runroot",
                   os.path.join(work, "podman-run"), "--cgroup-manager", "cgroupfs",
                   "--events-backend", "file", "--runtime", "runc"]
            tar = os.path.join(work, "rootfs.tar")
            subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
            subprocess.run([*pod, "import", tar, "pybench-busybox"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cases["podman run --rm (runc)"] = [*pod, "run", "--rm", *PODMAN_ULIMITS,
                                               "--network", "none", "pybench-busybox", "true"]
        else:
            print("podman or runc unavailable: skipping them")
        times: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(args.runs + 1):  # round 0 warms caches and is dropped
            for name, cmd in cases.items():
                cmd = [f"bench{i}" if c == "ID" else c for c in cmd]
                t = timed(cmd, env)
                if i:
                    times[name].append(t)
        base = statistics.median(times["pyrun run --rm (built-in)"])
        print(f"`run --rm IMG true`, busybox rootfs, {args.runs} runs each, median wall time")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:34s} {med * 1000:7.1f} ms   {med / base:5.2f}x pyrun")
        return 0
    finally:
        subprocess.run(["umount", "-R", os.path.join(work, "podman", "overlay")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

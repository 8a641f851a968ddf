"""Image archives: `pyrun save` / `pyrun load` of a 64 MiB, 2,000-file image next to skopeo
doing the same conversions (skopeo copies without unpacking; our load also unpacks every layer
into a snapshot, as `docker load` does).

    .venv/bin/python bench/images.py [--mib 64] [--repeat 3]

Figures: median wall seconds of --repeat runs and the ratio pyrun / skopeo."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

PYRUN = [sys.executable, "-m", "pybuild.cli.pyrun"]


def timed(cmd, env=None, before=None) -> float:
    if before:
        before()
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not shutil.which("skopeo"):
        sys.exit("skopeo is missing (make debs)")
    work = tempfile.mkdtemp(prefix="bench-images-")
    try:
        rng = random.Random(7)
        rootfs = os.path.join(work, "rootfs.tar")
        per = (args.mib << 20) // 2000
        with tarfile.open(rootfs, "w") as t:
            for i in range(2000):
                # half noise, half text: a realistic compression ratio
                data = rng.randbytes(per // 2) + (b"pybuild %d\n" % i) * (per // 20)
                info = tarfile.TarInfo(f"d{i % 40}/f{i}")
                info.size = len(data)
                t.addfile(info, __import__("io").BytesIO(data))
        root = os.path.join(work, "store")
        env = dict(os.environ, PYBUILD_ROOT=root)
        subprocess.run([*PYRUN, "import", rootfs, "bench:1"], env=env, check=True, stdout=subprocess.DEVNULL)
        oci = os.path.join(work, "o.tar")
        subprocess.run([*PYRUN, "save", "--format", "oci-archive", "-o", oci, "bench:1"], env=env, check=True)
        dock = os.path.join(work, "d.tar")
        rows = []

        def rm(*paths):
            def go():
                for p in paths:
                    shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else (
                        os.path.exists(p) and os.unlink(p))
            return go

        ours = [timed([*PYRUN, "save", "-o", dock, "bench:1"], env, rm(dock)) for _ in range(args.repeat)]
        peer = [timed(["skopeo", "--insecure-policy", "copy", "-q", f"oci-archive:{oci}",
                       f"docker-archive:{dock}:bench:1"], None, rm(dock)) for _ in range(args.repeat)]
        rows.append(("save docker-archive (blob -> plain tar)", ours, peer))
        fresh = os.path.join(work, "fresh")
        ours = [timed([*PYRUN, "load", "-i", dock], dict(env, PYBUILD_ROOT=fresh), rm(fresh))
                for _ in range(args.repeat)]
        layout = os.path.join(work, "layout")
        peer = [timed(["skopeo", "--insecure-policy", "copy", "-q", f"docker-archive:{dock}",
                       f"oci:{layout}:bench"], None, rm(layout)) for _ in range(args.repeat)]
        rows.append(("load docker-archive (ours: + unpack to snapshot)", ours, peer))
        print(f"image: {args.mib} MiB, 2000 files; median of {args.repeat} runs (wall seconds)")
        print(f"{'operation':50} {'pyrun':>8} {'skopeo':>8} {'ratio':>7}")
        for name, o, p in rows:
            mo, mp = statistics.median(o), statistics.median(p)
            print(f"{name:50} {mo:8.3f} {mp:8.3f} {mo / mp:7.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

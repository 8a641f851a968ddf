"""Speed of `pyrun commit`, `pyrun export` and `pyrun cp` (out and in) on a container that
wrote 64 MiB in 2,000 files, beside the plain tools doing the same copying work: GNU
`tar -c | sha256sum` plus `cp -a` of the container's upper dir (commit copies the upper dir
and hashes its tar), `tar -c` of the merged tree (export) and `cp -a` (cp). No Docker engine runs here, so the peers are the tools a
daemon-less user would reach for. Medians of 3 runs; ratio = pyrun / peer (needs root).

    sudo .venv/bin/python bench/container_fs.py
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RUNS = 3
PY = [sys.executable, "-m", "pybuild.cli.pyrun"]


def timed(cmd, env, **kw) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def median(fn) -> float:
    return statistics.median(fn(i) for i in range(RUNS))


def main() -> int:
    if os.geteuid() != 0:
        print("needs root (containers)", file=sys.stderr)
        return 1
    from pybuild.image.images import Images
    from pybuild.image.importer import bootstrap_busybox

    work = tempfile.mkdtemp(prefix="bench-cfs-")
    root = os.path.join(work, "store")
    env = {**os.environ, "PYBUILD_ROOT": root}
    try:
        images = Images(root)
        bootstrap_busybox(images)
        images.close()
        subprocess.run([*PY, "run", "--name", "w", "busybox", "sh", "-c",
                        "mkdir /data; cd /data; i=0; while [ $i -lt 2000 ]; do "
                        "head -c 33554 /dev/urandom > f$i; i=$((i+1)); done"],
                       env=env, check=True, stdin=subprocess.DEVNULL)
        cid = next(e for e in os.listdir(os.path.join(root, "containers")) if len(e) == 64)
        upper = os.path.join(root, "containers", cid, "upper")
        rows = []
        stamp = os.path.join(work, "stamp")

        def commit(i):
            with open(stamp, "w") as f:  # each commit a new layer: nothing is reused
                f.write(f"{i}\n")
            subprocess.run([*PY, "cp", stamp, "w:/stamp"], env=env, check=True)
            return timed([*PY, "commit", "w", f"bench:{i}"], env)

        t = median(commit)
        peer = median(lambda i: timed(
            ["sh", "-c", f"tar -cf - -C {upper} . | sha256sum >/dev/null && "
                         f"cp -a {upper} {work}/upper{i}"], env))
        rows.append(("commit (64 MiB layer)", t, "tar|sha256sum + cp -a", peer))
        out = os.path.join(work, "export.tar")
        t = median(lambda i: timed([*PY, "export", "-o", out, "w"], env))
        merged = os.path.join(work, "merged")
        os.makedirs(merged, exist_ok=True)
        subprocess.run(["tar", "-xf", out, "-C", merged], check=True)
        peer = median(lambda i: timed(["tar", "-cf", out + ".peer", "-C", merged, "."], env))
        rows.append(("export (-o file)", t, "tar -c merged tree", peer))

        def cp_out(i):
            dest = os.path.join(work, f"out{i}")
            return timed([*PY, "cp", "w:/data", dest], env)

        def cp_peer(i):
            return timed(["cp", "-a", os.path.join(upper, "data"), os.path.join(work, f"peer{i}")],
                         env)

        rows.append(("cp CTR:/data host", median(cp_out), "cp -a", median(cp_peer)))

        def cp_in(i):
            return timed([*PY, "cp", os.path.join(work, "out0"), f"w:/in{i}"], env)

        rows.append(("cp host CTR:/inN", median(cp_in), "cp -a", median(cp_peer)))
        print(f"{'operation':24} {'pyrun s':>8}  {'peer':20} {'peer s':>7}  ratio")
        for name, t, peer_name, p in rows:
            print(f"{name:24} {t:8.3f}  {peer_name:20} {p:7.3f}  {t / p:5.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

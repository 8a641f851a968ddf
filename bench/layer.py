"""Layer commit throughput: pybuild's tar + compress + hash of a 512 MiB, 10,000-file folder
next to `tar -c | gzip -1` and `tar -c | zstd -T2` on the same folder, plus the lazy path
(tar + hash, no compression), the stdlib tarfile writer for scale, and the pull direction
(gzip blob -> snapshot, synced, vs `gzip -dc | tar -x` + sync).

    .venv/bin/python bench/layer.py [--mib 512] [--files 10000] [--repeat 3]

pybuild fsyncs every blob it stores, so the peers' outputs are fsynced too.
Figures: MB/s of plain tar bytes (median of --repeat runs), compression ratio, and the
ratio to the peer pipeline. Page cache is warmed first, so reads are memory speed for all."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pybuild.image import layers, snapshots  # noqa: E402
from pybuild.image.compress import HashSink  # noqa: E402
from pybuild.image.store import Store  # noqa: E402
from pybuild.image.tarwriter import write_layer_tar  # noqa: E402


def ensure_zstd() -> None:
    if shutil.which("zstd"):
        return
    if os.geteuid() != 0:
        sys.exit("zstd is missing and we are not root to apt-get it")
    subprocess.run(["apt-get", "install", "-y", "-qq", "zstd"], check=True,
                   stdout=subprocess.DEVNULL)


def generate(root: str, total: int, files: int) -> None:
    """Incompressible-ish mix: each file is part random bytes, part log-like text."""
    per = total // files
    text = b"".join(b"%08d GET /api/v1/items/%d 200 %d ms user=%d\n" % (i, i * 7, i % 97, i % 13)
                    for i in range(per * 2 // 40 + 100))
    for i in range(files):
        d = os.path.join(root, f"d{i % 100:02d}", f"s{i % 7}")
        os.makedirs(d, exist_ok=True)
        rnd = os.urandom(per // 2)
        with open(os.path.join(d, f"f{i:05d}.dat"), "wb") as f:
            f.write(rnd)
            f.write(text[(i * 131) % 1000:][: per - len(rnd)])


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def shell(cmd: str) -> int:
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ensure_zstd()
    work = tempfile.mkdtemp(prefix="pybuild-bench-layer-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        src = os.path.join(work, "src")
        generate(src, args.mib << 20, args.files)
        store = Store(os.path.join(work, "store"))
        plain_size = write_layer_tar(src, HashSink())  # also warms the page cache
        rows = []

        def ours(comp):
            def run():
                lb = layers.compress_dir(store, src, comp, record=False)
                store.delete_blob(lb.digest)
                return lb.size
            return run

        def lazy():
            return layers.tar_digest(src)[1] and None

        def stdlib_tar():
            sink = HashSink()

            class W:
                def write(self, b):
                    sink.write(b)
                    return len(b)

            with tarfile.open(fileobj=W(), mode="w|", format=tarfile.PAX_FORMAT) as tf:
                tf.add(src, arcname=".")
            return None

        def peer(cmd, fname):
            def run():
                shell(cmd.format(src=src, out=os.path.join(work, fname)))
                size = os.path.getsize(os.path.join(work, fname))
                os.unlink(os.path.join(work, fname))
                return size
            return run

        cases = [
            ("pybuild gzip (isal -1) tar+gz+2 hashes", ours("gzip"), "gzip"),
            ("tar -c | gzip -1 (+ fsync)", peer("tar -cf - -C {src} . | gzip -1 > {out} && sync {out}",
                                                "o.gz"), "gzip"),
            ("pybuild zstd -3 tar+zstd+2 hashes", ours("zstd"), "zstd"),
            ("tar -c | zstd -3 -T2 (+ fsync)",
             peer("tar -cf - -C {src} . | zstd -q -3 -T2 > {out} && sync {out}", "o.zst"), "zstd"),
            ("pybuild lazy: tar + sha256 only", lazy, "lazy"),
            ("tar -c | sha256sum", peer("tar -cf - -C {src} . | sha256sum > {out}", "o.sum"),
             "lazy"),
            ("stdlib tarfile + sha256 (for scale)", stdlib_tar, "lazy"),
        ]
        for name, fn, group in cases:
            secs, size = timed(fn, args.repeat)
            rows.append((name, group, secs, size))

        # the pull direction: a gzip blob -> unpacked snapshot (hashes + blob kept + unpack)
        gz = layers.compress_dir(store, src, "gzip")
        gz_path = store.blob_path(gz.digest)

        def unpack_ours():
            with store.open_blob(gz.digest) as f:
                layer = layers.unpack_layer(store, None, f, expected_digest=gz.digest)
            snapshots.delete(store, [layer.chain_id])
            return None

        def unpack_peer():
            dest = os.path.join(work, "x")
            os.mkdir(dest)
            shell(f"gzip -dc {gz_path} | tar -x -C {dest} && sync -f {dest}")
            shutil.rmtree(dest)
            return None

        def unpack_peer_keep():  # as containerd: the compressed blob is kept too
            dest = os.path.join(work, "x")
            os.mkdir(dest)
            shell(f"tee {work}/kept.gz < {gz_path} | gzip -dc | tar -x -C {dest} && sync -f {dest}")
            shutil.rmtree(dest)
            os.unlink(f"{work}/kept.gz")
            return None

        for name, fn in (("pybuild unpack_layer gzip -> snapshot", unpack_ours),
                         ("gzip -dc | tar -x (+ sync -f)", unpack_peer),
                         ("tee blob | gzip -dc | tar -x (+ sync)", unpack_peer_keep)):
            secs, size = timed(fn, args.repeat)
            rows.append((name, "unpack", secs, size))

        # the gzip choice: isal vs zlib on the first 64 MiB of the layer tar
        chunks, got = [], 0

        class Grab:
            def write(self, b):
                nonlocal got
                if got < 64 << 20:
                    chunks.append(bytes(b))
                    got += len(b)

        write_layer_tar(src, Grab())
        sample = b"".join(chunks)
        from isal import isal_zlib

        comp_rows = []
        for label, factory in (("isal level 1", lambda: isal_zlib.compressobj(1, 8, 31)),
                               ("zlib level 1", lambda: zlib.compressobj(1, 8, 31))):
            def run(factory=factory):
                c = factory()
                return sum(len(c.compress(sample[i:i + (1 << 20)]))
                           for i in range(0, len(sample), 1 << 20)) + len(c.flush())
            secs, size = timed(run, 1)
            comp_rows.append((label, len(sample) / secs / 1e6, size / len(sample)))
        hsecs, _ = timed(lambda: hashlib.sha256(sample).digest(), 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = plain_size / 1e6
    print(f"layer: {args.files} files, plain tar {mb:.0f} MB, median of {args.repeat} runs")
    print(f"{'':40s} {'MB/s':>8s} {'ratio':>7s} {'vs peer':>8s}")
    peers = {"gzip": "tar -c | gzip -1 (+ fsync)", "zstd": "tar -c | zstd -3 -T2 (+ fsync)",
             "lazy": "tar -c | sha256sum", "unpack": "gzip -dc | tar -x (+ sync -f)"}
    speed = {name: mb / secs for name, _, secs, _ in rows}
    for name, group, _secs, size in rows:
        ratio = f"{size / plain_size:.3f}" if size else "-"
        rel = speed[name] / speed[peers[group]]
        print(f"{name:40s} {speed[name]:8.0f} {ratio:>7s} {rel:7.2f}x")
    for label, rate, ratio in comp_rows:
        print(f"{'compressor only: ' + label:40s} {rate:8.0f} {ratio:7.3f}")
    print(f"{'sha256 only':40s} {len(sample) / hsecs / 1e6:8.0f}")


if __name__ == "__main__":
    main()

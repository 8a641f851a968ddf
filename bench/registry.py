"""Push and pull a 64 MiB and a 512 MiB image to a local docker-registry: pyrun beside
skopeo in one run, MB/s and the ratio (>1: pyrun is faster). skopeo copies between an OCI
layout and the registry (it does not unpack: the issue's stated goal); `pyrun pull` also
unpacks every layer into the store's snapshots. So pulls get a like-for-like peer column
too, as root: skopeo into containers-storage (podman's store, overlay driver, a private
root per run), which unpacks every layer as well.
Usage: .venv/bin/python bench/registry.py [--runs N] [--sizes 64,512]"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pybuild.image.store import LayerBlob, Store  # noqa: E402
from tests.plugins.registry import start_registry  # noqa: E402

MiB = 1 << 20
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def make_layer(dir: pathlib.Path, size: int, seed: int) -> tuple[pathlib.Path, str, int]:
    """A gzip tar layer of one file of `size` bytes, half random and half text (so gzip has
    something to do, as with real layers). Returns (blob path, diff id, tar size)."""
    import tarfile

    from isal import igzip

    tar_path, gz_path = dir / f"layer{seed}.tar", dir / f"layer{seed}.tar.gz"
    data = os.urandom(size // 2) + (b"pybuild registry benchmark line %d\n" % seed) * (
        (size - size // 2) // 34)
    data = data[:size].ljust(size, b"\n")
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo(f"data/blob{seed}.bin")
        info.size, info.mtime = len(data), 1_700_000_000
        import io

        tar.addfile(info, io.BytesIO(data))
    h = hashlib.sha256()
    with open(tar_path, "rb") as src, igzip.open(gz_path, "wb", compresslevel=1) as out:
        while chunk := src.read(MiB):
            h.update(chunk)
            out.write(chunk)
    usize = tar_path.stat().st_size
    tar_path.unlink()
    return gz_path, "sha256:" + h.hexdigest(), usize


def build_image(store: Store, ref: str, layers: list[tuple[pathlib.Path, str, int]]) -> str:
    diff_ids = []
    for gz, diff_id, usize in layers:
        with open(gz, "rb") as f:
            blob = store.ingest(f)
        store.add_layer_blob(LayerBlob(diff_id, blob.digest, "gzip", blob.size, usize, LAYER_TYPE))
        diff_ids.append(diff_id)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    rec = store.add_image(config)
    store.set_tag(ref, rec.id)
    return rec.id


def oci_layout(store: Store, image_id: str, dir: pathlib.Path, tag: str) -> None:
    """The same image as an OCI layout, skopeo's source for its push (blobs hard-linked)."""
    from pybuild.registry.pusher import image_manifest

    raw, mt = image_manifest(store, image_id)
    manifest = json.loads(raw)
    (dir / "blobs" / "sha256").mkdir(parents=True)
    for d in [manifest["config"]] + manifest["layers"]:
        os.link(store.blob_path(d["digest"]), dir / "blobs" / "sha256" / d["digest"][7:])
    md = "sha256:" + hashlib.sha256(raw).hexdigest()
    (dir / "blobs" / "sha256" / md[7:]).write_bytes(raw)
    (dir / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (dir / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": mt, "digest": md, "size": len(raw),
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}))


def timed(argv: list[str], env: dict | None = None) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {r.stderr.strip()[-800:]}")
    return elapsed


def drop_storage(dir: pathlib.Path) -> None:
    """Remove a containers-storage root: its overlay driver bind-mounts its own dir."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for m in sorted((m for m in mounts if m.startswith(f"{dir}/")), reverse=True):
        subprocess.run(["umount", m], capture_output=True, check=False)
    shutil.rmtree(dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="64,512", help="image sizes in MiB")
    args = ap.parse_args()
    if not shutil.which("skopeo") or not shutil.which("docker-registry"):
        raise SystemExit("bench/registry.py needs skopeo and docker-registry (make setup)")
    # as installed packages are: byte-compiled (PYTHONDONTWRITEBYTECODE=1 in the environment
    # would otherwise recompile pybuild on every pyrun start), like bench/run.py and build.py
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "pybuild")],
                   check=False, stdout=subprocess.DEVNULL)
    work = pathlib.Path(tempfile.mkdtemp(prefix="pybuild-bench-registry-"))
    servers = []

    def fresh_registry():
        # a new registry (new port) per run and tool: no blob can be mounted from an earlier
        # run, by our repo digests or by skopeo's blob-info cache
        s = start_registry(work / f"registry{len(servers)}", "plain")
        servers.append(s)
        return s
    py = [sys.executable, "-m", "pybuild.cli.pyrun"]
    # containers-storage needs root (its overlay driver mounts its own dir)
    can_cs = os.geteuid() == 0 and shutil.which("mount") is not None
    if not can_cs:
        print("pull into containers-storage: not measured (needs root)")
    can_pull = importlib.util.find_spec("pybuild.image.layers") is not None
    if not can_pull:
        print("pull: not measured (pybuild.image.layers, the store's unpacker, is missing)")
    rows = []
    try:
        for size_mib in (int(s) for s in args.sizes.split(",")):
            nlayers = 4 if size_mib <= 64 else 8
            src = work / f"src{size_mib}"
            src.mkdir()
            layers = [make_layer(src, size_mib * MiB // nlayers, i) for i in range(nlayers)]
            root = work / f"root{size_mib}"
            env = dict(os.environ, PYBUILD_ROOT=str(root), DOCKER_CONFIG=str(work / "docker"))
            with Store(str(root)) as store:
                image_id = build_image(store, f"seed/bench{size_mib}:1", layers)
                total = sum(store.layer_blobs(d)[0].size for _, d, _ in layers)
                oci_layout(store, image_id, work / f"oci{size_mib}", "1")
            times: dict[str, list[float]] = {k: [] for k in (
                "pyrun push", "skopeo push", "pyrun pull", "skopeo pull", "skopeo c/s pull")}
            for run in range(-1, args.runs):  # run -1 warms caches and is not counted
                server, sserver = fresh_registry(), fresh_registry()
                ref = f"{server.host}/bench/py{size_mib}:1"
                with Store(str(root)) as store:
                    store.set_tag(ref, image_id)
                times["pyrun push"].append(timed(py + ["push", "-q", ref], env))
                sref = f"{sserver.host}/bench/sk{size_mib}:1"
                times["skopeo push"].append(timed(
                    ["skopeo", "copy", "-q", "--dest-tls-verify=false",
                     f"oci:{work / f'oci{size_mib}'}:1", f"docker://{sref}"]))
                pull_root = work / f"pull{size_mib}-{run + 1}"
                penv = dict(env, PYBUILD_ROOT=str(pull_root))
                if can_pull:
                    times["pyrun pull"].append(timed(py + ["pull", "-q", ref], penv))
                out = work / f"skpull{size_mib}-{run + 1}"
                times["skopeo pull"].append(timed(
                    ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{sref}",
                     f"oci:{out}:1"]))
                if can_cs:
                    cs = work / f"cs{size_mib}-{run + 1}"
                    try:
                        times["skopeo c/s pull"].append(timed(
                            ["skopeo", "copy", "-q", "--src-tls-verify=false",
                             f"docker://{sref}",
                             f"containers-storage:[overlay@{cs / 'root'}+{cs / 'run'}]"
                             f"bench/sk{size_mib}:1"]))
                    finally:
                        drop_storage(cs)
                shutil.rmtree(pull_root, ignore_errors=True)
                shutil.rmtree(out, ignore_errors=True)
                if run < 0:
                    times = {k: [] for k in times}
                for s in (server, sserver):
                    s.stop()
                    shutil.rmtree(s.root, ignore_errors=True)
            med = {k: statistics.median(v) for k, v in times.items() if v}
            mb = total / 1e6
            for op in ("push", "pull") if can_pull else ("push",):
                p, s = med[f"pyrun {op}"], med[f"skopeo {op}"]
                cs_s = med.get("skopeo c/s pull") if op == "pull" else None
                rows.append((f"{size_mib} MiB", op, p, mb / p, s, mb / s, s / p, cs_s))
            shutil.rmtree(src)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"registry on 127.0.0.1, median of {args.runs} runs; MB = compressed bytes moved; "
          f"load {os.getloadavg()[0]:.2f}")
    print("skopeo: to/from an OCI layout (no unpack); skopeo c/s: into containers-storage "
          "(unpacks, like pyrun pull); ratio = peer s / pyrun s (>1: pyrun is faster)")
    print(f"{'image':>8} {'op':>5} {'pyrun s':>8} {'MB/s':>7} {'skopeo s':>9} {'MB/s':>7} "
          f"{'ratio':>6} {'skopeo c/s s':>13} {'ratio':>6}")
    for name, op, p, pr, s, sr, ratio, cs_s in rows:
        line = f"{name:>8} {op:>5} {p:8.2f} {pr:7.0f} {s:9.2f} {sr:7.0f} {ratio:6.2f}"
        if cs_s is not None:
            line += f" {cs_s:13.2f} {cs_s / p:6.2f}"
        print(line)


if __name__ == "__main__":
    main()

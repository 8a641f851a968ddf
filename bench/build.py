"""Build times: pybuild next to buildah on fixtures/dockerfiles/bench (2,000-file context,
8 steps, a 64 MiB RUN output) over the same busybox base, three ways: cold (--no-cache),
fully cached, and with one context file changed. Needs root.

    .venv/bin/python bench/build.py [--rounds N] [--driver overlay|vfs] [--no-buildah]

Each round, for each tool: a fresh store holding only the base (cold), the same build again
(fully cached), one context file rewritten (changed); round 0 warms caches and is dropped.
Prints medians and ratios. buildah (Debian) is installed with apt-get when missing; it runs
with runc and cgroupfs (MACHINE.md: crun refuses this host's hybrid cgroups), its own
storage under a temp dir, and the busybox base imported from our store (`pyrun save` ->
`buildah pull docker-archive:`)."""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO, "fixtures", "dockerfiles", "bench", "Dockerfile")
FILES, DIRS = 2000, 20
CHANGED = f"d{1234 % DIRS:02d}/f1234.txt"  # the context file the "one file changed" build edits
WAYS = ("cold, no cache", "fully cached", "one file changed")


def make_context(path: str) -> None:
    """The same 2,000 files on every run: sizes 512 B..4 KiB, bytes from a seeded PRNG."""
    rng = random.Random(20261123)
    os.makedirs(path)
    shutil.copyfile(DOCKERFILE, os.path.join(path, "Dockerfile"))
    for i in range(FILES):
        d = os.path.join(path, f"d{i % DIRS:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:04d}.txt"), "wb") as f:
            f.write(rng.randbytes(rng.randint(512, 4096)))


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}\n"
                         f"{res.stdout.decode(errors='replace')[-2000:]}"
                         f"{res.stderr.decode(errors='replace')[-4000:]}")
    return elapsed


def ensure_buildah() -> str | None:
    if shutil.which("buildah"):
        return shutil.which("buildah")
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "buildah"],
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return shutil.which("buildah")


class Pybuild:
    name = "pybuild"

    def __init__(self, work: str):
        self.work = work
        self.template = os.path.join(work, "pybuild-base")
        self.cmd = [sys.executable, "-m", "pybuild.cli.build"]
        self.env = self._env(self.template)
        subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", "bootstrap", "busybox"],
                       env=self.env, check=True, stdout=subprocess.DEVNULL)
        self.root = ""

    @staticmethod
    def _env(root: str) -> dict:
        return {**os.environ, "PYBUILD_ROOT": root}

    def reset(self, round_no: int) -> None:
        """A store holding only the busybox base: nothing cached."""
        if self.root:
            shutil.rmtree(self.root)
        self.root = os.path.join(self.work, f"pybuild-{round_no}")
        shutil.copytree(self.template, self.root, symlinks=True)
        self.env = self._env(self.root)

    def build(self, context: str) -> float:
        return timed([*self.cmd, "-q", "-t", "bench:latest", context], self.env)

    def check_cached(self, context: str) -> None:
        """A cached rebuild runs nothing: every `[i/n]` step of the plain output is CACHED."""
        out = subprocess.run([*self.cmd, "--progress", "plain", "-t", "bench:latest", context],
                             env=self.env, capture_output=True, text=True)
        steps = set(re.findall(r"^#(\d+) \[[^\]]*\d+/\d+\] ", out.stderr, re.M))
        cached = set(re.findall(r"^#(\d+) CACHED$", out.stderr, re.M))
        if out.returncode != 0 or not steps or steps - cached:
            raise SystemExit(f"pybuild: the cached build ran steps {sorted(steps - cached)}:\n"
                             f"{out.stderr[-3000:]}")


class Buildah:
    name = "buildah"

    def __init__(self, work: str, exe: str, driver: str, pybuild_env: dict):
        self.exe, self.driver, self.work = exe, driver, work
        conf = os.path.join(work, "containers.conf")
        with open(conf, "w") as f:  # runc and cgroupfs: see MACHINE.md
            f.write('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    'runtime = "runc"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": conf, "BUILDAH_ISOLATION": "oci"}
        self.archive = os.path.join(work, "busybox.tar")
        subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", "save", "-o", self.archive,
                        "busybox:latest"], env=pybuild_env, check=True)
        self.root = ""
        self.base: list[str] = []

    def reset(self, round_no: int) -> None:
        """Fresh storage holding only the busybox base: buildah's cache lookup picks among
        every earlier chain, so a --no-cache build in a used store is no clean 'cold'."""
        self.close()
        self.root = os.path.join(self.work, f"buildah-{round_no}")
        self.base = [self.exe, "--root", self.root, "--runroot", self.root + "-run",
                     "--storage-driver", self.driver]
        subprocess.run([*self.base, "pull", "-q", f"docker-archive:{self.archive}"],
                       env=self.env, check=True, stdout=subprocess.DEVNULL)

    def build(self, context: str) -> float:
        return timed([*self.base, "bud", "--layers", "-q", "--runtime", "runc", "--pull=never",
                      "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                      "-t", "bench:latest", context], self.env)

    def close(self) -> None:
        if not self.root:
            return
        subprocess.run([*self.base, "rm", "--all"], env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        for d in (os.path.join(self.root, "overlay"), self.root + "-run"):
            subprocess.run(["umount", "-R", d], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.root + "-run", ignore_errors=True)
        self.root = ""


def change_one_file(context: str, content) -> bytes:
    """Write `content` (bytes, or a round number: new bytes for it) to the changed file;
    None only reads it. Returns what was there."""
    path = os.path.join(context, CHANGED)
    with open(path, "rb") as f:
        before = f.read()
    if isinstance(content, int):
        content = f"changed in round {content}\n".encode() * 40
    if content is not None:
        with open(path, "wb") as f:
            f.write(content)
    return before


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--driver", default="overlay", choices=("overlay", "vfs"))
    ap.add_argument("--no-buildah", action="store_true", help="time pybuild alone")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/build.py needs root (namespaces, overlayfs, mounts)")
        return 1
    # An installed package has its bytecode; an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 would recompile pybuild on every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "pybuild")],
                   check=True)
    # the same for the methods @dataclass compiles (pybuild.dataclass_cache)
    subprocess.run([sys.executable, "-c", "import pybuild.dataclass_cache as c; c.prime()"],
                   cwd=REPO, check=True)
    work = tempfile.mkdtemp(prefix="pybuild-bench-build-")
    tools: list = []
    try:
        context = os.path.join(work, "context")
        make_context(context)
        pyb = Pybuild(work)
        tools.append(pyb)
        if not args.no_buildah:
            exe = ensure_buildah()
            if exe is None:
                print("buildah is not installed and apt-get could not install it: pybuild only")
            else:
                tools.append(Buildah(work, exe, args.driver, pyb.env))
        times = {(t.name, way): [] for t in tools for way in WAYS}
        for r in range(args.rounds + 1):
            for t in tools:
                t.reset(r)
                original = change_one_file(context, None)
                cold = t.build(context)
                cached = t.build(context)
                change_one_file(context, r)
                changed = t.build(context)
                change_one_file(context, original)
                if r:
                    for way, s in zip(WAYS, (cold, cached, changed), strict=True):
                        times[(t.name, way)].append(s)
        pyb.check_cached(context)
        version = ""
        if len(tools) > 1:
            out = subprocess.run([tools[1].exe, "--version"], capture_output=True, text=True)
            version = f" vs {out.stdout.strip()} ({args.driver}, runc)"
        print(f"build of fixtures/dockerfiles/bench ({FILES}-file context, 8 steps, 64 MiB RUN), "
              f"{args.rounds} rounds, median wall seconds{version}")
        header = f"  {'':18s}" + "".join(f"{t.name:>12s}" for t in tools)
        if len(tools) > 1:
            header += f"{'pybuild/buildah':>18s}"
        print(header)
        for way in WAYS:
            meds = [statistics.median(times[(t.name, way)]) for t in tools]
            line = f"  {way:18s}" + "".join(f"{m:12.3f}" for m in meds)
            if len(meds) > 1:
                line += f"{meds[0] / meds[1]:17.2f}x"
            print(line)
        return 0
    finally:
        for t in tools:
            if isinstance(t, Buildah):
                t.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

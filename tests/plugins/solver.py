"""Fixtures of the solver area: build a Dockerfile into a private store in-process (events
recorded) or through the `pybuild` CLI, and read back what was built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest


def copy_available() -> bool:
    """COPY/ADD come from the copy helper's pybuild.builder.steps.copy."""
    try:
        import pybuild.builder.steps.copy  # noqa: F401
    except ImportError:
        return False
    return True


needs_copy = pytest.mark.skipif(not copy_available(),
                                reason="COPY/ADD (pybuild.builder.steps.copy) has not landed")


@dataclass
class Built:
    image_id: str
    events: list = field(default_factory=list)

    def names(self, kind) -> list[str]:
        return [e.vertex.name for e in self.events if isinstance(e, kind)]


class Builder:
    """Builds in one store root; `build()` in-process, `cli()` through `pybuild`."""

    def __init__(self, root: str, tmp_path):
        self.root = root
        self.tmp_path = tmp_path
        self.n = 0

    def context(self, dockerfile: str, files: dict[str, str] | None = None) -> str:
        self.n += 1
        ctx = self.tmp_path / f"ctx{self.n}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(dockerfile)
        for name, text in (files or {}).items():
            (ctx / name).parent.mkdir(parents=True, exist_ok=True)
            (ctx / name).write_text(text)
        return str(ctx)

    def build(self, context: str, **kw) -> Built:
        from pybuild.builder.events import Recorder
        from pybuild.builder.solver import BuildOptions, build

        recorder = Recorder()
        kw.setdefault("tags", ())
        result = build(self.root, BuildOptions(context_dir=context, **kw), recorder)
        return Built(result.image_id, recorder.events)

    def cli(self, *args, input=None, cwd=None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pybuild.cli.build", *args],
                              env={**os.environ, "PYBUILD_ROOT": self.root},
                              capture_output=True, text=True, input=input, timeout=180,
                              cwd=cwd, stdin=None if input is not None else subprocess.DEVNULL)

    def pyrun(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pybuild.cli.pyrun", *args],
                              env={**os.environ, "PYBUILD_ROOT": self.root},
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def config(self, ref: str) -> dict:
        from pybuild.image.images import Images

        images = Images(self.root)
        try:
            return json.loads(images.get(images.resolve(ref)).config_bytes)
        finally:
            images.close()

    def tags(self) -> list[str]:
        from pybuild.image.images import Images

        images = Images(self.root)
        try:
            return sorted(t.reference for t in images.store.tags())
        finally:
            images.close()

    def cat(self, ref: str, path: str) -> str:
        res = self.pyrun("run", "--rm", "--entrypoint", "cat", "-u", "0", ref, path)
        assert res.returncode == 0, res.stderr
        return res.stdout


@pytest.fixture
def builder(image_store, tmp_path) -> Builder:
    """A Builder over a private store that holds the bootstrap busybox (busybox:latest)."""
    return Builder(image_store, tmp_path)

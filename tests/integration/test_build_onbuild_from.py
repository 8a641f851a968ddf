"""ONBUILD triggers of a base image that `COPY --from=<stage>` (or mount one): the stage they
name becomes a dependency of the stage built on that image, as in BuildKit, even when the
target would not otherwise need it."""

from __future__ import annotations

import pytest

from pybuild.builder.events import VertexStarted
from tests.plugins.solver import needs_copy

pytestmark = [pytest.mark.root, needs_copy]


def test_image_trigger_copy_from_a_stage_builds_that_stage(builder):
    base = builder.context("FROM busybox\n"
                           "ONBUILD COPY --from=assets /data /from-assets\n"
                           "ONBUILD RUN --mount=from=tools,target=/t cat /t/tool > /tool\n")
    builder.build(base, tags=("onb:base",))
    child = builder.context("FROM busybox AS assets\n"
                            "RUN echo assets > /data\n"
                            "FROM busybox AS tools\n"
                            "RUN echo tool > /tool\n"
                            "FROM onb:base\n"
                            "RUN cat /from-assets /tool > /seen\n")
    built = builder.build(child, tags=("onb:child",))
    assert builder.cat("onb:child", "/seen") == "assets\ntool\n"
    names = built.names(VertexStarted)
    assert any(n.startswith("[assets 2/2] RUN echo assets") for n in names), names
    # the trigger's COPY still needs its stage to come first
    later = builder.context("FROM onb:base\nRUN true\nFROM busybox AS assets\nRUN true\n"
                            "FROM busybox AS tools\n")
    res = builder.cli("-q", later)
    assert res.returncode == 0, res.stderr  # the last stage is the target: onb:base not needed
    first = builder.context("FROM busybox AS tools\nFROM onb:base\nRUN true\n"
                            "FROM busybox AS assets\nRUN true\n"
                            "FROM tools\nCOPY --from=1 /etc/passwd /p\n")
    res = builder.cli("-q", first)
    assert res.returncode == 1
    assert 'Dockerfile:2: cannot copy from stage "assets", it needs to be defined before ' \
           'current stage "stage-1"' in res.stderr

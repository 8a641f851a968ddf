"""Pull/push progress rendering: Docker's plain lines off a terminal, bars on one."""

from __future__ import annotations

import io

from pybuild.cli.transfer_progress import PlainRenderer, QuietRenderer, renderer
from pybuild.registry.events import Progress


def test_plain_lines_print_each_state_once():
    out = io.StringIO()
    r = PlainRenderer(out)
    for e in [Progress("", "1: Pulling from team/app"), Progress("abc", "Pulling fs layer"),
              Progress("abc", "Downloading", 10, 100), Progress("abc", "Downloading", 50, 100),
              Progress("abc", "Download complete"), Progress("abc", "Pull complete")]:
        r(e)
    assert out.getvalue().splitlines() == [
        "1: Pulling from team/app", "abc: Pulling fs layer", "abc: Downloading",
        "abc: Download complete", "abc: Pull complete"]


def test_quiet_and_choice(monkeypatch):
    QuietRenderer()(Progress("x", "Pushed"))
    assert isinstance(renderer(True), QuietRenderer)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert isinstance(renderer(False), PlainRenderer)


def test_bars_render(monkeypatch):
    from pybuild.cli.transfer_progress import BarRenderer

    r = BarRenderer()
    r(Progress("", "The push refers to repository [x]"))
    r(Progress("abc", "Preparing"))
    r(Progress("abc", "Pushing", 5, 10))
    r(Progress("abc", "Pushed"))
    r.close()
    assert r.totals == {"abc": 10}

"""Build progress rendering: BuildKit's plain text exactly, quiet, the tty view on a pty."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from pybuild.builder.events import (
    BuildDone,
    Vertex,
    VertexCached,
    VertexDone,
    VertexFailed,
    VertexLog,
    VertexStarted,
    Warning,
)
from pybuild.cli.build_progress import log_timestamp, make_progress
from pybuild.errors import PybuildError

LOAD = Vertex(1, "[internal] load build definition from Dockerfile")
META = Vertex(2, "[internal] load metadata for docker.io/library/busybox:latest")
FROM = Vertex(3, "[1/3] FROM docker.io/library/busybox:latest", "0", 1)
RUN = Vertex(4, "[2/3] RUN make", "0", 2)
COPY = Vertex(5, "[3/3] COPY a /a", "0", 3)
EXPORT = Vertex(6, "exporting to image")


def plain(events) -> str:
    out = io.StringIO()
    p = make_progress("plain", out)
    for e in events:
        p.emit(e)
    p.close()
    return out.getvalue()


def test_sequential_build_exact_text():
    t = 100.0
    text = plain([
        VertexStarted(LOAD, t), VertexDone(LOAD, 0.012),
        VertexStarted(META, t), VertexDone(META, 0.0),
        VertexStarted(FROM, t), VertexCached(FROM),
        VertexStarted(RUN, t + 1),
        VertexLog(RUN, 1, b"compiling\n", t + 1.25),
        VertexLog(RUN, 2, b"warning: x\n", t + 12.5),
        VertexLog(RUN, 1, b"linked\n", t + 123.5),
        VertexDone(RUN, 122.56),
        VertexStarted(COPY, t + 124), VertexDone(COPY, 0.05),
        VertexStarted(EXPORT, t + 124), VertexDone(EXPORT, 0.1),
        BuildDone("sha256:" + "a" * 64, ("x:latest",), 124.2),
    ])
    assert text == textwrap.dedent("""\
        #1 [internal] load build definition from Dockerfile
        #1 DONE 0.0s

        #2 [internal] load metadata for docker.io/library/busybox:latest
        #2 DONE 0.0s

        #3 [1/3] FROM docker.io/library/busybox:latest
        #3 CACHED

        #4 [2/3] RUN make
        #4 0.250 compiling
        #4 11.50 warning: x
        #4 122.5 linked
        #4 DONE 122.6s

        #5 [3/3] COPY a /a
        #5 DONE 0.1s

        #6 exporting to image
        #6 DONE 0.1s
        """)


def test_lines_split_across_chunks_and_utf8_split_inside_a_character():
    t = 5.0
    snow = "☃".encode()
    text = plain([
        VertexStarted(RUN, t),
        VertexLog(RUN, 1, b"hel", t + 0.1),
        VertexLog(RUN, 1, b"lo\nwor", t + 0.2),
        VertexLog(RUN, 1, b"ld " + snow[:1], t + 0.3),
        VertexLog(RUN, 1, snow[1:] + b"\n\nlast without newline", t + 0.4),
        VertexDone(RUN, 0.5),
    ])
    assert text.splitlines() == [
        "#4 [2/3] RUN make",
        "#4 0.100 hello",
        "#4 0.200 world ☃",
        "#4 0.400 ",  # an empty line keeps BuildKit's space after the time
        "#4 0.400 last without newline",
        "#4 DONE 0.5s",
    ]


def test_cached_without_start_and_invalid_bytes():
    text = plain([VertexCached(FROM), VertexStarted(RUN, 1.0),
                  VertexLog(RUN, 1, b"\xff\xfe ok\n", 1.0), VertexDone(RUN, 0.0)])
    assert text == textwrap.dedent("""\
        #3 [1/3] FROM docker.io/library/busybox:latest
        #3 CACHED

        #4 [2/3] RUN make
        #4 0.000 \ufffd\ufffd ok
        #4 DONE 0.0s
        """)


def test_parallel_vertices_wait_for_the_one_printing():
    a = Vertex(7, "[a 2/2] RUN one", "a", 3)
    b = Vertex(8, "[b 2/2] RUN two", "b", 6)
    t = 0.0
    text = plain([
        VertexStarted(a, t), VertexStarted(b, t),
        VertexLog(b, 1, b"b1\n", t + 0.1),
        VertexLog(a, 1, b"a1\n", t + 0.2),
        VertexLog(b, 1, b"b2\n", t + 0.3),
        VertexDone(a, 0.4),
        VertexLog(b, 1, b"b3\n", t + 0.5),
        VertexDone(b, 0.6),
    ])
    assert text == textwrap.dedent("""\
        #7 [a 2/2] RUN one
        #7 0.200 a1
        #7 DONE 0.4s

        #8 [b 2/2] RUN two
        #8 0.100 b1
        #8 0.300 b2
        #8 0.500 b3
        #8 DONE 0.6s
        """)


def test_long_wait_interrupts_with_dots_and_partial_line_comes_back_whole():
    a = Vertex(7, "[a 2/2] RUN one", "a", 3)
    b = Vertex(8, "[b 2/2] RUN two", "b", 6)
    text = plain([
        VertexStarted(a, 0.0), VertexStarted(b, 0.0),
        VertexLog(a, 1, b"a1\npart", 1.0),
        VertexLog(b, 1, b"b1\n", 2.0),
        VertexLog(b, 1, b"b2\n", 12.5),  # b has waited 10.5 s: BuildKit's maxDelay is 10 s
        VertexLog(a, 1, b"ial\n", 13.0),
        VertexDone(b, 13.0),
        VertexDone(a, 14.0),
    ])
    assert text == textwrap.dedent("""\
        #7 [a 2/2] RUN one
        #7 1.000 a1
        #7 1.000 part
        #7 ...

        #8 [b 2/2] RUN two
        #8 2.000 b1
        #8 12.50 b2
        #8 DONE 13.0s

        #7 [a 2/2] RUN one
        #7 1.000 partial
        #7 DONE 14.0s
        """)


def test_a_vertex_ending_while_another_prints_takes_over():
    a = Vertex(7, "[a 2/2] RUN one", "a", 3)
    b = Vertex(8, "[b 2/2] COPY x /x", "b", 6)
    text = plain([
        VertexStarted(a, 0.0), VertexLog(a, 1, b"x", 0.5),
        VertexStarted(b, 0.6), VertexDone(b, 0.01),
        VertexLog(a, 1, b"y\n", 0.7), VertexDone(a, 1.0),
    ])
    assert text == textwrap.dedent("""\
        #7 [a 2/2] RUN one
        #7 0.500 x
        #7 ...

        #8 [b 2/2] COPY x /x
        #8 DONE 0.0s

        #7 [a 2/2] RUN one
        #7 0.500 xy
        #7 DONE 1.0s
        """)


def test_failure_box_holds_the_last_ten_lines_then_warnings():
    t = 0.0
    logs = [VertexLog(RUN, 1, f"line {i}\n".encode(), t + i / 100) for i in range(12)]
    text = plain([
        VertexStarted(RUN, t), *logs, VertexLog(RUN, 2, b"oops", t + 0.2),
        VertexFailed(RUN, 0.25, 'process "/bin/sh -c make" did not complete successfully: exit code: 2'),
        Warning("UndefinedVar: Usage of undefined variable '$FOO'", 7),
        Warning("a warning without a line"),
        BuildDone(None, (), 0.3),
    ])
    expected = ["#4 [2/3] RUN make"]
    expected += [f"#4 {i / 100:.3f} line {i}" for i in range(12)]
    expected += ["#4 0.200 oops",
                 '#4 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2',
                 "------", " > [2/3] RUN make:"]
    expected += [f"{i / 100:.3f} line {i}" for i in range(3, 12)]
    expected += ["0.200 oops", "------", "",
                 " 2 warnings found:",
                 " - UndefinedVar: Usage of undefined variable '$FOO' (line 7)",
                 " - a warning without a line", ""]
    assert text == "\n".join(expected)


def test_one_warning_is_singular():
    assert plain([Warning("x", 1)]) == "\n 1 warning found:\n - x (line 1)\n"


def test_log_timestamp_precision():
    assert [log_timestamp(s) for s in (-1, 0, 9.9994, 9.9996, 10, 99.994, 100, 1234.56)] == [
        "0.000", "0.000", "9.999", "10.000", "10.00", "99.99", "100.0", "1234.6"]


def test_threads_emit_whole_lines():
    """Many threads logging at once: every line arrives whole and the text stays well formed."""
    out = io.StringIO()
    p = make_progress("plain", out)
    vs = [Vertex(i + 1, f"[s{i} 1/1] RUN work", f"s{i}", i + 1) for i in range(8)]

    def work(v: Vertex) -> None:
        p.emit(VertexStarted(v, 0.0))
        for n in range(200):
            p.emit(VertexLog(v, 1, f"{v.id}-{n}".encode(), 0.0))
            p.emit(VertexLog(v, 1, b"\n", 0.0))
        p.emit(VertexDone(v, 0.0))

    threads = [threading.Thread(target=work, args=(v,)) for v in vs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    p.close()
    lines = out.getvalue().splitlines()
    for v in vs:
        body = _whole_lines(lines, v.id)
        assert body == [f"{v.id}-{n}" for n in range(200)]
        assert lines.count(f"#{v.id} DONE 0.0s") == 1


def _whole_lines(lines: list[str], vid: int) -> list[str]:
    """The log lines of vertex `vid`. A line cut short because another vertex was shown
    meanwhile (a finish, or one that waited too long) is ended and followed by `#N ...`;
    it is printed whole when the vertex is shown again, so that first piece is left out."""
    mine = [ln for ln in lines if ln.startswith(f"#{vid} 0.000 ") or ln == f"#{vid} ..."]
    body = []
    for i, ln in enumerate(mine):
        if ln == f"#{vid} ...":
            continue
        if mine[i + 1:i + 3] == [f"#{vid} ...", ln]:
            continue  # the cut piece (here always the whole text, only its newline late)
        body.append(ln.split(" ", 2)[2])
    return body


def test_quiet_prints_nothing():
    out = io.StringIO()
    p = make_progress("quiet", out)
    for e in (VertexStarted(RUN, 0.0), VertexLog(RUN, 1, b"x\n", 0.0),
              VertexFailed(RUN, 0.0, "boom"), Warning("w", 1)):
        p.emit(e)
    p.close()
    assert out.getvalue() == ""


def test_auto_and_tty_fall_back_to_plain_off_a_terminal():
    for mode in ("auto", "tty"):
        out = io.StringIO()
        p = make_progress(mode, out)
        p.emit(VertexStarted(LOAD, 0.0))
        p.emit(VertexDone(LOAD, 0.0))
        p.close()
        assert out.getvalue() == "#1 [internal] load build definition from Dockerfile\n#1 DONE 0.0s\n"


def test_bad_mode():
    with pytest.raises(PybuildError, match="invalid progress mode fancy"):
        make_progress("fancy", io.StringIO())


def test_events_after_close_are_dropped():
    out = io.StringIO()
    p = make_progress("plain", out)
    p.close()
    p.emit(VertexStarted(LOAD, 0.0))
    p.close()
    assert out.getvalue() == ""


def test_plain_does_not_import_rich():
    code = ("import io, sys; from pybuild.cli.build_progress import make_progress; "
            "make_progress('auto', io.StringIO()).close(); print('rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


TTY_SCRIPT = r"""
import sys, time
from pybuild.builder.events import *
from pybuild.cli.build_progress import make_progress
p = make_progress("auto", sys.stderr)
print(type(p).__name__, file=sys.stdout, flush=True)
a = Vertex(1, "[internal] load build definition from Dockerfile")
b = Vertex(2, "[build 2/3] RUN make", "build", 2)
c = Vertex(3, "[build 3/3] RUN false", "build", 3)
t = time.monotonic()
p.emit(VertexStarted(a, t)); p.emit(VertexDone(a, 0.01))
p.emit(VertexStarted(b, t))
for i in range(5):
    p.emit(VertexLog(b, 1, b"step %d\n" % i, time.monotonic()))
    time.sleep(0.06)
p.emit(VertexDone(b, 0.3))
p.emit(VertexStarted(c, time.monotonic()))
p.emit(VertexLog(c, 2, b"it broke\n", time.monotonic()))
p.emit(VertexFailed(c, 0.1, "process did not complete successfully: exit code: 1"))
p.emit(Warning("JSONArgsRecommended: JSON arguments recommended", 4))
p.close()
print("closed", file=sys.stdout, flush=True)
"""


def test_tty_view_renders_and_finishes_on_a_pty():
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, COLUMNS="100", LINES="30", TERM="xterm")
    child = pexpect.spawn(sys.executable, ["-c", TTY_SCRIPT], env=env, timeout=30,
                          dimensions=(30, 100), encoding="utf-8")
    child.expect("TtyProgress")
    child.expect(r"=> => # step \d")  # a running step's last output lines are shown
    child.expect(r"\[\+\] Building \d+\.\ds \(3/3\) FINISHED")
    rest = ""
    child.expect("closed")
    rest = child.before
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    final = _strip_ansi(rest)
    assert "=> [build 2/3] RUN make" in final
    assert "=> ERROR [build 3/3] RUN false" in final
    assert " > [build 3/3] RUN false:" in final
    assert "it broke" in final
    assert " - JSONArgsRecommended: JSON arguments recommended (line 4)" in final
    # the cursor was shown again (rich hides it while live)
    assert "\x1b[?25h" in rest


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")

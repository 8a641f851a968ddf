"""Pure parts of exec/top/stats: the exec'd process's config, ps output parsing, Docker's
size and CPU arithmetic, column layout."""

from __future__ import annotations

import pytest

from pybuild.cli.monitor import (
    TopError,
    _columns,
    _go_binary_size,
    parse_ps,
    render_stats,
    stats_fields,
    stats_row,
)
from pybuild.errors import ContainerError
from pybuild.runtime.exec import ExecRequest, exec_process
from pybuild.runtime.stats import Sample, cpu_percent, memory_percent, memory_used

SPEC = {"process": {"env": ["PATH=/bin", "A=1", "HOME=/root"], "cwd": "/srv",
                    "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
                    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
                    "rlimits": [], "noNewPrivileges": True}}


def test_exec_process_takes_the_containers_config_and_the_overrides():
    p = exec_process(SPEC, ExecRequest(args=("id",), env=("A=2", "B=3")))
    assert p["env"] == ["PATH=/bin", "A=2", "HOME=/root", "B=3"]
    assert p["cwd"] == "/srv" and p["user"]["uid"] == 0 and p["user_spec"] is None
    assert p["noNewPrivileges"] and p["capabilities"]["bounding"] == ["CAP_KILL"]
    assert not p["terminal"] and not p["explicit_home"]


def test_exec_process_tty_workdir_user_privileged():
    p = exec_process(SPEC, ExecRequest(args=("sh",), tty=True, workdir="/tmp", user="nobody",
                                       privileged=True, env=("HOME=/x",)),
                     all_capabilities=("CAP_KILL", "CAP_SYS_ADMIN"))
    assert "TERM=xterm" in p["env"] and p["cwd"] == "/tmp" and p["user_spec"] == "nobody"
    assert p["explicit_home"] and not p["noNewPrivileges"]
    assert p["capabilities"]["effective"] == ["CAP_KILL", "CAP_SYS_ADMIN"]


PS = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         200       1  0 10:01 ?        00:00:00 sh -c sleep 1 &  wait
"""


def test_parse_ps_keeps_rows_of_the_container_and_spaces_in_the_command():
    rows = parse_ps(PS, {200})
    assert rows[0][:2] == ["UID", "PID"] and len(rows) == 2
    assert rows[1][-1] == "sh -c sleep 1 &  wait"


@pytest.mark.parametrize("text", ["", "USER COMMAND\nroot init\n", "PID\nabc\n"])
def test_parse_ps_bad_output(text):
    with pytest.raises(TopError):
        parse_ps(text, {1})


def test_columns_like_tabwriter():
    assert _columns([["A", "BB", "C"], ["xxxx", "y", "z"]], 5) == "A      BB   C\nxxxx   y    z\n"


@pytest.mark.parametrize("n, text", [(0, "0B"), (1023, "1023B"), (1536, "1.5KiB"),
                                     (32 << 20, "32MiB"), (int(31.32 * (1 << 30)), "31.32GiB")])
def test_binary_sizes(n, text):
    assert _go_binary_size(n) == text


def test_cpu_and_memory_arithmetic():
    a = Sample(True, system_ns=1_000_000_000, online_cpus=2, cpu_ns=0)
    b = Sample(True, system_ns=3_000_000_000, online_cpus=2, cpu_ns=500_000_000,
               memory_usage=10 << 20, memory_cache=2 << 20, memory_limit=32 << 20, pids=3)
    assert cpu_percent(a, b) == pytest.approx(50.0)
    assert cpu_percent(b, b) == 0.0
    assert memory_used(b) == 8 << 20 and memory_percent(b) == pytest.approx(25.0)
    row = stats_row("f" * 64, "", a, b, no_trunc=False)
    assert row == ["f" * 12, "--", "50.00%", "8MiB / 32MiB", "25.00%", "0B / 0B", "0B / 0B", "3"]


def test_block_io_counters_v1_and_v2(tmp_path):
    from pybuild.runtime.cgroups import _blkio_v1, _io_v2

    (tmp_path / "blkio.throttle.io_service_bytes").write_text(
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\n"
        "8:16 Read 1\n8:16 Write 2\nTotal 12291\n")
    assert _blkio_v1(str(tmp_path)) == {"block_read": 4097, "block_write": 8194}
    assert _blkio_v1(None) == {}
    (tmp_path / "io.stat").write_text("8:0 rbytes=100 wbytes=200 rios=1 wios=2\n"
                                      "8:16 rbytes=1 wbytes=2 rios=1 wios=1\n")
    assert _io_v2(str(tmp_path / "io.stat")) == {"block_read": 101, "block_write": 202}
    assert _io_v2(str(tmp_path / "missing")) == {}


def test_net_io_skips_loopback(tmp_path, monkeypatch):
    from pybuild.runtime import stats

    dev = tmp_path / "dev"
    dev.write_text(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
        "    lo:    1000      10    0    0    0     0          0         0     1000      10"
        "    0    0    0     0       0          0\n"
        "  eth0:    2500      20    0    0    0     0          0         0      700       7"
        "    0    0    0     0       0          0\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(
        dev if path == "/proc/42/net/dev" else path, *a, **k))
    assert stats.net_io(42) == (2500, 700)


def test_render_stats_table_and_templates():
    off = Sample(False)
    rows = [stats_fields("a" * 64, "web", off, off, no_trunc=False)]
    table = render_stats(rows, None).splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    assert table[1].split()[:3] == ["a" * 12, "web", "0.00%"]
    assert render_stats(rows, "{{.Name}}: {{.PIDs}} {{.Container}}") == f"web: 0 {'a' * 12}\n"
    assert render_stats([], "{{.Name}}") == ""
    with pytest.raises(ContainerError, match="template parsing error"):  # exit 125
        render_stats(rows, "{{.Bogus}}")


def test_cgroup_procs_files_of_this_process():
    import os

    from pybuild.runtime.exec import cgroup_procs_files

    files = dict(cgroup_procs_files(os.getpid()))
    assert files and all(p.endswith("/cgroup.procs") and os.path.exists(p) for p in files)
    with open("/proc/self/cgroup") as f:
        ctrls = {line.split(":")[1] for line in f}
    if any("memory" in c.split(",") for c in ctrls):  # v1 or hybrid: limits live in v1
        assert any(essential for p, essential in files.items() if "/memory/" in p)
        assert not any(essential for p, essential in files.items() if "/systemd/" in p)

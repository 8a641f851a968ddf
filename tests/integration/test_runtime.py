"""Real containers from a busybox rootfs (no store needed): isolation, identity, exit codes,
streams, cleanup. Driven through `pyrun run --rootfs` and the runtime API."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.plugins.runtime import child_pids, mount_points

pytestmark = pytest.mark.root


VALUE_FLAGS = {"-u", "-h", "-e", "-w", "-v", "--env-file", "--network", "--name",
               "--entrypoint", "--runtime", "--user", "--hostname", "-m", "--memory-swap",
               "--cpus", "--pids-limit"}


def pyrun_argv(rootfs, *args) -> list[str]:
    """`pyrun run FLAGS... --rootfs ROOTFS CMD...`: the rootfs goes where IMAGE belongs."""
    args = list(args)
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in VALUE_FLAGS else 1
    return [sys.executable, "-m", "pybuild.cli.pyrun", "run", *args[:i], "--rootfs",
            str(rootfs), *args[i:]]


@pytest.fixture
def pyrun(tmp_path, busybox_rootfs):
    """Run `pyrun run --rootfs <busybox> ARGS...`; returns CompletedProcess (text)."""
    store = tmp_path / "store"

    def run(*args, flags=(), input=None, timeout=60, check_clean=True):
        before_mounts, before_pids = mount_points(tmp_path.parent), child_pids()
        cmd = pyrun_argv(busybox_rootfs, *flags, *args)
        env = {**os.environ, "PYBUILD_ROOT": str(store)}
        res = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout,
                             env=env, stdin=None if input is not None else subprocess.DEVNULL)
        if check_clean:
            assert mount_points(tmp_path.parent) == before_mounts
            assert child_pids() == before_pids
        return res

    run.store = store
    return run


def containers(store) -> list[str]:
    d = store / "containers"
    return sorted(e for e in os.listdir(d) if len(e) == 64) if d.is_dir() else []


def tree_digest(root) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f"{p}:{st.st_mode}:{st.st_uid}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def test_command_is_pid_1_and_sees_only_its_processes(pyrun):
    res = pyrun("--rm", "sh", "-c", "echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '")
    assert res.returncode == 0, res.stderr
    pid, procs = res.stdout.splitlines()
    assert pid == "1"
    # pid 1 (sh), ls, grep, sort, tr: nothing from the host
    assert set(procs.split()) <= {str(n) for n in range(1, 10)}
    assert "1" in procs.split()


def test_hostname_default_and_flag(pyrun):
    res = pyrun("sh", "-c", "hostname; cat /etc/hostname; echo $HOSTNAME")
    (cid,) = containers(pyrun.store)
    assert res.stdout.split() == [cid[:12]] * 3
    res = pyrun("--rm", "-h", "web1", "hostname")
    assert res.stdout.strip() == "web1"
    assert os.uname().nodename != "web1"


def test_host_mounts_are_invisible(pyrun, tmp_path):
    res = pyrun("--rm", "sh", "-c", "cut -d' ' -f5 /proc/self/mountinfo; ls /")
    assert res.returncode == 0, res.stderr
    points = res.stdout.split()
    assert str(tmp_path) not in res.stdout and "/work" not in points
    mounts = [p for p in points if p.startswith("/")]
    assert mounts[0] == "/"
    assert set(mounts) <= {"/", "/proc", "/dev", "/dev/pts", "/sys", "/dev/mqueue", "/dev/shm",
                           "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc/bus",
                           "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
                           "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                           "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                           "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                           "/sys/devices/virtual/powercap"}


def test_writes_land_in_the_upper_dir_and_lower_is_unchanged(pyrun, busybox_rootfs):
    before = tree_digest(busybox_rootfs)
    res = pyrun("sh", "-c", "echo hi > /newfile && rm /etc/group && mkdir -p /opt/x")
    assert res.returncode == 0, res.stderr
    (cid,) = containers(pyrun.store)
    upper = pyrun.store / "containers" / cid / "upper"
    assert (upper / "newfile").read_text() == "hi\n"
    st = os.lstat(upper / "etc" / "group")
    assert st.st_rdev == 0 and (st.st_mode & 0o170000) == 0o020000  # overlay whiteout
    assert (upper / "opt" / "x").is_dir()
    assert not (upper / "etc" / "hosts").exists()  # bind-mount stubs do not leak into the layer
    assert tree_digest(busybox_rootfs) == before
    state = json.loads((pyrun.store / "containers" / cid / "state.json").read_text())
    assert state["status"] == "exited" and state["exit_code"] == 0


def test_rm_removes_the_container_directory(pyrun):
    assert pyrun("--rm", "true").returncode == 0
    assert containers(pyrun.store) == []


def test_user_nobody(pyrun):
    res = pyrun("--rm", "-u", "nobody", "sh", "-c",
                "id; echo $HOME; grep -E 'CapEff|CapPrm|CapBnd' /proc/self/status")
    lines = res.stdout.splitlines()
    assert lines[0] == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    assert lines[1] == "/home"
    assert lines[2].split() == ["CapPrm:", "0000000000000000"]
    assert lines[3].split() == ["CapEff:", "0000000000000000"]
    assert lines[4].split() == ["CapBnd:", "00000000a80425fb"]


def test_root_identity_and_capabilities(pyrun):
    res = pyrun("--rm", "sh", "-c", "id; grep -E 'CapEff|NoNewPrivs' /proc/self/status")
    lines = res.stdout.splitlines()
    assert lines[0] == "uid=0(root) gid=0(root) groups=0(root),10(wheel)"
    assert lines[1].split() == ["CapEff:", "00000000a80425fb"]
    assert lines[2].split() == ["NoNewPrivs:", "1"]
    res = pyrun("--rm", "--privileged", "grep", "-E", "CapEff|NoNewPrivs", "/proc/self/status")
    assert int(res.stdout.split()[1], 16) & (1 << 21)  # CAP_SYS_ADMIN
    assert res.stdout.split()[3] == "0"


def test_user_uid_gid_and_unknown_user(pyrun):
    res = pyrun("--rm", "-u", "4242:33", "id")
    assert res.stdout.strip().startswith("uid=4242 gid=33(www-data)")
    res = pyrun("--rm", "-u", "ghost", "true")
    assert res.returncode == 125
    assert "unable to find user ghost" in res.stderr


@pytest.mark.parametrize("args,code,message", [
    (("true",), 0, None),
    (("false",), 1, None),
    (("sh", "-c", "exit 42"), 42, None),
    (("/etc/passwd",), 126, 'exec: "/etc/passwd": permission denied'),
    (("/etc",), 126, None),
    (("nope",), 127, 'exec: "nope": executable file not found in $PATH'),
    (("/bin/nope",), 127, "no such file or directory"),
])
def test_exit_codes(pyrun, args, code, message):
    res = pyrun("--rm", *args)
    assert res.returncode == code, res.stderr
    if message:
        assert message in res.stderr


def _wait_running(store, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for cid in containers(store):
            try:
                state = json.loads((store / "containers" / cid / "state.json").read_text())
            except (OSError, ValueError):
                continue
            if state.get("pid"):
                return cid, state
        time.sleep(0.02)
    raise AssertionError("the container never started")


def _start(pyrun, *args, flags=()):
    env = {**os.environ, "PYBUILD_ROOT": str(pyrun.store)}
    return subprocess.Popen(
        pyrun_argv(pyrun.rootfs, *flags, *args),
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


@pytest.fixture
def started(pyrun, busybox_rootfs):
    pyrun.rootfs = str(busybox_rootfs)
    procs = []

    def start(*args, flags=()):
        p = _start(pyrun, *args, flags=flags)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_killed_by_signal_gives_128_plus_n(pyrun, started, tmp_path):
    before = mount_points(tmp_path.parent)
    p = started("sleep", "100", flags=("--rm",))
    _cid, state = _wait_running(pyrun.store)
    os.kill(state["pid"], signal.SIGKILL)
    assert p.wait(timeout=20) == 137
    assert containers(pyrun.store) == [] and mount_points(tmp_path.parent) == before


def test_sigterm_is_forwarded(pyrun, started):
    p = started("sh", "-c", "trap 'echo got-term; exit 3' TERM; sleep 100 & wait", flags=("--rm",))
    _wait_running(pyrun.store)
    time.sleep(0.3)  # let the shell install its trap
    p.send_signal(signal.SIGTERM)
    out, _err = p.communicate(timeout=20)
    assert p.returncode == 3 and "got-term" in out


def test_ctrl_c_twice_kills_and_leaves_nothing(pyrun, started, tmp_path):
    before_mounts, before_pids = mount_points(tmp_path.parent), child_pids()
    p = started("sleep", "100", flags=("--rm",))
    _cid, state = _wait_running(pyrun.store)
    p.send_signal(signal.SIGINT)  # pid 1 without a handler ignores it, as in Docker
    time.sleep(0.3)
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=20) == 137
    assert containers(pyrun.store) == []
    assert mount_points(tmp_path.parent) == before_mounts and child_pids() == before_pids


def test_kill_9_of_pyrun_is_cleaned_up(pyrun, started, tmp_path):
    before_mounts = mount_points(tmp_path.parent)
    p = started("sleep", "100", flags=("--rm",))
    cid, state = _wait_running(pyrun.store)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 10  # the container dies with its parent (PDEATHSIG)
    while os.path.exists(f"/proc/{state['pid']}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{state['pid']}")
    assert containers(pyrun.store) == [cid]  # left behind until the next pyrun
    res = pyrun("--rm", "true")
    assert res.returncode == 0, res.stderr
    assert containers(pyrun.store) == []
    assert mount_points(tmp_path.parent) == before_mounts
    if state.get("devices_cgroup"):
        assert not os.path.exists(state["devices_cgroup"])


def test_stdin_only_with_i(pyrun):
    res = pyrun("--rm", "cat", input="fed\n")
    assert res.stdout == ""
    res = pyrun("--rm", "cat", flags=("-i",), input="fed\n")
    assert res.stdout == "fed\n"
    res = pyrun("--rm", "-i", "sh", "-c", "read x; echo got $x", input="fed\n")
    assert res.stdout == "got fed\n"


def test_env_workdir_and_env_file(pyrun, tmp_path):
    envfile = tmp_path / "env"
    envfile.write_text("# c\nFROM_FILE=1\nA=file\n")
    res = pyrun("--rm", "--env-file", str(envfile), "-e", "A=flag", "-w", "/new/dir", "sh", "-c",
                "pwd; echo $FROM_FILE $A; test -d /new/dir && echo made")
    assert res.stdout.split("\n")[:3] == ["/new/dir", "1 flag", "made"]


def test_network_none_has_only_loopback_up(pyrun):
    res = pyrun("--rm", "sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate; "
                "cat /sys/class/net/lo/flags")
    names = res.stdout.split()
    assert names[0] == "lo" and names[1] in ("unknown", "up")
    assert int(names[2], 16) & 1  # IFF_UP


def test_network_host_sees_host_interfaces(pyrun):
    before = set(os.listdir("/sys/class/net"))
    res = pyrun("--rm", "--network", "host", "sh", "-c", "ls /sys/class/net; hostname")
    after = set(os.listdir("/sys/class/net"))
    *names, host = res.stdout.split()
    # other suites on the host may add or remove veths meanwhile: what stayed must be seen
    assert before & after <= set(names) <= before | after
    assert host == os.uname().nodename


def test_cgroup_namespace_is_rooted_at_the_containers_cgroup(pyrun):
    """The process joins its cgroups before it unshares its cgroup namespace, so inside, as
    with runc, every hierarchy shows `/` (it raced before: `/` or `/pybuild/<id>`)."""
    res = pyrun("--rm", "-m", "48m", "sh", "-c", "cat /proc/self/cgroup")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert lines and all(line.endswith(":/") for line in lines), lines


def test_read_only_and_read_write_binds(pyrun, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("host")
    res = pyrun("--rm", "-v", f"{data}:/data:ro", "sh", "-c", "cat /data/f; touch /data/new")
    assert res.stdout == "host" and res.returncode == 1
    assert "Read-only file system" in res.stderr
    assert not (data / "new").exists()
    res = pyrun("--rm", "-v", f"{data}:/data", "sh", "-c", "echo ctr > /data/new")
    assert res.returncode == 0 and (data / "new").read_text() == "ctr\n"


def test_read_only_rootfs(pyrun):
    res = pyrun("--rm", "--read-only", "touch", "/x")
    assert res.returncode == 1 and "Read-only file system" in res.stderr


def test_name_conflict(pyrun):
    assert pyrun("--name", "web", "true").returncode == 0
    res = pyrun("--name", "web", "true")
    assert res.returncode == 125 and 'The container name "/web" is already in use' in res.stderr
    res = pyrun("--name", "bad name", "true")
    assert res.returncode == 125 and "Invalid container name" in res.stderr


def test_bad_flags_exit_125(pyrun):
    res = pyrun("--network", "no-such-network", "true")
    assert res.returncode == 125 and "not found" in res.stderr
    res = pyrun("-w", "relative", "true")
    assert res.returncode == 125 and "absolute path" in res.stderr


def test_run_step_api_for_the_builder(busybox_rootfs, tmp_path):
    """What a Dockerfile RUN step does: lower dirs in, writes in the builder's upper dir,
    output on the fds it passes."""
    from pybuild.errors import CommandNotFound
    from pybuild.runtime import run_step

    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    out = tmp_path / "out"
    before = mount_points(tmp_path.parent)
    with open(out, "wb") as f:
        code = run_step(lower_dirs=[str(busybox_rootfs)], upper_dir=str(upper),
                        work_dir=str(work), scratch_dir=str(tmp_path / "scratch"),
                        argv=["/bin/sh", "-c", "echo built > /made; echo $FOO; hostname; pwd"],
                        env=["FOO=bar"], workdir="/srv", stdout=f.fileno())
    assert code == 0
    assert out.read_text().split() == ["bar", "buildkitsandbox", "/srv"]
    assert sorted(os.listdir(upper)) == ["made", "srv"]
    assert mount_points(tmp_path.parent) == before
    with pytest.raises(CommandNotFound):
        run_step(lower_dirs=[str(busybox_rootfs)], upper_dir=str(upper), work_dir=str(work),
                 scratch_dir=str(tmp_path / "scratch"), argv=["nope"])


@pytest.mark.parametrize("runtime", ["builtin", "runc"])
def test_memory_limit_oom_kill_gives_137(pyrun, runtime):
    if runtime == "runc" and not shutil.which("runc"):
        pytest.skip("runc is not installed")
    res = pyrun("--runtime", runtime, "-m", "32m", "--memory-swap", "32m", "dd", "if=/dev/zero",
                "of=/dev/null", "bs=100M", "count=1")
    assert res.returncode == 137
    (cid,) = containers(pyrun.store)
    state = json.loads((pyrun.store / "containers" / cid / "state.json").read_text())
    if runtime == "builtin":
        assert state["oom_killed"] is True
        assert not any(os.path.exists(p) for p in state["cgroup"]["paths"].values())


def test_pids_limit(pyrun):
    res = pyrun("--rm", "--pids-limit", "4", "sh", "-c",
                "for i in 1 2 3 4 5 6; do sleep 1 & done; wait")
    assert "can't fork" in res.stderr
    res = pyrun("--rm", "--pids-limit", "20", "sh", "-c",
                "for i in 1 2 3 4 5 6; do sleep 0.1 & done; wait")
    assert res.returncode == 0 and res.stderr == ""


@pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed")
def test_kill_9_of_pyrun_with_runc_is_cleaned_up_by_the_next_pyrun(pyrun, started, tmp_path):
    before_mounts = mount_points(tmp_path.parent)
    p = started("sleep", "100", flags=("--rm", "--runtime", "runc"))
    cid, state = _wait_running(pyrun.store)
    deadline = time.monotonic() + 10
    while "rootfs" not in str(mount_points(tmp_path.parent)) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    res = pyrun("--rm", "true", check_clean=False)
    assert res.returncode == 0, res.stderr
    assert containers(pyrun.store) == []
    assert mount_points(tmp_path.parent) == before_mounts
    assert not os.path.exists(pyrun.store / "containers" / ".runtime" / cid)
    deadline = time.monotonic() + 10  # runc was killed; its new parent (init) reaps it
    while os.path.exists(f"/proc/{state['pid']}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{state['pid']}")


def test_run_steps_in_parallel_threads(busybox_rootfs, tmp_path):
    """The builder runs independent stages at once: run_step works from worker threads."""
    import threading

    from pybuild.runtime import run_step

    results: dict[int, int] = {}

    def step(n: int) -> None:
        d = tmp_path / f"s{n}"
        for sub in ("upper", "work"):
            (d / sub).mkdir(parents=True)
        results[n] = run_step(lower_dirs=[str(busybox_rootfs)], upper_dir=str(d / "upper"),
                              work_dir=str(d / "work"), scratch_dir=str(d / "scratch"),
                              argv=["/bin/sh", "-c", f"echo $$ > /pid; exit {n}"])

    threads = [threading.Thread(target=step, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {0: 0, 1: 1, 2: 2, 3: 3}
    for n in range(4):
        assert (tmp_path / f"s{n}" / "upper" / "pid").read_text() == "1\n"
    # this process's own pid namespace is untouched: new children are not pid 1
    child = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True)
    assert child.stdout.strip() != "1"


def test_a_created_rm_container_whose_pyrun_died_is_removed(pyrun, busybox_rootfs):
    from pybuild.runtime import Container

    containers_dir = str(pyrun.store / "containers")
    code = ("import sys; from pybuild.runtime import Container, ImageConfig, RunOptions; "
            f"Container.create({containers_dir!r}, image=ImageConfig(cmd=('true',)), "
            f"lower_dirs=[{str(busybox_rootfs)!r}], options=RunOptions(), remove=True); "
            f"Container.create({containers_dir!r}, image=ImageConfig(cmd=('true',)), "
            f"lower_dirs=[{str(busybox_rootfs)!r}], options=RunOptions(), remove=False)")
    subprocess.run([sys.executable, "-c", code], check=True)  # created, never run, gone
    assert len(containers(pyrun.store)) == 2
    assert pyrun("--rm", "true").returncode == 0
    (kept,) = containers(pyrun.store)  # the one without --rm stays "created", like docker create
    state = Container(containers_dir, kept).state()
    assert state["status"] == "created" and not state["remove"]

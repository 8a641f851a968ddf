"""The container description: ENTRYPOINT/CMD/env combination, USER lookup, mount options,
and the OCI config's shape. No kernel needed."""

from __future__ import annotations

import os

import pytest

from pybuild.cli.run import parse_env_items, read_env_file
from pybuild.errors import ContainerError
from pybuild.runtime.identity import Identity, layered_file, resolve_user
from pybuild.runtime.mounts import (
    Rootfs,
    mount_stubs,
    overlay_data,
    parse_options,
    remove_stubs,
    secure_join,
)
from pybuild.runtime.mountspec import parse_volume
from pybuild.runtime.spec import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    ImageConfig,
    RunOptions,
    build_spec,
    container_env,
    merge_env,
    resolve_command,
)

SH = ("/bin/sh", "-c")

# (image ENTRYPOINT, image CMD, --entrypoint, args) -> argv; Docker's documented table
# (https://docs.docker.com/reference/dockerfile/#understand-how-cmd-and-entrypoint-interact)
COMBINATIONS = [
    (None, ("echo", "hi"), None, (), ["echo", "hi"]),
    (None, ("echo", "hi"), None, ("ls", "-l"), ["ls", "-l"]),
    (("/ep",), None, None, (), ["/ep"]),
    (("/ep", "a"), ("b", "c"), None, (), ["/ep", "a", "b", "c"]),
    (("/ep", "a"), ("b",), None, ("x",), ["/ep", "a", "x"]),
    # shell-form ENTRYPOINT ignores CMD in effect: it lands as $0 of the shell
    ((*SH, "exec top -b"), ("-c",), None, (), [*SH, "exec top -b", "-c"]),
    # shell-form CMD after an exec ENTRYPOINT
    (("/ep",), (*SH, "echo hi"), None, (), ["/ep", *SH, "echo hi"]),
    # shell-form CMD alone
    (None, (*SH, "echo $HOME"), None, (), [*SH, "echo $HOME"]),
    # --entrypoint resets the image's CMD
    (("/ep",), ("b",), "/other", (), ["/other"]),
    (("/ep",), ("b",), "/other", ("x", "y"), ["/other", "x", "y"]),
    # --entrypoint "" clears it: the args alone remain
    (("/ep",), ("b",), "", ("ls",), ["ls"]),
    (None, None, None, ("true",), ["true"]),
    ((), ("cmd",), None, (), ["cmd"]),
]


@pytest.mark.parametrize("entrypoint,cmd,override,args,expected", COMBINATIONS)
def test_entrypoint_cmd_combination(entrypoint, cmd, override, args, expected):
    image = ImageConfig(entrypoint=entrypoint, cmd=cmd)
    assert resolve_command(image, RunOptions(args=args, entrypoint=override)) == expected


@pytest.mark.parametrize("entrypoint,cmd,override", [
    (None, None, None), ((), (), None), (("/ep",), ("x",), ""),
])
def test_no_command_is_an_error(entrypoint, cmd, override):
    with pytest.raises(ContainerError, match="no command specified"):
        resolve_command(ImageConfig(entrypoint=entrypoint, cmd=cmd),
                        RunOptions(entrypoint=override))


def test_image_config_from_oci_dict():
    cfg = ImageConfig.from_oci({"architecture": "amd64", "config": {
        "Env": ["A=1"], "Entrypoint": ["/e"], "Cmd": None, "WorkingDir": "/w", "User": "1:2"}})
    assert cfg == ImageConfig(env=("A=1",), entrypoint=("/e",), cmd=None, working_dir="/w",
                              user="1:2")
    assert ImageConfig.from_oci({}) == ImageConfig()


def test_env_order_and_overrides_like_docker():
    image = ImageConfig(env=("PATH=/img/bin", "A=image", "B=b"))
    opts = RunOptions(env=("A=user", "C=c"), tty=True)
    env = container_env(image, opts, "host1", "/root")
    assert env == ["PATH=/img/bin", "HOSTNAME=host1", "TERM=xterm", "A=user", "B=b", "C=c",
                   "HOME=/root"]
    env = container_env(ImageConfig(), RunOptions(env=("HOME=/h",)), "h", "/root")
    assert env == [f"PATH={DEFAULT_PATH}", "HOSTNAME=h", "HOME=/h"]
    assert merge_env(["A=1", "B=2"], ["B=3", "A=4", "C"]) == ["A=4", "B=3", "C"]


PASSWD = b"""root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
app:x:1000:1000::/srv/app:/bin/sh
# comment
"""
GROUP = b"""root:x:0:
wheel:x:10:root,app
staff:x:50:app
app:x:1000:
nogroup:x:65534:
"""


@pytest.mark.parametrize("spec,expected", [
    ("", Identity(0, 0, (10,), "/root", "root")),
    ("root", Identity(0, 0, (10,), "/root", "root")),
    ("nobody", Identity(65534, 65534, (), "/home", "nobody")),
    ("app", Identity(1000, 1000, (10, 50), "/srv/app", "app")),
    ("1000", Identity(1000, 1000, (10, 50), "/srv/app", "app")),
    ("app:staff", Identity(1000, 50, (), "/srv/app", "app")),
    ("app:0", Identity(1000, 0, (), "/srv/app", "app")),
    ("4242", Identity(4242, 0, (), "/", None)),
    ("4242:4343", Identity(4242, 4343, (), "/", None)),
    ("nobody:nogroup", Identity(65534, 65534, (), "/home", "nobody")),
])
def test_resolve_user(spec, expected):
    assert resolve_user(spec, PASSWD, GROUP) == expected


@pytest.mark.parametrize("spec,message", [
    ("ghost", "unable to find user ghost"),
    ("app:ghosts", "unable to find group ghosts"),
])
def test_resolve_user_errors(spec, message):
    with pytest.raises(ContainerError, match=message):
        resolve_user(spec, PASSWD, GROUP)


def test_resolve_user_without_passwd_file():
    assert resolve_user("", None, None) == Identity(0, 0, (), "/", None)
    assert resolve_user("7:8", None, None) == Identity(7, 8, (), "/", None)


def test_layered_file_respects_whiteouts_and_opaque_dirs(tmp_path):
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("lower")
    (lower / "etc" / "group").write_text("lowergroup")
    (upper / "etc").mkdir(parents=True)
    layers = [str(upper), str(lower)]
    assert layered_file(layers, "/etc/passwd") == b"lower"
    (upper / "etc" / "passwd").write_text("upper")
    assert layered_file(layers, "/etc/passwd") == b"upper"
    if os.geteuid() == 0:
        os.mknod(upper / "etc" / "group", 0o020000, 0)  # overlay whiteout
        assert layered_file(layers, "/etc/group") is None
    assert layered_file(layers, "/etc/shadow") is None


def test_parse_mount_options():
    p = parse_options(["nosuid", "noexec", "mode=755", "size=65536k", "rprivate", "ro", "rw"])
    from pybuild.runtime import linux as L

    assert p.flags == L.MS_NOSUID | L.MS_NOEXEC
    assert p.data == "mode=755,size=65536k"
    assert p.propagation == (L.MS_PRIVATE | L.MS_REC,)


def test_secure_join_never_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "abs").symlink_to("/etc/../../outside")
    (root / "etc" / "rel").symlink_to("../../../x")
    (root / "loop").symlink_to("loop")
    assert secure_join(str(root), "/etc/abs/f") == str(root / "outside" / "f")
    assert secure_join(str(root), "/etc/rel") == str(root / "x")
    assert secure_join(str(root), "/../../etc") == str(root / "etc")
    with pytest.raises(OSError, match="too many levels"):
        secure_join(str(root), "/loop/x")


def test_overlay_data_shortens_long_lower_lists(tmp_path):
    lowers = tuple(str(tmp_path / "snapshots" / str(n) / "fs") for n in range(60))
    data, chdir = overlay_data(Rootfs(lowers, "/u", "/w", "/t"))
    assert chdir == str(tmp_path / "snapshots")
    assert data.startswith("lowerdir=0/fs:1/fs:")
    assert "redirect_dir=off,metacopy=off,index=off" in data
    data, chdir = overlay_data(Rootfs(lowers[:2], "/u", "/w", "/t"))
    assert chdir is None and data.startswith(f"lowerdir={lowers[0]}:{lowers[1]},upperdir=/u")


def _spec(**opts):
    return build_spec(ImageConfig(cmd=("sh",)), RunOptions(**opts), Identity(0, 0, (10,), "/root"),
                      rootfs="/r", hostname="h",
                      etc_files={"/etc/hosts": "/c/hosts", "/etc/hostname": "/c/hostname"},
                      all_capabilities=("CAP_CHOWN", "CAP_SYS_ADMIN"))


def test_spec_defaults_match_docker():
    spec = _spec()
    proc = spec["process"]
    assert proc["args"] == ["sh"] and proc["cwd"] == "/" and proc["noNewPrivileges"]
    assert proc["user"] == {"uid": 0, "gid": 0, "additionalGids": [0, 10]}
    assert proc["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert proc["capabilities"]["effective"] == list(DEFAULT_CAPABILITIES)
    assert proc["capabilities"]["inheritable"] == []
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/sys", "/dev/mqueue", "/dev/shm",
                     "/etc/hostname", "/etc/hosts"]
    assert {"type": "network"} in spec["linux"]["namespaces"]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    nofile = proc["rlimits"][0]
    import resource

    assert nofile["hard"] <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def test_spec_non_root_user_has_no_effective_capabilities():
    spec = build_spec(ImageConfig(cmd=("id",)), RunOptions(), Identity(65534, 65534, (), "/home"),
                      rootfs="/r", hostname="h")
    caps = spec["process"]["capabilities"]
    assert caps["effective"] == caps["permitted"] == [] and caps["bounding"]
    assert "HOME=/home" in spec["process"]["env"]


def test_spec_privileged_host_network_binds():
    from pybuild.runtime.spec import BindMount

    spec = _spec(privileged=True, network="host", binds=(BindMount("/src", "/dst", True),),
                 workdir="/app")
    assert spec["process"]["capabilities"]["bounding"] == ["CAP_CHOWN", "CAP_SYS_ADMIN"]
    assert not spec["process"]["noNewPrivileges"]
    assert "maskedPaths" not in spec["linux"]
    assert {"type": "network"} not in spec["linux"]["namespaces"]
    assert spec["mounts"][-1] == {"destination": "/dst", "type": "bind", "source": "/src",
                                  "options": ["rbind", "rprivate", "ro"]}
    assert spec["process"]["cwd"] == "/app"


@pytest.mark.parametrize("mode", ["bridge", "mynet"])
def test_spec_bridge_and_named_networks_get_a_netns(mode):
    assert {"type": "network"} in _spec(network=mode)["linux"]["namespaces"]


def test_spec_reads_exposed_ports():
    assert ImageConfig.from_oci({"config": {"ExposedPorts": {"80/tcp": {}}}}).exposed_ports == ("80/tcp",)


@pytest.mark.parametrize("opts,message", [
    ({"network": "-bad name"}, "invalid network mode '-bad name'"),
    ({"workdir": "rel"}, "needs to be an absolute path"),
])
def test_spec_rejects_bad_options(opts, message):
    with pytest.raises(ContainerError, match=message):
        _spec(**opts)


def test_mount_stubs_and_removal(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "proc").mkdir(parents=True)
    (lower / "etc").mkdir()
    upper.mkdir()
    spec = {"mounts": [{"destination": "/proc"}, {"destination": "/etc/hosts"},
                       {"destination": "/data/x"}]}
    stubs = mount_stubs(spec, [str(upper), str(lower)])
    assert stubs == ["/etc/hosts", "/data/x"]
    (upper / "etc").mkdir()
    (upper / "etc" / "hosts").touch()
    (upper / "etc" / "kept").write_text("user data")
    (upper / "data" / "x").mkdir(parents=True)
    remove_stubs(str(upper), stubs)
    assert sorted(os.listdir(upper)) == ["etc"]
    assert os.listdir(upper / "etc") == ["kept"]


def test_env_items_and_env_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("NOT_SET", raising=False)
    assert parse_env_items(["A=1", "FROM_HOST", "NOT_SET", "E="]) == ["A=1", "FROM_HOST=yes", "E="]
    with pytest.raises(ContainerError, match="contains whitespaces"):
        parse_env_items(["A B=1"])
    with pytest.raises(ContainerError, match="invalid environment variable"):
        parse_env_items(["=x"])
    f = tmp_path / "env"
    f.write_text("# comment\n\n  X=1\nY=two words\nFROM_HOST\nQ=\"quoted\"\n")
    assert read_env_file(str(f)) == ["X=1", "Y=two words", "FROM_HOST=yes", 'Q="quoted"']
    with pytest.raises(ContainerError, match="no such file"):
        read_env_file(str(tmp_path / "missing"))


def test_parse_volume(tmp_path):
    b = parse_volume(f"{tmp_path}/new:/data:ro")
    assert (b.type, b.source, b.target, b.readonly) == ("bind", str(tmp_path / "new"), "/data", True)
    assert b.create_source  # -v makes a missing host dir when the container is created
    assert parse_volume(f"{tmp_path}:/d/").readonly is False
    assert parse_volume("named:/d").type == "volume"
    for bad in ("", f"{tmp_path}:/d:rx", f"{tmp_path}:rel", ":/d", "a:b:c:d", "/d:ro"):
        with pytest.raises(ContainerError):
            parse_volume(bad)


def test_resources_and_back():
    from pybuild.runtime.cgroups import Limits
    from pybuild.runtime.spec import limits_of, resources

    assert resources(None) == {"devices": [{"allow": False, "access": "rwm"}]}
    res = resources(Limits(memory=64 << 20, cpus=1.5, pids=20))
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20}  # Docker: swap = 2 x memory
    assert res["cpu"] == {"quota": 150000, "period": 100000}
    assert res["pids"] == {"limit": 20}
    spec = {"linux": {"resources": res}}
    assert limits_of(spec) == Limits(memory=64 << 20, memory_swap=128 << 20, cpus=1.5, pids=20)
    assert limits_of({"linux": {"resources": resources(None)}}) is None


def test_parse_limits_flags():
    from pybuild.cli.run import parse_limits
    from pybuild.runtime.cgroups import Limits

    assert parse_limits(None, None, None, None) is None
    assert parse_limits("64m", "-1", 0.5, 10) == Limits(64 << 20, -1, 0.5, 10)
    for bad in (("1m", None, None, None), (None, "64m", None, None), ("64m", "32m", None, None),
                (None, None, 0.001, None), ("lots", None, None, None)):
        with pytest.raises(ContainerError):
            parse_limits(*bad)


def test_resolv_conf_per_network_mode():
    from pybuild.runtime.container import _resolv_conf

    loop = "search lan\nnameserver 127.0.0.53\n"
    assert _resolv_conf("host", loop) == loop
    assert _resolv_conf("none", loop) == "search lan\n"
    assert _resolv_conf("bridge", loop) == "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    real = "nameserver 10.0.0.1\nnameserver 127.0.0.1\n"
    assert _resolv_conf("mynet", real) == "nameserver 10.0.0.1\n"

"""Docker's mount flag syntax: -v, --mount (csv), --tmpfs, --volumes-from, and their errors."""

from __future__ import annotations

import pytest

from pybuild.errors import ContainerError
from pybuild.runtime.mountspec import (
    parse_mount,
    parse_tmpfs,
    parse_volume,
    parse_volumes_from,
    tmpfs_entry,
)
from pybuild.runtime.volumes import VolumeError, Volumes, check_name, check_options


def test_volume_flag_forms():
    anon = parse_volume("/data")
    assert (anon.type, anon.source, anon.target) == ("volume", "", "/data")
    named = parse_volume("cache:/var/cache:ro,nocopy")
    assert (named.type, named.source, named.readonly, named.nocopy, named.mode) == \
        ("volume", "cache", True, True, "ro,nocopy")
    assert parse_volume("cache:/c").mode == "z"  # Docker's Mode for a named volume
    bind = parse_volume("/srv/x:/x:rshared")
    assert (bind.type, bind.propagation, bind.readonly) == ("bind", "rshared", False)
    assert parse_volume("/srv/x:/x/../y/").target == "/y"


@pytest.mark.parametrize("spec,message", [
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("/h:/c:rx", "invalid mode: rx"),
    ("/h:/c:ro,rw", "invalid mode: ro,rw"),
    ("/h:rel", "invalid mount path: 'rel' mount path must be absolute"),
    ("/h:/", "destination can't be '/'"),
    ("vol:/c:rshared", "only valid for bind mounts"),
    ("/c:ro", "invalid volume specification: '/c:ro'"),
])
def test_volume_flag_errors(spec, message):
    with pytest.raises(ContainerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_volume(spec)


def test_mount_flag_forms(tmp_path):
    m = parse_mount(f"type=bind,source={tmp_path},target=/w,readonly,bind-propagation=rslave")
    assert (m.type, m.source, m.target, m.readonly, m.propagation) == \
        ("bind", str(tmp_path), "/w", True, "rslave")
    assert not m.create_source  # --mount never creates a host dir
    v = parse_mount("type=volume,src=v1,dst=/d,volume-nocopy,volume-opt=type=tmpfs,"
                    "volume-opt=device=tmpfs,volume-label=a=b,ro=false")
    assert (v.source, v.nocopy, v.readonly) == ("v1", True, False)
    assert v.volume_options == (("type", "tmpfs"), ("device", "tmpfs"))
    assert v.volume_labels == (("a", "b"),)
    t = parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770")
    assert tmpfs_entry(t)["options"] == ["nosuid", "nodev", "noexec", "size=1048576", "mode=1770"]
    assert parse_mount('"type=volume","target=/a,b"').target == "/a,b"  # csv quoting


@pytest.mark.parametrize("text,message", [
    ("target=/x", "type is required"),
    ("type=bind,source=/tmp", "target is required"),
    ("type=volume,target=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("type=volume,target=/x,nocopy", "invalid field 'nocopy' must be a key=value pair"),
    ("type=bind,src=/tmp,dst=/x,volume-nocopy", "cannot mix 'volume-\\*' options with mount type 'bind'"),
    ("type=volume,dst=/x,tmpfs-size=1m", "cannot mix 'tmpfs-\\*' options with mount type 'volume'"),
    ("type=tmpfs,dst=/x,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
    ("type=tmpfs,dst=/x,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"),
    ("type=tmpfs,dst=/x,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=nfs,dst=/x", 'invalid mount config for type "nfs": mount type unknown'),
    ("type=bind,dst=/x", "field Source must not be empty"),
    ("type=tmpfs,src=x,dst=/x", "field Source must not be specified"),
    ("type=volume,dst=rel", "mount path must be absolute"),
])
def test_mount_flag_errors(text, message):
    with pytest.raises(ContainerError, match=message):
        parse_mount(text)


def test_tmpfs_and_volumes_from():
    t = parse_tmpfs("/run:size=64k,exec")
    assert (t.target, t.tmpfs_options, t.mode) == ("/run", ("size=65536", "exec"), "size=64k,exec")
    assert tmpfs_entry(t)["options"][-1] == "exec"  # the user's flags come after the defaults
    with pytest.raises(ContainerError, match=r'invalid tmpfs option \["bogus"\]'):
        parse_tmpfs("/run:bogus")
    with pytest.raises(ContainerError, match="must be absolute"):
        parse_tmpfs("run")
    assert parse_volumes_from("web") == ("web", None)
    assert parse_volumes_from("web:ro") == ("web", True)
    assert parse_volumes_from("web:rw") == ("web", False)
    with pytest.raises(ContainerError, match="invalid mode: xx"):
        parse_volumes_from("web:xx")


def test_volume_names_and_options(tmp_path):
    check_name("ab")
    with pytest.raises(VolumeError, match="too short"):
        check_name("a")
    with pytest.raises(VolumeError, match="includes invalid characters"):
        check_name("my vol")
    with pytest.raises(VolumeError, match='invalid option: "bogus"'):
        check_options({"bogus": "1"})
    with pytest.raises(VolumeError, match='missing required option: "device"'):
        check_options({"type": "tmpfs"})
    vols = Volumes(str(tmp_path))
    a = vols.create("data", labels={"k": "v"})
    assert vols.create("data").created == a.created  # an existing volume is returned as is
    anon = vols.create(None, anonymous=True)
    assert len(anon.name) == 64 and anon.anonymous and not a.anonymous
    assert [v.name for v in vols.list()] == sorted(["data", anon.name])
    assert vols.prune() == ([anon.name], 0)  # unused anonymous volumes only, as Docker 23+
    assert vols.prune(all_volumes=True, labels=(("k", "x", False),)) == ([], 0)
    assert vols.prune(all_volumes=True, labels=(("k", "v", False),))[0] == ["data"]
    with pytest.raises(VolumeError, match="no such volume"):
        vols.remove("data")
    vols.remove("data", force=True)

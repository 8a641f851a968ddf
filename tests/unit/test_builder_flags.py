"""Flag sets, Go-compatible value parsers and RUN --mount specs, below the instruction level."""

import pytest

from pybuild.builder.flags import (
    BOOL,
    STRING,
    STRINGS,
    InstructionError,
    format_go_duration,
    parse_flags,
    parse_go_duration,
    suggest,
)
from pybuild.builder.mounts import parse_mount

SPEC = {"from": STRING, "link": BOOL, "exclude": STRINGS}


def test_parse_flags_values():
    assert parse_flags(["--from=a=b", "--link", "--exclude=x", "--exclude=y"], SPEC) == {
        "from": "a=b",
        "link": True,
        "exclude": ("x", "y"),
    }
    assert parse_flags(["--link=FALSE"], SPEC) == {"link": False}
    assert parse_flags(["--from="], SPEC) == {"from": ""}
    assert parse_flags(["--", "--nope"], SPEC) == {}


def test_parse_flags_refuses_words_without_dashes():
    with pytest.raises(InstructionError, match="arg should start with -- : -x"):
        parse_flags(["-x"], SPEC)


def test_flag_names_are_case_sensitive():
    with pytest.raises(InstructionError, match="unknown flag: --FROM"):
        parse_flags(["--FROM=a"], SPEC)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("5s", 5 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("300ms", 3 * 10**8),
        ("2us", 2000),
        ("2\u00b5s", 2000),
        ("7ns", 7),
        ("-1s", -(10**9)),
        (".5s", 5 * 10**8),
        ("1h2m3.5s", 3723500 * 10**6),
    ],
)
def test_go_durations(text, ns):
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "s", "1.s.", "--1s", "1e3s"])
def test_bad_go_durations(text):
    with pytest.raises(InstructionError, match="time: "):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (90 * 10**9, "1m30s"),
        (3600 * 10**9, "1h0m0s"),
        (1500 * 10**6, "1.5s"),
        (300 * 10**6, "300ms"),
        (2000, "2\u00b5s"),
    ],
)
def test_go_duration_strings(ns, text):
    assert format_go_duration(ns) == text


def test_suggest():
    assert suggest("mont", ["mount", "network"]) == "mount"
    assert suggest("zzzzzz", ["mount"]) is None
    assert suggest("mount", ["mount"]) is None
    assert suggest("RUNN", ["RUN", "ENV"]) == "RUN"


def test_mount_defaults_and_aliases():
    bind = parse_mount("target=/src,src=sub,from=build")
    assert (bind.type, bind.target, bind.source, bind.from_, bind.readonly) == (
        "bind",
        "/src",
        "sub",
        "build",
        True,
    )
    cache = parse_mount("type=cache,dst=/c,sharing=LOCKED,mode=0700,uid=1,gid=2")
    assert (cache.readonly, cache.sharing, cache.mode, cache.uid, cache.gid) == (
        False,
        "locked",
        0o700,
        1,
        2,
    )
    assert parse_mount("type=bind,target=/t,rw").readonly is False
    assert parse_mount("type=bind,target=/t,readwrite=true").readonly is False
    secret = parse_mount("type=secret,id=token,required")
    assert (secret.id, secret.required, secret.readonly) == ("token", True, True)
    assert parse_mount('type=bind,"target=/a,b"').target == "/a,b"


def test_mount_values_with_variables_wait_for_dispatch():
    mount = parse_mount("type=$KIND,target=$DIR,mode=$MODE")
    assert set(mount.deferred) == {"type", "target", "mode"}
    expanded = parse_mount(
        "type=$KIND,target=$DIR", expand=lambda v: {"$KIND": "cache", "$DIR": "/x"}[v]
    )
    assert (expanded.type, expanded.target, expanded.deferred) == ("cache", "/x", ())
    # a deferred source still counts as given
    assert parse_mount("type=secret,src=$F").deferred == ("source",)

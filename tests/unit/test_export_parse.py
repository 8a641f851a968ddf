"""`--output` parsing: buildx's csv syntax, shorthands and errors."""

from __future__ import annotations

import pytest

from pybuild.builder.export import OutputSpec, parse_output
from pybuild.errors import PybuildError


@pytest.mark.parametrize(("text", "spec"), [
    ("type=local,dest=out", OutputSpec("local", "out")),
    ("out/dir", OutputSpec("local", "out/dir")),
    ("-", OutputSpec("tar", "-")),
    ("type=tar,dest=fs.tar", OutputSpec("tar", "fs.tar")),
    ("type=tar", OutputSpec("tar", "-")),
    ("type=oci,dest=img.tar", OutputSpec("oci", "img.tar")),
    ("type=oci", OutputSpec("oci", "-")),
    ("type=docker,dest=img.tar,name=foo:1", OutputSpec("docker", "img.tar", ("foo:1",))),
    ("type=docker", OutputSpec("docker", None)),
    ("type=image", OutputSpec("image")),
    ('type=image,"name=a:1,b:2",push=true', OutputSpec("image", None, ("a:1", "b:2"), True)),
    ("type=image,push=0", OutputSpec("image", None, (), False)),
    ("type=registry,name=localhost:5000/x", OutputSpec("image", None, ("localhost:5000/x",), True)),
    ("type=registry,name=r/x,push=false", OutputSpec("image", None, ("r/x",), False)),
    ("TYPE=local,DEST=o", OutputSpec("local", "o")),
    ('type=local,"dest=a,b"', OutputSpec("local", "a,b")),
    ("type=local,dest=x=y", OutputSpec("local", "x=y")),
])
def test_parse(text, spec):
    assert parse_output(text) == spec


@pytest.mark.parametrize(("text", "message"), [
    ("", "type is required for output"),
    ("dest=out,x=1", "type is required for output"),
    ("type=local", "dest is required for local exporter"),
    ("type=local,dest=", "dest is required for local exporter"),
    ("type=local,dest=-", "dest cannot be stdout for local exporter"),
    ("type=zip,dest=x", "unknown output type 'zip'"),
    ("type=local,dest=o,bogus", "invalid value bogus"),
    ("type=local,dest=o,name=x", "the local exporter has no attribute 'name'"),
    ("type=oci,dest=o,tar=false", "the oci exporter has no attribute 'tar'"),
    ("type=image,push=maybe", "push='maybe' is not a boolean"),
    ('type=local,"dest=o', "invalid --output"),
])
def test_bad_output(text, message):
    with pytest.raises(PybuildError) as err:
        parse_output(text)
    assert message in str(err.value)
    assert repr(text) in str(err.value)


def test_destinations_are_checked_before_the_build(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(PybuildError, match="is a file"):
        parse_output(f"type=local,dest={afile}")
    with pytest.raises(PybuildError, match="is a file"):
        parse_output(str(afile))
    for kind in ("oci", "docker", "tar"):
        with pytest.raises(PybuildError, match="is a directory"):
            parse_output(f"type={kind},dest={tmp_path}")
    assert parse_output(f"type=local,dest={tmp_path}") == OutputSpec("local", str(tmp_path))

    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdout", Tty())
    for text in ("-", "type=oci", "type=tar,dest=-", "type=docker,dest=-"):
        with pytest.raises(PybuildError, match="refusing to write to console"):
            parse_output(text)
    assert parse_output("type=docker") == OutputSpec("docker", None)

"""The two entry points start, show help, and map usage errors to Docker's exit code 125."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)


def test_pyrun_help_lists_usage():
    r = run("pybuild.cli.pyrun", "--help")
    assert r.returncode == 0
    assert "Usage: pyrun" in r.stdout


def test_pyrun_unknown_verb_is_125():
    r = run("pybuild.cli.pyrun", "no-such-verb")
    assert r.returncode == 125
    assert "no-such-verb" in r.stderr


def test_errors_carry_location():
    from pybuild.errors import DockerfileError, RegistryError

    e = DockerfileError('unknown instruction "RUNN"', path="Dockerfile", line=7)
    assert str(e) == 'Dockerfile:7: unknown instruction "RUNN"'
    assert (e.path, e.line) == ("Dockerfile", 7)
    assert "HTTP 401" in str(RegistryError("unauthorized", ref="127.0.0.1:5000/a", status=401))

"""Docker's exit codes for engine errors: 125 from run and create (and container
run/create), 1 from every other container verb; flag errors stay 125."""

from __future__ import annotations

import pytest

from pybuild.cli.exitcodes import engine_error_exit_code, verb_words

pytestmark = pytest.mark.root


def test_verbs_other_than_run_and_create_exit_1(pyrun_lc):
    pyrun = pyrun_lc
    pyrun.ok("create", "--name", "one", "busybox", "true")
    pyrun.ok("create", "--name", "two", "busybox", "true")
    conflict = 'The container name "/two" is already in use'
    for args in (("create", "--name", "two", "busybox", "true"),
                 ("container", "create", "--name", "two", "busybox", "true"),
                 ("run", "--name", "two", "busybox", "true"),
                 ("container", "run", "--name", "two", "busybox", "true")):
        res = pyrun(*args)
        assert res.returncode == 125 and conflict in res.stderr, args
    res = pyrun("rename", "one", "two")
    assert res.returncode == 1 and conflict in res.stderr
    res = pyrun("container", "rename", "one", "two")
    assert res.returncode == 1 and conflict in res.stderr
    for args in (("stop", "nosuch"), ("kill", "-s", "NOPE", "one"), ("ps", "-f", "nope=1"),
                 ("container", "ls", "-f", "nope=1"), ("inspect", "-f", "{{.Nope}}", "one"),
                 ("logs", "--since", "whenever", "one"), ("stop", "-s", "NOPE", "one")):
        res = pyrun(*args)
        assert res.returncode == 1, (args, res.stderr)
    assert pyrun("ps", "--no-such-flag").returncode == 125  # a flag error, as Docker's
    assert pyrun("--root", pyrun.root, "rename", "one", "two").returncode == 1


def test_verb_words():
    assert verb_words(["--root", "/x", "--debug", "rename", "a", "b"]) == ["rename"]
    assert verb_words(["container", "--debug", "create", "busybox"]) == ["container", "create"]
    assert engine_error_exit_code(["container", "create"], 125) == 125
    assert engine_error_exit_code(["container", "rm", "x"], 125) == 1
    assert engine_error_exit_code(["ps"], 127) == 127
    assert engine_error_exit_code(["pull", "x"], 125) == 125  # the registry verbs' own rules

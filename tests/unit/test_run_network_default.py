"""Which network `pyrun run`/`create` use when --network is not given: none, unless ports are
published (-p, -P), which ask for Docker's default, the bridge. Validation only: nothing is
created here."""

from __future__ import annotations

import pytest

from pybuild.cli.run import check_network
from pybuild.errors import ContainerError


@pytest.mark.parametrize("publish, publish_all, expected", [
    ((), False, "none"),
    (("127.0.0.1:8080:80",), False, "bridge"),
    (("80",), False, "bridge"),
    ((), True, "bridge"),
])
def test_default_network(tmp_path, publish, publish_all, expected):
    assert check_network(str(tmp_path), None, publish, publish_all) == expected


def test_explicit_network_wins(tmp_path):
    assert check_network(str(tmp_path), "none", ("8080:80",), False) == "none"
    assert check_network(str(tmp_path), "host", (), True) == "host"
    with pytest.raises(ContainerError, match="invalid network mode"):
        check_network(str(tmp_path), "", (), False)


def test_bad_publish_fails_even_by_default(tmp_path):
    with pytest.raises(ContainerError):
        check_network(str(tmp_path), None, ("notaport",), False)

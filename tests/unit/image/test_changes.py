"""--change instructions applied to a container config."""

from __future__ import annotations

import pytest

from pybuild.errors import ImageError
from pybuild.image.changes import apply_changes
from pybuild.image.config import ContainerConfig

BASE = ContainerConfig(env=("PATH=/bin",), cmd=("sh",))


@pytest.mark.parametrize(
    "changes, field, expected",
    [
        (['CMD ["echo", "hi"]'], "cmd", ("echo", "hi")),
        (["CMD echo hi"], "cmd", ("/bin/sh", "-c", "echo hi")),
        (["CMD [not json"], "cmd", ("/bin/sh", "-c", "[not json")),
        (['ENTRYPOINT ["/bin/app"]'], "cmd", None),
        (['CMD ["x"]', 'ENTRYPOINT ["/bin/app"]'], "cmd", ("x",)),
        (['ENTRYPOINT ["/bin/app"]'], "entrypoint", ("/bin/app",)),
        (["ENV A=1 B=\"two words\""], "env", ("PATH=/bin", "A=1", "B=two words")),
        (["ENV PATH=/usr/bin"], "env", ("PATH=/usr/bin",)),
        (["ENV X hello world"], "env", ("PATH=/bin", "X=hello world")),
        (["EXPOSE 80 53/udp 8000-8001"], "exposed_ports", ("53/udp", "80/tcp", "8000/tcp", "8001/tcp")),
        (["LABEL a=b \"c d\"=e"], "labels", {"a": "b", "c d": "e"}),
        (["USER nobody:nogroup"], "user", "nobody:nogroup"),
        (['VOLUME ["/data", "/logs"]'], "volumes", ("/data", "/logs")),
        (["VOLUME /a /b"], "volumes", ("/a", "/b")),
        (["WORKDIR /srv", "WORKDIR app"], "working_dir", "/srv/app"),
        (["STOPSIGNAL SIGINT"], "stop_signal", "SIGINT"),
        (["ONBUILD RUN echo hi"], "on_build", ("RUN echo hi",)),
        (["cmd [\"lower\"]"], "cmd", ("lower",)),
        (["ENV D=$PATH/x E=${D}y"], "env", ("PATH=/bin", "D=/bin/x", "E=/bin/xy")),
        (["LABEL 'q'='it''s'"], "labels", {"q": "its"}),
        (["WORKDIR $PATH"], "working_dir", "/bin"),
        (["CMD"], "cmd", ()),
    ],
)
def test_apply(changes, field, expected):
    assert getattr(apply_changes(BASE, changes), field) == expected


@pytest.mark.parametrize(
    "change, message",
    [
        ("RUN echo hi", "not a valid change instruction"),
        ("FROM busybox", "not a valid change instruction"),
        ("EXPOSE 70000", "out of range"),
        ("EXPOSE 80/xyz", "invalid protocol"),
        ("EXPOSE abc", "invalid port"),
        ("ENV", "needs an argument"),
        ("ENV ONLYKEY", "ENV must have two arguments"),
        ("LABEL a=b =c", "empty key"),
        ("ENV A=${B:?is required}", "is required"),
        ("USER", "needs an argument"),
        ("ONBUILD", "needs an instruction"),
        ("ONBUILD FROM x", "not allowed"),
        ("", "not a valid change instruction"),
    ],
)
def test_errors(change, message):
    with pytest.raises(ImageError, match=message):
        apply_changes(BASE, [change])

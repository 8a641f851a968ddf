"""FROM an image: find it in the store, pull it when the reference names a registry (or when
--pull asks), refuse other platforms, and turn its ONBUILD triggers into instructions."""

from __future__ import annotations

import dataclasses

from pybuild.builder.instructions import Command, From, Maintainer, Onbuild
from pybuild.errors import DockerfileError, ImageError, PybuildError
from pybuild.image import reference as refs


def host_platform() -> str:
    from pybuild.builder.graph import platform_args

    return platform_args()["TARGETPLATFORM"]


def check_platform(wanted: str | None, where: str = "--platform") -> None:
    """Only the host's platform can be built (no emulation): a clear error otherwise."""
    if not wanted:
        return
    host = host_platform()
    normal = wanted.strip().lower()
    if normal in (host, host.split("/", 1)[1], "local") or normal == host + "/v1":
        return
    raise PybuildError(
        f"{where} {wanted}: pybuild builds only for this host's platform ({host}); "
        "cross-platform builds need emulation, which pybuild does not provide"
    )


def names_registry(text: str) -> bool:
    """`127.0.0.1:5000/app`, `registry.example/app`, `localhost/app`: a registry is named."""
    try:
        return bool(refs.parse(text).domain)
    except ImageError:
        return False


def resolve_image(images, text: str, pull: bool, events=None) -> tuple[str, bool]:
    """A FROM / COPY --from image reference -> (image id, pulled now). `events` gets the
    registry's progress events of a pull."""
    if pull:
        return _pull(images, text, events), True
    try:
        return images.resolve(text), False
    except ImageError:
        if not names_registry(text):
            name = refs.parse_normalized(text).with_default_tag().familiar
            hint = ""
            if name.split(":", 1)[0] == "busybox":
                ref = "" if name == "busybox:latest" else f" {name}"
                hint = f', or "pyrun bootstrap busybox{ref}" for an offline busybox'

            raise ImageError(
                f"no such image in the store; get it with \"pyrun pull {name}\"{hint} "
                "(pybuild pulls by itself only references that name a registry, such as "
                "127.0.0.1:5000/app)", ref=text) from None
    return _pull(images, text, events), True


def _pull(images, text: str, events) -> str:
    from pybuild.registry import pull
    from pybuild.registry.endpoints import make_options

    # insecure registries come from the environment, as for `pyrun pull`
    return pull(images.store, text, make_options(), events=events).image_id


def onbuild_triggers(expressions, from_: From, path: str) -> tuple[Command, ...]:
    """An image's ONBUILD expressions -> typed instructions located at the FROM line."""
    if not expressions:
        return ()  # the usual case: no parser to load
    from pybuild.builder.convert import convert
    from pybuild.grammar import parse

    out: list[Command] = []
    for expr in expressions:
        try:
            tree = parse(expr.encode(), path=path)
        except PybuildError as e:
            raise DockerfileError(f"invalid ONBUILD trigger {expr!r} in the base image: {e}",
                                  path=path, line=from_.line) from None
        for node in tree.instructions:
            command = convert(node, path)
            if isinstance(command, From | Onbuild | Maintainer):
                raise DockerfileError(
                    f"{command.keyword} isn't allowed as an ONBUILD trigger", path=path,
                    line=from_.line)
            out.append(dataclasses.replace(command, original=expr, line=from_.line,
                                           end_line=from_.line))
    return tuple(out)

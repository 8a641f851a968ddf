"""Where Docker applies variable expansion: which instructions, and which of their flags.

The Dockerfile reference ("Environment replacement") lists ADD, COPY, ENV, EXPOSE, FROM,
LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, and ONBUILD combined with one of these; BuildKit
also expands ARG names and defaults. ONBUILD is not expanded when declared: its inner
instruction is expanded at trigger time by that instruction's own rule, so callers ask
`expands(inner.keyword)` then. RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER
arguments go to the shell (or exec) untouched.
"""

from __future__ import annotations

__all__ = ["EXPANDED_ARGUMENTS", "EXPANDED_FLAGS", "expanded_flags", "expands", "expands_flags"]

EXPANDED_ARGUMENTS = frozenset(
    {
        "add",
        "arg",
        "copy",
        "env",
        "expose",
        "from",
        "label",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    }
)
# Flag values that are expanded, per instruction (BuildKit's instructions/dockerfile2llb:
# FROM --platform with the global ARGs, RUN --mount options, COPY/ADD ownership, mode,
# checksum, excludes and COPY --from). RUN --network/--security are listed too: their
# values are plain words, so expanding them only matters if someone writes a `$`.
# HEALTHCHECK's durations and boolean flags (--link, --parents, --keep-git-dir) are not.
EXPANDED_FLAGS: dict[str, frozenset[str]] = {
    "from": frozenset({"platform"}),
    "run": frozenset({"mount", "network", "security"}),
    "copy": frozenset({"from", "chown", "chmod", "exclude"}),
    "add": frozenset({"chown", "chmod", "checksum", "exclude"}),
}


def expands(keyword: str) -> bool:
    """Whether an instruction's arguments undergo variable expansion."""
    return keyword.lower() in EXPANDED_ARGUMENTS


def expands_flags(keyword: str) -> bool:
    """Whether any of an instruction's flag values (`--chown=$UID`) are expanded."""
    return keyword.lower() in EXPANDED_FLAGS


def expanded_flags(keyword: str) -> frozenset[str]:
    """The names (without `--`) of an instruction's flags whose values are expanded."""
    return EXPANDED_FLAGS.get(keyword.lower(), frozenset())

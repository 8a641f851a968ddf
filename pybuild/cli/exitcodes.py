"""Docker's CLI exit status for an engine (daemon) error: 125 for `run` and `create`, whose
own failures must not be mistaken for the container's exit code; 1 for every other
container verb (`docker rename` to a taken name, `docker stop nosuch`, a bad `ps` filter).
Flag errors stay 125 (click's usage errors never reach here); 126/127 stay as they are."""

from __future__ import annotations

# verbs whose engine errors exit 1; the image, registry and build verbs keep their own rules
_CONTAINER_VERBS = frozenset((
    "start", "stop", "restart", "kill", "rm", "wait", "rename", "port", "ps", "logs",
    "attach", "inspect", "exec", "top", "stats", "pause", "unpause", "commit", "cp", "diff",
    "export", "network", "volume", "container",
))
_KEEP_125 = frozenset(("run", "create"))
_GLOBAL_WITH_VALUE = frozenset(("--root",))


def verb_words(args: list[str]) -> list[str]:
    """The verb and, for a group (`container ls`), its sub-verb: the first two words of the
    command line that are not pyrun's own options."""
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
            if len(words) == 2 or words[0] != "container":
                break
    return words


def engine_error_exit_code(args: list[str], code: int) -> int:
    if code != 125:
        return code
    words = verb_words(args)
    if not words or words[0] not in _CONTAINER_VERBS:
        return code
    if words[0] == "container" and (len(words) < 2 or words[1] in _KEEP_125):
        return code
    return 1

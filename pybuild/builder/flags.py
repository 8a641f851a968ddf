"""Instruction flags (`--from=build`, `--link`) checked against each instruction's own flag
set, with BuildKit's messages; plus the small Go-compatible value parsers the checks need
(durations, int32, "did you mean").

Mirrors moby/buildkit frontend/dockerfile/instructions/bflag.go: a flag is `--name=value`,
a boolean may also be a bare `--name`, only repeatable flags (`--mount`, `--exclude`) may
appear twice, and names are case-sensitive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

BOOL = "bool"
STRING = "string"
STRINGS = "strings"  # repeatable: every value is kept, in order

FlagValue = bool | str | tuple[str, ...]


class InstructionError(Exception):
    """A problem with one instruction. The converter adds the file and line (DockerfileError)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def suggest(value: str, options: Iterable[str], case_sensitive: bool = True) -> str | None:
    """The closest option within edit distance 2 (BuildKit util/suggest), or None.

    An exact match suggests nothing: the caller's problem lies elsewhere."""
    if not value:
        return None
    probe = value if case_sensitive else value.lower()
    best, score = None, 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == probe:
            return None
        distance = levenshtein(probe, candidate)
        if distance < score:
            best, score = option, distance
    return best


def with_suggestion(
    message: str, value: str, options: Iterable[str], case_sensitive: bool = True
) -> str:
    match = suggest(value, options, case_sensitive)
    return f"{message} (did you mean {match}?)" if match else message


def parse_flags(raw: Sequence[str], spec: Mapping[str, str]) -> dict[str, FlagValue]:
    """Check raw flag words against `spec` (name -> BOOL | STRING | STRINGS).

    Returns the flags that were given: bool for BOOL, str for STRING, a tuple for STRINGS."""
    values: dict[str, FlagValue] = {}
    for word in raw:
        if word == "--":  # end of flags (the parser normally drops it already)
            break
        if not word.startswith("--"):
            raise InstructionError(f"arg should start with -- : {word}")
        flag_name, has_value, value = word.partition("=")
        name = flag_name[2:]
        kind = spec.get(name)
        if kind is None:
            raise InstructionError(with_suggestion(f"unknown flag: {flag_name}", name, spec.keys()))
        if name in values and kind != STRINGS:
            raise InstructionError(f"duplicate flag specified: {flag_name}")
        if kind == BOOL:
            if has_value and value == "":
                raise InstructionError(f"missing a value on flag: {flag_name}")
            lowered = value.lower()
            if lowered not in ("", "true", "false"):
                raise InstructionError(
                    f"expecting boolean value for flag {flag_name}, not: {value}"
                )
            values[name] = lowered != "false"
        elif not has_value:
            raise InstructionError(f"missing a value on flag: {flag_name}")
        elif kind == STRING:
            values[name] = value
        else:
            previous = values.get(name, ())
            assert isinstance(previous, tuple)
            values[name] = (*previous, value)
    return values


def go_quote(text: str) -> str:
    """Go's %q for the ASCII cases our messages meet."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds: "1m30s", "1.5h", "300ms", "0"."""
    original = text
    invalid = InstructionError(f"time: invalid duration {go_quote(original)}")
    sign = 1
    if text[:1] in ("-", "+"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise invalid
    total = 0
    while text:
        match = _DURATION_PART.match(text)
        assert match is not None  # the pattern accepts the empty string
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise invalid
        if not unit:
            raise InstructionError(f"time: missing unit in duration {go_quote(original)}")
        factor = _DURATION_UNITS.get(unit)
        if factor is None:
            raise InstructionError(
                f"time: unknown unit {go_quote(unit)} in duration {go_quote(original)}"
            )
        value = int(whole or "0") * factor
        if fraction:
            value += int(fraction) * factor // 10 ** len(fraction)
        total += value
        text = text[match.end() :]
    if total > 2**63 - 1:
        raise invalid
    return sign * total


def format_go_duration(ns: int) -> str:
    """Go's Duration.String(): 1m30s, 1.5s, 300ms, 0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim_fraction(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _trim_fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _trim_fraction(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = str(fraction).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def parse_go_int32(text: str) -> int:
    """Go's strconv.ParseInt(text, 10, 32) with its error messages."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise InstructionError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise InstructionError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value

"""A container's logging driver and its options (`--log-driver`, `--log-opt`): json-file
with Docker's rotation options (max-size, max-file, compress) and entry attributes (labels,
env, their -regex forms, tag), or none, validated with the messages Docker's CLI and
daemon give."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pybuild.errors import ContainerError

DRIVERS = ("json-file", "none")
# json-file's options (moby daemon/logger/jsonfilelog ValidateLogOpt) and the generic ones
_JSON_FILE_KEYS = ("max-file", "max-size", "compress", "labels", "labels-regex", "env",
                   "env-regex", "tag")
_SUPPORTED = ("max-file", "max-size", "compress", "mode", "labels", "labels-regex", "env",
              "env-regex", "tag")
# the fields a tag template may name (moby daemon/logger Info's methods)
_TAG_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_TAG_FIELDS = ("ID", "FullID", "Name", "ImageID", "ImageFullID", "ImageName", "Hostname",
               "Command")
# go-units FromHumanSize: decimal multiples, whatever the "i"
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_size(text: str) -> int:
    """go-units FromHumanSize: "10m" = 10,000,000 bytes, "1.5k", "100", "2MB"."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _DECIMAL[(m.group(2) or "").lower()])


@dataclass(frozen=True)
class LogConfig:
    driver: str = "json-file"
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return self.driver == "json-file"

    @property
    def max_size(self) -> int:
        """Bytes after which the log is rotated; -1: never."""
        text = self.options.get("max-size")
        return parse_size(text) if text is not None else -1

    @property
    def max_files(self) -> int:
        text = self.options.get("max-file")
        return int(text) if text is not None else 1

    @property
    def compress(self) -> bool:
        return self.options.get("compress", "false") in _TRUE

    def to_json(self) -> dict:
        return {"Type": self.driver, "Config": dict(self.options)}

    @classmethod
    def from_json(cls, data: Mapping | None) -> LogConfig:
        if not data:
            return cls()
        return cls(data.get("Type") or "json-file", dict(data.get("Config") or {}))

    @classmethod
    def parse(cls, driver: str | None, opts: Sequence[str]) -> LogConfig:
        """`--log-driver` and the `--log-opt KEY=VALUE` values, checked as Docker checks
        them at create (CLI, ValidateLogOpts) and when it starts the logger."""
        driver = driver or "json-file"
        options = {}
        for item in opts:
            key, _, value = item.partition("=")
            options[key] = value
        if driver == "none":
            if opts:
                raise ContainerError("invalid logging opts for driver none")
            return cls("none", {})
        if driver not in DRIVERS:
            raise ContainerError(f"logger: no log driver named '{driver}' is registered")
        mode = options.get("mode", "")
        if mode not in ("", "blocking", "non-blocking"):
            raise ContainerError(f"logger: logging mode not supported: {mode}")
        for key in options:
            if key in ("mode", "max-buffer-size"):
                continue
            if key not in _JSON_FILE_KEYS:
                raise ContainerError(f"unknown log opt '{key}' for json-file log driver")
        unsupported = [k for k in options if k not in _SUPPORTED]
        if mode == "non-blocking":
            unsupported.insert(0, "mode=non-blocking")
        if unsupported:  # refused rather than accepted and ignored
            raise ContainerError(f"log opt '{unsupported[0]}' is not supported by pyrun's "
                                 "json-file driver (supported: max-size, max-file, compress, "
                                 "labels, labels-regex, env, env-regex, tag, mode=blocking)")
        config = cls(driver, options)
        config._check_values()
        return config

    def attrs(self, *, labels: Mapping[str, str], env: Sequence[str],
              info: Mapping[str, str]) -> dict[str, str]:
        """Every entry's "attrs" (moby logger.Info.ExtraAttributes and the tag): the
        container's labels and env variables the options name or match, and the tag
        template rendered with `info` (ID, FullID, Name, ImageID, ...)."""
        out: dict[str, str] = {}
        env_map = dict(e.partition("=")[::2] for e in env)
        for source, names_key, regex_key in ((labels, "labels", "labels-regex"),
                                             (env_map, "env", "env-regex")):
            for key in filter(None, self.options.get(names_key, "").split(",")):
                if key in source:
                    out[key] = source[key]
            pattern = self.options.get(regex_key)
            if pattern:
                out.update({k: v for k, v in source.items() if re.search(pattern, k)})
        if self.options.get("tag"):
            out["tag"] = _TAG_FIELD.sub(lambda m: info.get(m.group(1), ""), self.options["tag"])
        return out

    def _check_values(self) -> None:
        """moby jsonfilelog.New's checks."""
        prefix = "failed to initialize logging driver: "
        for key in ("labels-regex", "env-regex"):
            if key in self.options:
                try:
                    re.compile(self.options[key])
                except re.error as e:
                    raise ContainerError(f"{prefix}error parsing {key}: {e}") from None
        for field_name in _TAG_FIELD.findall(self.options.get("tag", "")):
            if field_name not in _TAG_FIELDS:
                raise ContainerError(f'{prefix}template: log-tag: executing "log-tag" at '
                                     f"<.{field_name}>: can't evaluate field {field_name} "
                                     "in type *logger.Info")
        try:
            size = self.max_size
        except ValueError as e:
            raise ContainerError(prefix + str(e)) from None
        if "max-size" in self.options and size <= 0:
            raise ContainerError(prefix + "max-size must be a positive number")
        text = self.options.get("max-file")
        if text is not None:
            if not re.fullmatch(r"[+-]?\d+", text):
                raise ContainerError(prefix + f'strconv.Atoi: parsing "{text}": invalid syntax')
            if int(text) < 1:
                raise ContainerError(prefix + "max-file cannot be less than 1")
        text = self.options.get("compress")
        if text is not None:
            if text not in _TRUE + _FALSE:
                raise ContainerError(prefix + f'strconv.ParseBool: parsing "{text}": '
                                     "invalid syntax")
            if self.compress and (self.max_files == 1 or size == -1):
                raise ContainerError(prefix + "compress cannot be true when max-file is less "
                                     "than 2 or max-size is not set")

"""Docker's restart policies (--restart no|on-failure[:N]|always|unless-stopped) and the
restart manager's back-off, for a container's supervisor."""

from __future__ import annotations

from dataclasses import dataclass

from pybuild.errors import ContainerError

_BACKOFF_START, _BACKOFF_MAX, _BACKOFF_RESET_AFTER = 0.1, 60.0, 10.0


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"          # no | on-failure | always | unless-stopped
    max_retries: int = 0      # on-failure:N (0: no limit)

    @classmethod
    def parse(cls, text: str | None) -> RestartPolicy:
        """Docker's --restart syntax; errors read as Docker's."""
        if not text:
            return cls()
        name, _, count = text.partition(":")
        if name not in ("no", "on-failure", "always", "unless-stopped"):
            raise ContainerError(f"invalid restart policy '{text}'")
        if count and name != "on-failure":
            raise ContainerError(f"invalid restart policy: maximum retry count can only be "
                                 f"used with 'on-failure' ('{text}')")
        try:
            retries = int(count) if count else 0
        except ValueError:
            raise ContainerError(f"invalid restart policy: maximum retry count must be an "
                                 f"integer ('{text}')") from None
        if retries < 0:
            raise ContainerError("invalid restart policy: maximum retry count cannot be negative")
        return cls(name, retries)

    def to_json(self) -> dict:
        return {"Name": "" if self.name == "no" else self.name,
                "MaximumRetryCount": self.max_retries}

    @classmethod
    def from_json(cls, data: dict | None) -> RestartPolicy:
        data = data or {}
        return cls(data.get("Name") or "no", int(data.get("MaximumRetryCount") or 0))

    def should_restart(self, exit_code: int, restart_count: int, stopped_by_user: bool) -> bool:
        """moby restartmanager.ShouldRestart, less the daemon-restart case."""
        if stopped_by_user or self.name == "no":
            return False
        if self.name in ("always", "unless-stopped"):
            return True
        if exit_code == 0:
            return False
        return self.max_retries == 0 or restart_count < self.max_retries


def next_backoff(previous: float, ran_for: float) -> float:
    """100 ms, doubled each restart up to a minute; reset after a run of 10 s or more."""
    if ran_for >= _BACKOFF_RESET_AFTER or previous <= 0:
        return _BACKOFF_START
    return min(previous * 2, _BACKOFF_MAX)

"""The `[updates]` table: which updater the agent drives, and when.

```toml
[updates]
updater = "update_engine"      # "none" (default), "update_engine" or "command"
enabled = true                 # false: no update is asked for on this node
interval = "1h"                # between two attempts (default 1h) ...
jitter = "10%"                 # ... ± this share of it (default 10 %), or a fraction: 0.1
timeout = "1h"                 # how long one attempt may take
command = ["apt-get", "-y", "upgrade"]   # for updater = "command"

[[updates.window]]             # optional: attempts start only inside these windows
days = ["Mon", "Tue", "Wed", "Thu", "Fri"]
start = "09:00"
length = "8h"
time_zone = "Europe/Berlin"
```

Rules (model.py's): unknown keys are errors, every field says what is allowed, values are
checked with core's parsers. A requirement that spans keys ("command" needs `command`) is
checked when the agent is built, not here: config.d fragments are validated one by one and
may set the two keys in different files.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from stagger.config.agent_sections import Argv, Duration
from stagger.config.section import Section
from stagger.config.window_section import WindowConfig
from stagger.core.durations import parse_duration
from stagger.core.errors import InvalidInput
from stagger.core.schedule import Schedule
from stagger.core.updates import (
    DEFAULT_UPDATER,
    MAX_JITTER,
    UPDATER_NAMES,
    UpdatePolicy,
)

# The agent's local control socket ([agent] control_socket; stagger/agent/control.py).
DEFAULT_CONTROL_SOCKET = "/run/stagger/control.sock"


def parse_jitter(value: Any) -> float:
    """'10%', '10 %', 0.1 or 0 → a fraction of the interval, at most MAX_JITTER."""
    if isinstance(value, bool):
        raise InvalidInput(f"jitter must be a share like '10%' or 0.1, not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise InvalidInput(
                f"jitter {value!r} is not a share: write it like '10%' or 0.1"
            ) from None
    elif isinstance(value, int | float):
        fraction = float(value)
    else:
        raise InvalidInput(f"jitter must be a share like '10%' or 0.1, not {value!r}")
    if not 0.0 <= fraction <= MAX_JITTER:
        raise InvalidInput(
            f"jitter {value!r} is out of range: from 0 to {MAX_JITTER:.0%} of the interval"
        )
    return fraction


class UpdatesConfig(Section):
    updater: str = Field(
        DEFAULT_UPDATER,
        description=f"which updater the agent drives: one of {UPDATER_NAMES}; 'none' leaves "
        "updates to the host's own timer",
    )
    enabled: bool = Field(
        True, description="false: stagger asks for no update on this node (reboots go on)"
    )
    interval: Duration = Field("1h", description="the time between two attempts, like '1h'")
    jitter: float = Field(
        0.10,
        description=f"how far each interval may move, as a share: '10%' or 0.1, at most "
        f"{MAX_JITTER:.0%}",
    )
    timeout: Duration = Field("1h", description="how long one attempt may take, like '1h'")
    command: Argv | None = Field(
        None,
        description="for updater = 'command': the command as a list, like "
        "['apt-get', '-y', 'upgrade']; exit 0 means it worked",
    )
    window: list[WindowConfig] = Field(
        default_factory=list,
        description="an array of tables: [[updates.window]] with days, start, length, "
        "time_zone; none means any time",
    )

    @field_validator("updater", mode="before")
    @classmethod
    def _updater(cls, value: Any) -> str:
        if value not in UPDATER_NAMES:
            raise InvalidInput(f"updater {value!r} is not known: use one of {UPDATER_NAMES}")
        return str(value)

    @field_validator("jitter", mode="before")
    @classmethod
    def _jitter(cls, value: Any) -> float:
        return parse_jitter(value)

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, value: str) -> str:
        if parse_duration(value).total_seconds() <= 0:
            raise InvalidInput(f"{value!r} must be longer than 0 s")
        return value

    def policy(self, default_zone: str) -> UpdatePolicy:
        """The table as core's UpdatePolicy; windows that name no zone use `default_zone`."""
        return UpdatePolicy(
            updater=self.updater,
            enabled=self.enabled,
            interval=parse_duration(self.interval),
            jitter=self.jitter,
            windows=Schedule(tuple(w.to_window(default_zone) for w in self.window)),
        )

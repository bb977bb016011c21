"""The configuration operators write, as one validated model.

Rules of this file:
- `extra="forbid"` everywhere: an unknown key is an error, never silently ignored (Zincati
  ignores them, and a misspelt window then does nothing).
- Every field has a `description` saying what is allowed; error messages quote it.
- Values are checked with the same parsers core uses (durations, days, zones, groups), so a
  value that passes here never fails later.
- Later issues add their sections ([hooks], [detectors.*], [server], [updates], [[notify]]) and
  [agent] keys as new fields here; the loader, error messages and `config show` need no change.
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from stagger.backends.factory import DEFAULT_BACKEND_URL, SCHEMES
from stagger.config.agent_sections import (
    DEFAULT_BOOT_ID_PATH,
    DEFAULT_DETECTORS,
    DEFAULT_REBOOTER,
    DEFAULT_STATE_PATH,
    DETECTOR_NAMES,
    REBOOTER_NAMES,
    DetectorsConfig,
    HooksConfig,
    RebootConfig,
    check_agent_detectors,
    check_path,
    check_rebooter,
)
from stagger.config.cycle_section import CycleConfig
from stagger.config.notify_section import NotifyConfig
from stagger.config.section import Section
from stagger.config.server_section import ServerConfig
from stagger.config.updates_section import DEFAULT_CONTROL_SOCKET, UpdatesConfig
from stagger.core.errors import InvalidInput
from stagger.core.schedule import (
    ALLOWED_DAYS,
    ALLOWED_MONTHLY,
    Blackout,
    Schedule,
    Window,
    parse_days,
    parse_instant,
    parse_length,
    parse_monthly,
    parse_offset_days,
    parse_start,
    parse_zone,
)
from stagger.core.secrets import mask_url
from stagger.core.semaphore import DEFAULT_GROUP, validate_group, validate_node_id
from stagger.core.strategy import ALLOWED_STRATEGIES, DEFAULT_STRATEGY, Strategy, parse_strategy


def _need_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__} {value!r}")
    return value


class AgentConfig(Section):
    id: str | None = Field(
        None,
        description="this node's id, 1 to 256 printable characters; "
        "default derived from /etc/machine-id",
    )
    group: str = Field(
        DEFAULT_GROUP,
        description="the reboot group: letters, digits, '.' and '-' (for example 'web')",
    )
    strategy: Strategy = Field(DEFAULT_STRATEGY, description=f"one of {ALLOWED_STRATEGIES}")
    backend: str = Field(DEFAULT_BACKEND_URL, description=f"a backend URL: {SCHEMES}")
    detectors: list[str] = Field(
        list(DEFAULT_DETECTORS),
        description=f"the detectors in use, names from {DETECTOR_NAMES}; a reboot is needed "
        "when any says so ('manual', for `stagger need-reboot`, is always on)",
    )
    rebooter: str = Field(DEFAULT_REBOOTER, description=f"how to reboot: one of {REBOOTER_NAMES}")
    state_path: str = Field(
        DEFAULT_STATE_PATH, description="the agent's state file (an absolute path)"
    )
    boot_id_path: str = Field(
        DEFAULT_BOOT_ID_PATH, description="where the current boot id is read (an absolute path)"
    )
    control_socket: str = Field(
        DEFAULT_CONTROL_SOCKET,
        description="the agent's local control socket, used by `stagger update-now` "
        "(an absolute path)",
    )

    @property
    def backend_configured(self) -> bool:
        """Whether a file wrote `backend` (the default is a SQLite file on the host itself,
        which coordinates with no one)."""
        return "backend" in self.model_fields_set

    def backend_url(self, root: Path | None) -> str:
        """The backend URL. Like every path left at its default, the default SQLite file goes
        under `root` (tests, images, containers)."""
        if self.backend_configured or root is None:
            return self.backend
        path = Path(DEFAULT_BACKEND_URL.removeprefix("sqlite://"))
        return f"sqlite://{root / path.relative_to(path.anchor)}"

    @field_validator("detectors", mode="before")
    @classmethod
    def _detectors(cls, value: Any) -> list[str]:
        return check_agent_detectors(value)

    @field_validator("rebooter", mode="before")
    @classmethod
    def _rebooter(cls, value: Any) -> str:
        return check_rebooter(value)

    @field_validator("state_path", "boot_id_path", "control_socket", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> str:
        return check_path(value, "path")

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> str | None:
        return None if value is None else validate_node_id(_need_str(value, "id"))

    @field_validator("group", mode="before")
    @classmethod
    def _group(cls, value: Any) -> str:
        return validate_group(_need_str(value, "group"))

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> Strategy:
        return parse_strategy(_need_str(value, "strategy"))

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> str:
        url = _need_str(value, "backend").strip()
        if "://" not in url:
            raise InvalidInput(f"backend {mask_url(url)!r} is not a URL: use one of {SCHEMES}")
        return url


class WindowConfig(Section):
    days: list[str] | None = Field(
        None,
        description=f"a weekly window's days, a list or one: {ALLOWED_DAYS} "
        "(for example ['Mon', 'Thu']); give days or monthly",
    )
    monthly: str | None = Field(
        None,
        description=f"a monthly window's day: {ALLOWED_MONTHLY}; give days or monthly",
    )
    offset: str | None = Field(
        None,
        description="with monthly: whole days after (or, negative, before) that day, like "
        "'2d' (Patch Tuesday + 2d is the Thursday after it); may move into the next month",
    )
    start: str = Field(description="the wall-clock start in the window's zone, HH:MM")
    length: str = Field(
        description="how long it stays open: more than 0, at most 7 days, "
        "like '90m', '1h30m' or '2h'"
    )
    time_zone: str | None = Field(
        None, description="an IANA time zone such as 'Asia/Tokyo' or 'UTC'; default the host's"
    )

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise InvalidInput(
                f"days must be a list of day names like ['Mon', 'Thu'] or one name like "
                f"'daily', not {value!r}"
            )
        parse_days(items)
        return items

    @field_validator("monthly", mode="before")
    @classmethod
    def _monthly(cls, value: Any) -> str | None:
        if value is None:
            return None
        parse_monthly(_need_str(value, "monthly"))
        return str(value)

    @field_validator("offset", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> str | None:
        if value is None:
            return None
        parse_offset_days(_need_str(value, "offset"))
        return str(value)

    @model_validator(mode="after")
    def _weekly_or_monthly(self) -> WindowConfig:
        if (self.days is None) == (self.monthly is None):
            raise InvalidInput(
                "a window needs days (weekly, like days = ['Mon', 'Thu']) or monthly "
                "(like monthly = '2nd tue'), and not both"
            )
        if self.offset is not None and self.monthly is None:
            raise InvalidInput("offset is for monthly windows: add monthly = '2nd tue' or drop it")
        if self.monthly is not None:
            parse_monthly(self.monthly, self.offset)
        return self

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> str:
        if isinstance(value, time):  # TOML's own local time: start = 04:00:00
            value = f"{value:%H:%M}"
        parse_start(_need_str(value, "start"))
        return str(value)

    @field_validator("length", mode="before")
    @classmethod
    def _length(cls, value: Any) -> str:
        parse_length(_need_str(value, "length"))
        return str(value)

    @field_validator("time_zone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> str | None:
        if value is None:
            return None
        parse_zone(_need_str(value, "time_zone"))
        return str(value)

    def to_window(self, default_zone: str) -> Window:
        zone = self.time_zone or default_zone
        if self.monthly is not None:
            return Window.parse_monthly(self.monthly, self.start, self.length, zone, self.offset)
        return Window.parse(self.days or [], self.start, self.length, zone)


class BlackoutConfig(Section):
    start: datetime = Field(
        description="an RFC 3339 time with a UTC offset, like '2026-12-24T00:00:00+09:00'"
    )
    end: datetime = Field(description="an RFC 3339 time with a UTC offset, later than start")
    reason: str = Field("", description="why, shown to operators (for example 'year-end freeze')")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _instant(cls, value: Any) -> datetime:
        if isinstance(value, datetime):  # TOML's own offset date-time, unquoted
            if value.tzinfo is None:
                raise InvalidInput(
                    f"{value.isoformat()} has no UTC offset: add one, like "
                    "2026-12-24T00:00:00+09:00"
                )
            return value
        if not isinstance(value, str):
            raise InvalidInput(
                f"{value!r} is not a time: write an RFC 3339 time with a UTC offset, "
                "like '2026-12-24T00:00:00+09:00'"
            )
        return parse_instant(value)

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, value: Any) -> str:
        return _need_str(value, "reason")

    @model_validator(mode="after")
    def _ordered(self) -> BlackoutConfig:
        Blackout(self.start, self.end, self.reason)  # raises when end <= start
        return self

    def to_blackout(self) -> Blackout:
        return Blackout(self.start, self.end, self.reason)


# [updates] holds [[updates.window]] tables of the WindowConfig above (updates_section.py).
UpdatesConfig.model_rebuild(_types_namespace={"WindowConfig": WindowConfig})


class StaggerConfig(Section):
    agent: AgentConfig = Field(
        default_factory=lambda: AgentConfig.model_validate({}),
        description="a table: [agent] with id, group, strategy, backend",
    )
    window: list[WindowConfig] = Field(
        default_factory=list,
        description="an array of tables: [[window]] with days, start, length, time_zone",
    )
    blackout: list[BlackoutConfig] = Field(
        default_factory=list, description="an array of tables: [[blackout]] with start, end, reason"
    )
    detectors: DetectorsConfig = Field(
        default_factory=lambda: DetectorsConfig.model_validate({}),
        description="tables: [detectors.file], [detectors.command], [detectors.needs-restarting], "
        "[detectors.rpm-ostree], [detectors.update_engine], [detectors.manual]",
    )
    hooks: HooksConfig = Field(
        default_factory=lambda: HooksConfig.model_validate({}),
        description="a table: [hooks] with pre-reboot hooks, blockers and health checks",
    )
    reboot: RebootConfig = Field(
        default_factory=lambda: RebootConfig.model_validate({}),
        description="a table: [reboot] with command, warn_users, delay, simulated_record",
    )
    cycle: CycleConfig = Field(
        default_factory=lambda: CycleConfig.model_validate({}),
        description="a table: [cycle] with heartbeat, retry, backoff, backoff_max, "
        "health_recheck, poll",
    )

    server: ServerConfig = Field(
        default_factory=lambda: ServerConfig.model_validate({}),
        description="a table: [server] with listen, backend, prefix, unknown_groups, "
        "default_max, token files, TLS files and [server.groups]",
    )
    notify: list[NotifyConfig] = Field(
        default_factory=list,
        description="an array of tables: [[notify]] with url, events, format, headers",
    )
    updates: UpdatesConfig = Field(
        default_factory=lambda: UpdatesConfig.model_validate({}),
        description="a table: [updates] with updater, enabled, interval, jitter, timeout, "
        "command and [[updates.window]]",
    )

    def schedule(self, default_zone: str) -> Schedule:
        """The schedule, with windows that name no zone placed in `default_zone` (the host's)."""
        return Schedule(
            tuple(w.to_window(default_zone) for w in self.window),
            tuple(b.to_blackout() for b in self.blackout),
        )

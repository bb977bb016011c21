"""The `[[window]]` and `[[blackout]]` tables: when reboots may start, and when they may not.
`[updates]` reuses the window table for `[[updates.window]]` (updates_section.py), so it lives
in a module of its own that both the model and that section import.

Rules (model.py's): unknown keys are errors, every field says what is allowed, values are
checked with core's parsers (core/windows.py), so a value that passes here never fails later.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from pydantic import Field, field_validator, model_validator

from stagger.config.section import Section, need_str
from stagger.core.errors import InvalidInput
from stagger.core.windows import (
    ALLOWED_DAYS,
    ALLOWED_MONTHLY,
    Blackout,
    Window,
    parse_days,
    parse_instant,
    parse_length,
    parse_monthly,
    parse_offset_days,
    parse_start,
    parse_zone,
)


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
        parse_monthly(need_str(value, "monthly"))
        return str(value)

    @field_validator("offset", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> str | None:
        if value is None:
            return None
        parse_offset_days(need_str(value, "offset"))
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
        parse_start(need_str(value, "start"))
        return str(value)

    @field_validator("length", mode="before")
    @classmethod
    def _length(cls, value: Any) -> str:
        parse_length(need_str(value, "length"))
        return str(value)

    @field_validator("time_zone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> str | None:
        if value is None:
            return None
        parse_zone(need_str(value, "time_zone"))
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
        return need_str(value, "reason")

    @model_validator(mode="after")
    def _ordered(self) -> BlackoutConfig:
        Blackout(self.start, self.end, self.reason)  # raises when end <= start
        return self

    def to_blackout(self) -> Blackout:
        return Blackout(self.start, self.end, self.reason)

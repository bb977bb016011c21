"""What an operator writes for a schedule, checked at the door: weekdays, a start time, a
length, a time zone, a monthly day, an instant; and the values built from them, `Window`
(weekly or monthly), `MonthlyDay` and `Blackout`. When these values are open is
core/schedule.py's question.

Rules of this file:
- Pure: no clock, no I/O; zoneinfo is used as data.
- A window is a wall-clock start ("Thu 04:00" in its IANA zone) and a length in elapsed time
  (more than 0, at most MAX_LENGTH), on some weekdays of every week, or on one day of every
  month ("2nd tue", "last sun", moved by a whole number of days: "2nd tue" + 2 days is the
  Thursday after Patch Tuesday).
- Every value that does not hold is refused with InvalidInput, one sentence that says what to
  write instead; a value that passes here never fails later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stagger.core.durations import format_duration, parse_duration
from stagger.core.errors import InvalidInput
from stagger.core.times import check_instant

MAX_LENGTH = timedelta(days=7)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_GROUPS: dict[str, frozenset[int]] = {
    "daily": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
}
ALLOWED_DAYS = "mon…sun, monday…sunday (any case), daily, weekdays or weekends"
_START_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
ORDINALS = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "last": -1}
ALLOWED_MONTHLY = "'<1st|2nd|3rd|4th|last> <mon…sun>', for example '2nd tue' or 'last sun'"
# A monthly window's offset moves its day by whole days; a few weeks either way is plenty to
# say "the Thursday after Patch Tuesday" and keeps every opening within about a month of its day.
MAX_OFFSET_DAYS = 27


# --- parsing the pieces an operator writes ----------------------------------------------------


def parse_day(text: str) -> frozenset[int]:
    """One day name (or group) → weekday numbers, Monday = 0."""
    key = text.strip().lower()
    if key in DAY_GROUPS:
        return DAY_GROUPS[key]
    for names in (DAY_NAMES, _FULL_NAMES):
        if key in names:
            return frozenset({names.index(key)})
    raise InvalidInput(f"day {text!r} is not a day: use {ALLOWED_DAYS}")


def parse_days(values: str | Iterable[str]) -> frozenset[int]:
    items = [values] if isinstance(values, str) else list(values)
    if not items:
        raise InvalidInput(f"days is empty: list at least one day ({ALLOWED_DAYS})")
    days: frozenset[int] = frozenset()
    for item in items:
        days |= parse_day(item)
    return days


def parse_start(text: str) -> time:
    m = _START_RE.match(text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise InvalidInput(
            f"start {text!r} is not a time of day: write it as HH:MM from 00:00 to 23:59 "
            "(for example '04:00')"
        )
    return time(int(m.group(1)), int(m.group(2)))


def parse_length(text: str) -> timedelta:
    length = parse_duration(text, what="length")
    if not timedelta(0) < length <= MAX_LENGTH:
        raise InvalidInput(
            f"length {text!r} is not allowed: give more than 0 and at most 7 days "
            "(for example '90m', '1h30m' or '2h')"
        )
    return length


@dataclass(frozen=True)
class MonthlyDay:
    """The `nth` (1..4, or -1 for the last) `weekday` (Monday = 0) of each month, moved by
    `offset` days (which may carry it into the next month, or back into the one before)."""

    nth: int
    weekday: int
    offset: int = 0

    def __post_init__(self) -> None:
        if self.nth not in ORDINALS.values() or self.weekday not in range(7):
            raise InvalidInput(f"monthly day is out of range: use {ALLOWED_MONTHLY}")
        if abs(self.offset) > MAX_OFFSET_DAYS:
            raise InvalidInput(
                f"offset {self.offset} days is too far: give at most {MAX_OFFSET_DAYS} days "
                "either way (for example '2d')"
            )

    def base_day(self, year: int, month: int) -> date:
        """The nth weekday of that month, before the offset."""
        if self.nth > 0:
            first = date(year, month, 1)
            return first + timedelta(days=(self.weekday - first.weekday()) % 7 + 7 * (self.nth - 1))
        following = date(year + month // 12, month % 12 + 1, 1)
        last = following - timedelta(days=1)
        return last - timedelta(days=(last.weekday() - self.weekday) % 7)

    def days_between(self, first_day: date, last_day: date) -> Iterator[date]:
        """Every day in [first_day, last_day] this rule names, in order (one per month)."""
        # The base day of the month that `first_day - offset` lies in, and of the month before
        # it, may land on or after first_day once moved.
        start = first_day - timedelta(days=self.offset)
        year, month = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
        while True:
            day = self.base_day(year, month) + timedelta(days=self.offset)
            if day > last_day:
                return
            if day >= first_day:
                yield day
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)

    def describe(self) -> str:
        ordinal = next(k for k, v in ORDINALS.items() if v == self.nth)
        text = f"{ordinal} {DAY_NAMES[self.weekday].capitalize()} of the month"
        if self.offset:
            text += f" {'+' if self.offset > 0 else '-'} {abs(self.offset)}d"
        return text


def parse_monthly(text: str, offset: str | None = None) -> MonthlyDay:
    """'2nd tue' (and an offset like '2d') → MonthlyDay."""
    parts = text.strip().lower().split()
    if len(parts) != 2 or parts[0] not in ORDINALS:
        raise InvalidInput(f"monthly {text!r} is not a day of the month: use {ALLOWED_MONTHLY}")
    days = parse_day(parts[1])
    if len(days) != 1:
        raise InvalidInput(
            f"monthly {text!r} names {len(days)} days: name one weekday ({ALLOWED_MONTHLY})"
        )
    return MonthlyDay(ORDINALS[parts[0]], next(iter(days)), parse_offset_days(offset))


def parse_offset_days(text: str | None) -> int:
    """A monthly window's offset: a whole number of days like '2d' or '-1d'."""
    if text is None or not text.strip():
        return 0
    raw = text.strip()
    sign = -1 if raw.startswith("-") else 1
    value = parse_duration(raw.lstrip("+-"), what="offset")
    if value % timedelta(days=1):
        raise InvalidInput(
            f"offset {text!r} is not a whole number of days: write it like '2d' or '-1d'"
        )
    return sign * (value // timedelta(days=1))


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            f"time zone {name!r} is not known: use an IANA name such as 'Europe/Berlin', "
            "'America/New_York' or 'UTC'"
        ) from None


def parse_instant(text: str, *, what: str = "time") -> datetime:
    """An RFC 3339 instant; the UTC offset is required (an instant means nothing without it)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise InvalidInput(
            f"{what} {text!r} is not an RFC 3339 time with a UTC offset: write it like "
            "'2026-12-24T00:00:00+09:00' or '2026-12-24T00:00:00Z'"
        )
    return check_instant(value, what)


def require_aware(now: datetime) -> None:
    """Refuse a naive datetime: an instant means nothing without its UTC offset."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput(f"time {now.isoformat()} has no UTC offset: give an aware datetime")


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A window from wall-clock `start` in `time_zone`, for `length`: on each of `days` every
    week, or, when `monthly` is given (and `days` is empty), on that one day of every month."""

    days: frozenset[int]
    start: time
    length: timedelta
    time_zone: str = "UTC"
    monthly: MonthlyDay | None = None

    def __post_init__(self) -> None:
        if self.monthly is not None:
            if self.days:
                raise InvalidInput("give days (a weekly window) or monthly, not both")
        elif not self.days or not self.days <= frozenset(range(7)):
            raise InvalidInput(f"days is empty or out of range: use {ALLOWED_DAYS}")
        if not timedelta(0) < self.length <= MAX_LENGTH:
            raise InvalidInput("length must be more than 0 and at most 7 days")
        parse_zone(self.time_zone)

    @classmethod
    def parse(
        cls, days: str | Iterable[str], start: str, length: str, time_zone: str = "UTC"
    ) -> Window:
        parse_zone(time_zone)
        return cls(parse_days(days), parse_start(start), parse_length(length), time_zone)

    @classmethod
    def parse_monthly(
        cls,
        monthly: str,
        start: str,
        length: str,
        time_zone: str = "UTC",
        offset: str | None = None,
    ) -> Window:
        parse_zone(time_zone)
        day = parse_monthly(monthly, offset)
        return cls(frozenset(), parse_start(start), parse_length(length), time_zone, day)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def days_text(self) -> str:
        if self.monthly is not None:
            return self.monthly.describe()
        for name, group in DAY_GROUPS.items():
            if self.days == group:
                return name
        return ",".join(DAY_NAMES[d].capitalize() for d in sorted(self.days))

    def describe(self) -> str:
        return (
            f"{self.days_text()} {self.start:%H:%M} for {format_duration(self.length)} "
            f"({self.time_zone})"
        )


@dataclass(frozen=True)
class Blackout:
    """An absolute range [start, end) in which no reboot may start, whatever the windows say."""

    start: datetime
    end: datetime
    reason: str = ""

    def __post_init__(self) -> None:
        require_aware(self.start)
        require_aware(self.end)
        if self.end <= self.start:
            raise InvalidInput(
                f"blackout {self.label()} ends ({self.end.isoformat()}) before it starts "
                f"({self.start.isoformat()}): end must be later than start"
            )

    def label(self) -> str:
        return repr(self.reason) if self.reason else "(no reason given)"

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end

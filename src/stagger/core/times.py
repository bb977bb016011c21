"""The instants stagger accepts and how it shows them to people.

Rules of this file (docs/configuration.md, "Times and durations"):
- An instant needs a UTC offset and must fall in [EARLIEST, LATEST) once in UTC. The range is
  far from the ends of Python's datetime (years 1 and 9999), so any instant stagger accepts
  plus or minus any duration it accepts (core.durations.MAX_DURATION) can still be computed,
  compared, shown in any time zone and stored; a time outside it is a typo or an attack, never
  a plan. Every boundary (API, CLI, config, node reports) checks it with `check_instant`.
- Readers never fail on a stored instant they cannot show (a value written before this rule,
  or by hand): `format_utc` shows it as invalid instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stagger.core.errors import InvalidInput

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
RANGE_TEXT = "from 1970-01-01T00:00:00Z up to (not including) 3000-01-01T00:00:00Z"


def check_instant(value: datetime, what: str = "time") -> datetime:
    """`value` itself when it is an aware instant in the accepted range; else InvalidInput
    naming `what` and the range."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} {value!r} is not a time: write RFC 3339 with a UTC offset")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{what} {value.isoformat()} has no UTC offset: add one, like "
            f"{value.isoformat()}Z (UTC) or {value.isoformat()}+01:00"
        )
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise InvalidInput(
            f"{what} {value.isoformat()} is out of range: stagger takes times {RANGE_TEXT}"
        )
    return value


def format_utc(value: datetime) -> str:
    """A time for people: UTC, to the second. A stored value that cannot be shown in UTC is
    shown as invalid, never raised: one bad value must not take a page or a command down."""
    try:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, ValueError):
        return f"invalid time ({value.isoformat()})"


def later(t: datetime, span: timedelta) -> datetime:
    """`t + span`, at most LATEST: a duration stored before the limits (or by hand) can make
    an expiry far away, never an OverflowError in every lock of its group."""
    try:
        return min(t + span, LATEST)
    except OverflowError:
        return LATEST

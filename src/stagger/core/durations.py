"""Durations as operators write them: "90s", "15m", "1h30m", "2h", "1d" (and Go's forms,
"1h30m0s", which locksmith's LOCKSMITHD_REBOOT_WINDOW_LENGTH uses). One parser for the CLI,
the config and the migration readers.

Every duration is at most MAX_DURATION (ten years): longer is a typo, and it keeps any accepted
time plus any accepted duration computable (core.times). A number far too large to be a
duration ("99999999999999999999d") is the same error, never an OverflowError."""

from __future__ import annotations

import re
from datetime import timedelta

from stagger.core.errors import InvalidInput

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_BARE = re.compile(r"\d+(?:\.\d+)?")
MAX_DURATION = timedelta(days=3650)
MAX_TEXT = "10 years (3650d)"
EXAMPLE = "write it like '90s', '15m', '1h30m' or '2h'"


def is_bare_number(text: str) -> bool:
    """ "30" without a unit: the config refuses it (is that seconds or minutes?)."""
    return _BARE.fullmatch(text.strip()) is not None


def check_duration(value: timedelta, what: str = "duration") -> timedelta:
    """`value` when it is at most MAX_DURATION (either way), else InvalidInput."""
    if abs(value) > MAX_DURATION:
        raise InvalidInput(f"{what} is longer than {MAX_TEXT}, the most stagger accepts")
    return value


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """Parse "1h30m" and friends; a bare number is seconds. Raises InvalidInput with an
    example of what is allowed."""
    raw = text.strip().lower().replace(" ", "")
    if _BARE.fullmatch(raw):
        return _bounded(float(raw), text, what)
    pos, total = 0, 0.0
    for m in _PART.finditer(raw):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not raw or pos != len(raw):
        raise InvalidInput(f"{what} {_shown(text)} is not a duration: {EXAMPLE}")
    return _bounded(total, text, what)


def _bounded(seconds: float, text: str, what: str) -> timedelta:
    if not seconds <= MAX_DURATION.total_seconds():  # also NaN-proof; floats never overflow here
        raise InvalidInput(
            f"{what} {_shown(text)} is longer than {MAX_TEXT}, the most stagger accepts"
        )
    return timedelta(seconds=seconds)


def _shown(text: str) -> str:
    """`text` quoted for a message, cut so that a pasted megabyte stays one readable line."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def format_duration(value: timedelta) -> str:
    """The short form people read: 3h12m, 45s, 2d4h (largest two units)."""
    secs = int(value.total_seconds())
    sign = "-" if secs < 0 else ""
    secs = abs(secs)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size or (unit == "s" and not parts):
            parts.append(f"{secs // size}{unit}")
            secs %= size
    return sign + "".join(parts[:2])

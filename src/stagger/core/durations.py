"""Durations as operators write them: "90s", "15m", "1h30m", "2h", "1d" (and Go's forms,
"1h30m0s", which locksmith's LOCKSMITHD_REBOOT_WINDOW_LENGTH uses). One parser for the CLI,
the config and the migration readers."""

from __future__ import annotations

import re
from datetime import timedelta

from stagger.core.errors import InvalidInput

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """Parse "1h30m" and friends; a bare number is seconds. Raises InvalidInput with an
    example of what is allowed."""
    raw = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return timedelta(seconds=float(raw))
    pos, total = 0, 0.0
    for m in _PART.finditer(raw):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not raw or pos != len(raw):
        raise InvalidInput(
            f"{what} {text!r} is not a duration: write it like '90s', '15m', '1h30m' or '2h'"
        )
    return timedelta(seconds=total)


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

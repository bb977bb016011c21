"""Monthly windows: the nth (or last) weekday of each month, moved by whole days, in the
window's own zone; through core, the config and `stagger windows`."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from stagger.config.window_section import WindowConfig
from stagger.core.errors import InvalidInput
from stagger.core.schedule import Schedule
from stagger.core.windows import MonthlyDay, Window, parse_monthly


def local_starts(w: Window, start: datetime, count: int) -> list[str]:
    zone = ZoneInfo(w.time_zone)
    return [
        f"{o.start.astimezone(zone):%Y-%m-%d %a %H:%M}"
        for o in Schedule((w,)).openings(start, count)
    ]


def test_the_thursday_after_patch_tuesday_in_tokyo() -> None:
    w = Window.parse_monthly("2nd tue", "03:00", "2h", "Asia/Tokyo", offset="2d")
    assert local_starts(w, datetime(2026, 12, 2, tzinfo=UTC), 4) == [
        "2026-12-10 Thu 03:00",  # Patch Tuesday is Dec 8
        "2027-01-14 Thu 03:00",
        "2027-02-11 Thu 03:00",
        "2027-03-11 Thu 03:00",
    ]
    assert w.describe() == "2nd Tue of the month + 2d 03:00 for 2h (Asia/Tokyo)"


def test_an_offset_may_carry_the_day_into_the_next_month() -> None:
    # The last Friday of July 2026 is the 31st: three days later is Monday, August 3rd.
    w = Window.parse_monthly("last fri", "22:00", "1h", "UTC", offset="3d")
    assert local_starts(w, datetime(2026, 7, 1, tzinfo=UTC), 2) == [
        "2026-08-03 Mon 22:00",
        "2026-08-31 Mon 22:00",  # from the last Friday of August, the 28th
    ]


def test_a_negative_offset_moves_the_day_back_into_the_month_before() -> None:
    # One day before the 1st Sunday of March 2026 (the 1st) is Saturday, February 28th.
    w = Window.parse_monthly("1st sun", "01:00", "1h", "UTC", offset="-1d")
    assert local_starts(w, datetime(2026, 2, 1, tzinfo=UTC), 2) == [
        "2026-02-28 Sat 01:00",
        "2026-04-04 Sat 01:00",
    ]


def test_a_monthly_window_in_the_spring_gap_keeps_the_weekly_rules() -> None:
    # New York springs forward on the 2nd Sunday of March 2026: 02:30 does not exist.
    w = Window.parse_monthly("2nd sun", "02:30", "1h", "America/New_York")
    (first,) = Schedule((w,)).openings(datetime(2026, 3, 1, tzinfo=UTC), 1)
    local = first.start.astimezone(ZoneInfo("America/New_York"))
    assert (local.date(), f"{local:%H:%M}") == (date(2026, 3, 8), "03:00")
    assert first.end is not None
    assert first.end - first.start == w.length
    assert any("does not exist" in n for n in first.notes)


def test_the_last_weekday_of_a_month_with_five_of_them() -> None:
    assert MonthlyDay(-1, 6).base_day(2026, 3) == date(2026, 3, 29)
    assert MonthlyDay(4, 6).base_day(2026, 3) == date(2026, 3, 22)
    assert MonthlyDay(-1, 3).base_day(2026, 12) == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("text", "offset", "wanted"),
    [
        ("5th tue", None, "is not a day of the month"),
        ("2nd", None, "is not a day of the month"),
        ("2nd weekdays", None, "names 5 days"),
        ("2nd tue", "36h", "not a whole number of days"),
        ("2nd tue", "40d", "too far"),
    ],
)
def test_bad_monthly_days_say_what_is_allowed(text: str, offset: str | None, wanted: str) -> None:
    with pytest.raises(InvalidInput, match=wanted):
        parse_monthly(text, offset)


def test_the_config_takes_days_or_monthly_but_not_both() -> None:
    ok = WindowConfig.model_validate(
        {"monthly": "last sun", "offset": "1d", "start": "03:00", "length": "2h"}
    )
    assert ok.to_window("Europe/Berlin").monthly == MonthlyDay(-1, 6, 1)
    for bad in (
        {"start": "03:00", "length": "2h"},
        {"days": ["Mon"], "monthly": "2nd tue", "start": "03:00", "length": "2h"},
        {"days": ["Mon"], "offset": "2d", "start": "03:00", "length": "2h"},
    ):
        with pytest.raises(ValueError, match="monthly"):
            WindowConfig.model_validate(bad)


def test_stagger_windows_lists_monthly_openings(tmp_path: Path) -> None:
    conf = tmp_path / "50-monthly.toml"
    conf.write_text(
        '[[window]]\nmonthly = "2nd tue"\noffset = "2d"\nstart = "03:00"\nlength = "2h"\n'
        'time_zone = "Asia/Tokyo"\n\n'
        '[[blackout]]\nstart = "2027-01-01T00:00:00Z"\nend = "2027-01-31T00:00:00Z"\n'
        'reason = "new-year freeze"\n'
    )
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "stagger",
            "windows",
            "--config",
            str(conf),
            "--count",
            "2",
            "--from",
            "2026-12-02T00:00:00Z",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)
    assert [o["start"] for o in got] == ["2026-12-10T03:00:00+09:00", "2027-02-11T03:00:00+09:00"]
    assert "new-year freeze" in " ".join(got[1]["notes"])  # January's opening was cut

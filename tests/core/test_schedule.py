"""core/windows and core/schedule: when a reboot may start. One behaviour per test; instants
are given, never read from the clock. DST cases use real zones: America/New_York,
Europe/Berlin, Australia/Lord_Howe (a 30-minute shift) and Asia/Tokyo (no DST)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from stagger.core.errors import InvalidInput
from stagger.core.schedule import HORIZON, Schedule, occurrences
from stagger.core.windows import (
    Blackout,
    Window,
    parse_day,
    parse_days,
    parse_instant,
    parse_length,
    parse_start,
    parse_zone,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def window(days: str | list[str], start: str, length: str, zone: str = "UTC") -> Window:
    return Window.parse(days, start, length, zone)


def blackout(start: str, end: str, reason: str = "freeze") -> Blackout:
    return Blackout(at(start), at(end), reason)


TOKYO = window(["Mon", "Thu"], "04:00", "1h30m", "Asia/Tokyo")

# --- no windows --------------------------------------------------------------------------------


def test_no_windows_is_always_open() -> None:
    assert Schedule().is_open(at("2026-05-14T03:00:00+00:00"))


def test_no_windows_still_closes_for_a_blackout() -> None:
    s = Schedule((), (blackout("2026-12-24T00:00:00+09:00", "2027-01-04T00:00:00+09:00"),))
    assert not s.is_open(at("2026-12-30T00:00:00+09:00"))
    assert s.next_open(at("2026-12-30T00:00:00+09:00")) == at("2027-01-04T00:00:00+09:00")


def test_no_windows_closes_at_the_next_blackout() -> None:
    s = Schedule((), (blackout("2026-12-24T00:00:00+09:00", "2027-01-04T00:00:00+09:00"),))
    assert s.closes_at(at("2026-12-01T00:00:00+09:00")) == at("2026-12-24T00:00:00+09:00")


def test_no_windows_and_no_blackouts_never_close() -> None:
    assert Schedule().closes_at(at("2026-12-01T00:00:00+00:00")) is None


# --- one window --------------------------------------------------------------------------------


def test_window_is_open_from_its_start() -> None:
    assert Schedule((TOKYO,)).is_open(at("2026-05-14T04:00:00+09:00"))  # a Thursday


def test_window_is_closed_at_its_end() -> None:
    s = Schedule((TOKYO,))
    assert s.is_open(at("2026-05-14T05:29:59+09:00"))
    assert not s.is_open(at("2026-05-14T05:30:00+09:00"))


def test_window_is_closed_on_other_days() -> None:
    assert not Schedule((TOKYO,)).is_open(at("2026-05-13T04:30:00+09:00"))  # a Wednesday


def test_window_is_judged_in_its_own_zone() -> None:
    # Thursday 04:30 in Tokyo is Wednesday 19:30 UTC.
    assert Schedule((TOKYO,)).is_open(at("2026-05-13T19:30:00+00:00"))


def test_window_crossing_midnight_is_open_after_midnight() -> None:
    s = Schedule((window("thu", "23:00", "1h30m"),))
    assert s.is_open(at("2026-05-15T00:15:00+00:00"))  # Friday
    assert s.closes_at(at("2026-05-15T00:15:00+00:00")) == at("2026-05-15T00:30:00+00:00")


def test_window_crossing_the_end_of_the_week_is_open_on_monday() -> None:
    s = Schedule((window("Sunday", "23:00", "2h"),))
    assert s.is_open(at("2026-05-18T00:30:00+00:00"))  # Monday
    assert not s.is_open(at("2026-05-18T01:00:00+00:00"))


def test_closes_at_is_the_window_end() -> None:
    s = Schedule((TOKYO,))
    assert s.closes_at(at("2026-05-14T04:10:00+09:00")) == at("2026-05-14T05:30:00+09:00")


def test_closes_at_is_none_when_closed() -> None:
    assert Schedule((TOKYO,)).closes_at(at("2026-05-14T06:00:00+09:00")) is None


def test_touching_windows_close_as_one() -> None:
    s = Schedule((window("mon", "22:00", "2h"), window("tue", "00:00", "1h")))
    assert s.closes_at(at("2026-05-11T23:00:00+00:00")) == at("2026-05-12T01:00:00+00:00")


def test_windows_covering_every_instant_never_close_within_the_horizon() -> None:
    s = Schedule((window("daily", "00:00", "24h"),))
    assert s.closes_at(at("2026-05-11T23:00:00+00:00")) is None


def test_next_open_is_now_when_open() -> None:
    now = at("2026-05-14T04:10:00+09:00")
    assert Schedule((TOKYO,)).next_open(now) == now


def test_next_open_is_the_next_window_start() -> None:
    s = Schedule((TOKYO,))
    assert s.next_open(at("2026-05-14T06:00:00+09:00")) == at("2026-05-18T04:00:00+09:00")


def test_next_open_skips_a_window_inside_a_blackout() -> None:
    s = Schedule((TOKYO,), (blackout("2026-05-17T00:00:00+09:00", "2026-05-19T00:00:00+09:00"),))
    assert s.next_open(at("2026-05-14T06:00:00+09:00")) == at("2026-05-21T04:00:00+09:00")


def test_next_open_starts_when_a_blackout_ends_inside_a_window() -> None:
    s = Schedule((TOKYO,), (blackout("2026-05-18T03:00:00+09:00", "2026-05-18T04:30:00+09:00"),))
    assert s.next_open(at("2026-05-18T00:00:00+09:00")) == at("2026-05-18T04:30:00+09:00")


def test_blackout_ends_an_opening_early() -> None:
    s = Schedule((TOKYO,), (blackout("2026-05-18T05:00:00+09:00", "2026-05-18T09:00:00+09:00"),))
    assert s.closes_at(at("2026-05-18T04:10:00+09:00")) == at("2026-05-18T05:00:00+09:00")


def test_overlapping_blackouts_count_as_one() -> None:
    s = Schedule(
        (window("daily", "00:00", "24h"),),
        (
            blackout("2026-05-18T00:00:00+00:00", "2026-05-19T00:00:00+00:00", "a"),
            blackout("2026-05-18T12:00:00+00:00", "2026-05-20T00:00:00+00:00", "b"),
        ),
    )
    assert s.next_open(at("2026-05-18T06:00:00+00:00")) == at("2026-05-20T00:00:00+00:00")


def test_next_open_is_none_when_blackouts_cover_the_horizon() -> None:
    now = at("2026-05-18T00:00:00+00:00")
    s = Schedule((TOKYO,), (Blackout(now, now + HORIZON + timedelta(days=8), "forever"),))
    assert s.next_open(now) is None


def test_next_open_is_found_up_to_the_horizon() -> None:
    now = at("2026-05-18T00:00:00+00:00")
    s = Schedule((), (Blackout(now, now + HORIZON, "a year"),))
    assert s.next_open(now) == now + HORIZON


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidInput, match="UTC offset"):
        Schedule().is_open(datetime(2026, 5, 18))


# --- DST ---------------------------------------------------------------------------------------


def test_new_york_start_in_the_spring_gap_begins_after_the_gap() -> None:
    s = Schedule((window("daily", "02:30", "1h", "America/New_York"),))
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    assert s.next_open(at("2026-03-08T00:00:00-05:00")) == at("2026-03-08T07:00:00+00:00")


def test_new_york_start_in_the_spring_gap_keeps_its_elapsed_length() -> None:
    s = Schedule((window("daily", "02:30", "1h", "America/New_York"),))
    assert s.closes_at(at("2026-03-08T07:00:00+00:00")) == at("2026-03-08T08:00:00+00:00")


def test_new_york_start_repeated_on_fall_back_uses_the_first_occurrence() -> None:
    s = Schedule((window("daily", "01:30", "30m", "America/New_York"),))
    # 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    assert s.next_open(at("2026-11-01T00:00:00-04:00")) == at("2026-11-01T05:30:00+00:00")
    assert not s.is_open(at("2026-11-01T06:30:00+00:00"))


def test_berlin_start_in_the_spring_gap_begins_at_three() -> None:
    s = Schedule((window("sun", "02:15", "2h", "Europe/Berlin"),))
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    assert s.next_open(at("2026-03-29T00:00:00+01:00")) == at("2026-03-29T03:00:00+02:00")


def test_lord_howe_half_hour_gap_moves_the_start_by_the_rest_of_the_gap() -> None:
    s = Schedule((window("sun", "02:10", "1h", "Australia/Lord_Howe"),))
    # 2026-10-04: 02:00 +10:30 jumps to 02:30 +11:00 (15:30 UTC the day before).
    opened = s.next_open(at("2026-10-04T00:00:00+10:30"))
    assert opened == at("2026-10-04T02:30:00+11:00")


def test_lord_howe_half_hour_fall_back_uses_the_first_occurrence() -> None:
    s = Schedule((window("sun", "01:45", "10m", "Australia/Lord_Howe"),))
    # 2026-04-05: 02:00 +11:00 falls back to 01:30 +10:30; 01:45 happens twice.
    assert s.next_open(at("2026-04-05T00:00:00+11:00")) == at("2026-04-05T01:45:00+11:00")


def test_tokyo_window_starts_at_the_same_utc_time_all_year() -> None:
    starts = {o.start.time() for o in occurrences(TOKYO, date(2026, 1, 1), date(2026, 12, 31))}
    assert starts == {time(19, 0)}


@pytest.mark.parametrize(
    "zone", ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Tokyo"]
)
def test_a_daily_window_opens_once_on_every_date_of_a_year(zone: str) -> None:
    w = window("daily", "02:30", "1h", zone)
    found = list(occurrences(w, date(2026, 1, 1), date(2026, 12, 31)))
    local_dates = [o.start.astimezone(ZoneInfo(zone)).date() for o in found]
    assert local_dates == [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]


def test_occurrence_notes_say_when_dst_moved_the_start() -> None:
    w = window("daily", "02:30", "1h", "America/New_York")
    (occ,) = occurrences(w, date(2026, 3, 8), date(2026, 3, 8))
    assert "does not exist" in occ.note
    assert "03:00" in occ.note


# --- why ---------------------------------------------------------------------------------------


def test_why_names_the_next_window_in_its_zone() -> None:
    s = Schedule((TOKYO,))
    assert s.why(at("2026-05-14T00:48:00+09:00")) == (
        "closed: next window Thu 04:00 Asia/Tokyo (in 3h12m)"
    )


def test_why_names_the_blackout_and_its_end() -> None:
    s = Schedule(
        (TOKYO,),
        (blackout("2026-12-24T00:00:00+09:00", "2027-01-04T00:00:00+09:00", "year-end freeze"),),
    )
    sentence = s.why(at("2026-12-25T00:00:00+09:00"))
    assert sentence.startswith("closed: blackout 'year-end freeze' until 2027-01-04T00:00:00+09:00")


def test_why_says_when_an_open_window_closes() -> None:
    sentence = Schedule((TOKYO,)).why(at("2026-05-14T04:30:00+09:00"))
    assert sentence.startswith("open: window")
    assert "until Thu 05:30 Asia/Tokyo (in 1h)" in sentence


def test_why_says_no_windows_means_always_open() -> None:
    assert "no windows are configured" in Schedule().why(at("2026-05-14T04:30:00+09:00"))


def test_why_says_when_no_window_can_open() -> None:
    now = at("2026-05-18T00:00:00+00:00")
    s = Schedule((TOKYO,), (Blackout(now, now + HORIZON * 2, "forever"),))
    assert "no window opens within the next 366 days" in s.why(now)


# --- openings ----------------------------------------------------------------------------------


def test_openings_list_the_next_ones_in_order() -> None:
    got = Schedule((TOKYO,)).openings(at("2026-05-14T06:00:00+09:00"), 3)
    assert [o.start for o in got] == [
        at("2026-05-18T04:00:00+09:00"),
        at("2026-05-21T04:00:00+09:00"),
        at("2026-05-25T04:00:00+09:00"),
    ]


def test_openings_explain_windows_a_blackout_removed() -> None:
    s = Schedule(
        (window("daily", "04:00", "1h", "Asia/Tokyo"),),
        (blackout("2026-12-24T00:00:00+09:00", "2027-01-04T00:00:00+09:00", "year-end freeze"),),
    )
    got = s.openings(at("2026-12-23T06:00:00+09:00"), 1)
    assert got[0].start == at("2027-01-04T04:00:00+09:00")
    assert "covered 11 opening(s)" in got[0].notes[0]


def test_openings_without_windows_run_to_the_next_blackout() -> None:
    s = Schedule((), (blackout("2026-12-24T00:00:00+09:00", "2027-01-04T00:00:00+09:00"),))
    first, second = s.openings(at("2026-12-01T00:00:00+09:00"), 2)
    assert first.end == at("2026-12-24T00:00:00+09:00")
    assert second.start == at("2027-01-04T00:00:00+09:00")
    assert second.end is None


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon", {0}),
        ("Tuesday", {1}),  # Zincati rejects this one
        ("SUN", {6}),
        ("daily", set(range(7))),
        ("weekdays", {0, 1, 2, 3, 4}),
        ("Weekends", {5, 6}),
    ],
)
def test_day_names_in_any_case_and_groups_are_understood(text: str, days: set[int]) -> None:
    assert parse_day(text) == days


def test_unknown_day_name_lists_the_allowed_ones() -> None:
    with pytest.raises(InvalidInput, match="mon…sun"):
        parse_day("tues")


def test_empty_day_list_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at least one day"):
        parse_days([])


@pytest.mark.parametrize("text", ["24:00", "4", "04:60", "4pm", ""])
def test_start_must_be_hh_mm(text: str) -> None:
    with pytest.raises(InvalidInput, match="HH:MM"):
        parse_start(text)


def test_start_accepts_a_single_digit_hour() -> None:
    assert parse_start("4:05") == time(4, 5)


@pytest.mark.parametrize(("text", "minutes"), [("90m", 90), ("1h30m", 90), ("2h", 120)])
def test_length_is_read_as_a_duration(text: str, minutes: int) -> None:
    assert parse_length(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["0m", "7d1s", "soon"])
def test_length_must_be_more_than_zero_and_at_most_a_week(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_length(text)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime"])
def test_unknown_time_zone_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="IANA"):
        parse_zone(name)


def test_instant_needs_an_offset() -> None:
    with pytest.raises(InvalidInput, match="UTC offset"):
        parse_instant("2026-12-24T00:00:00")


def test_instant_accepts_z() -> None:
    assert parse_instant("2026-12-24T00:00:00Z") == datetime(2026, 12, 24, tzinfo=UTC)


def test_blackout_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidInput, match="end must be later than start"):
        blackout("2026-12-24T00:00:00+09:00", "2026-12-23T00:00:00+09:00")

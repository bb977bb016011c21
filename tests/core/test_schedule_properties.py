"""Invariants of core/schedule over random schedules and instants (hypothesis).

Instants are drawn across 2026-2027 and pulled towards DST transitions of the zones used;
window starts are pulled towards the hours DST moves. "Sampled" checks look at evenly spaced
instants plus every window start/end and blackout edge in the range (where openness changes).
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagger.core.schedule import Schedule, occurrences
from stagger.core.windows import MAX_LENGTH, MAX_OFFSET_DAYS, Blackout, MonthlyDay, Window

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Tokyo", "UTC"]
# DST transitions in 2026 (UTC) for the zones above: instants are pulled towards them.
TRANSITIONS = [
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # New York spring
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # New York fall
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # Berlin spring
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # Berlin fall
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC),  # Lord Howe fall (02:00 +11 -> 01:30 +10:30)
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),  # Lord Howe spring (02:00 -> 02:30)
]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

instants = st.one_of(
    st.integers(0, 2 * 365 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m)),
    st.tuples(st.sampled_from(TRANSITIONS), st.integers(-3 * 24 * 60, 3 * 24 * 60)).map(
        lambda p: p[0] + timedelta(minutes=p[1])
    ),
)
starts = st.one_of(
    st.builds(time, st.integers(0, 23), st.integers(0, 59)),
    st.builds(time, st.integers(1, 3), st.sampled_from([0, 10, 15, 29, 30, 45, 59])),
)
lengths = st.one_of(
    st.integers(1, 4 * 60).map(lambda m: timedelta(minutes=m)),
    st.integers(1, int(MAX_LENGTH.total_seconds() // 60)).map(lambda m: timedelta(minutes=m)),
)
weekly = st.builds(
    Window,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=starts,
    length=lengths,
    time_zone=st.sampled_from(ZONES),
)
# Monthly days pulled towards Sundays, the day every DST change above falls on (New York: 2nd
# and 1st Sunday, Berlin: last Sunday, Lord Howe: 1st Sunday), with offsets across month ends.
monthly_days = st.builds(
    MonthlyDay,
    nth=st.sampled_from([1, 2, 3, 4, -1]),
    weekday=st.one_of(st.just(6), st.integers(0, 6)),
    offset=st.one_of(st.just(0), st.integers(-MAX_OFFSET_DAYS, MAX_OFFSET_DAYS)),
)
monthly = st.builds(
    Window,
    days=st.just(frozenset()),
    start=starts,
    length=lengths,
    time_zone=st.sampled_from(ZONES),
    monthly=monthly_days,
)
windows = st.one_of(weekly, monthly)


@st.composite
def blackouts(draw: st.DrawFn) -> Blackout:
    start = draw(instants)
    return Blackout(start, start + timedelta(minutes=draw(st.integers(1, 20 * 24 * 60))), "b")


schedules = st.builds(
    Schedule,
    windows=st.lists(windows, max_size=3).map(tuple),
    blackouts=st.lists(blackouts(), max_size=2).map(tuple),
)


def edges(s: Schedule, lo: datetime, hi: datetime) -> list[datetime]:
    """Instants in [lo, hi) where openness may change, and one instant just before each."""
    found: list[datetime] = []
    first, last = (lo - MAX_LENGTH - timedelta(days=2)).date(), hi.date() + timedelta(days=1)
    for w in s.windows:
        for occ in occurrences(w, first, last):
            found += [occ.start, occ.end]
    for b in s.blackouts:
        found += [b.start, b.end]
    out = []
    for t in found:
        out += [t, t - timedelta(seconds=1)]
    return [t for t in out if lo <= t < hi]


def samples(s: Schedule, lo: datetime, hi: datetime, n: int = 24) -> list[datetime]:
    step = (hi - lo) / n
    return [lo + step * i for i in range(n)] + edges(s, lo, hi)


@SETTINGS
@given(schedules, instants)
def test_next_open_is_open(s: Schedule, now: datetime) -> None:
    t = s.next_open(now)
    if t is not None:
        assert t >= now
        assert s.is_open(t)


@SETTINGS
@given(schedules, instants)
def test_nothing_between_now_and_next_open_is_open(s: Schedule, now: datetime) -> None:
    t = s.next_open(now)
    if t is None or t == now:
        return
    # Cap the sampled range: a year of edges is slow and adds nothing.
    hi = min(t, now + timedelta(days=30))
    assert not any(s.is_open(x) for x in samples(s, now, hi))


@SETTINGS
@given(schedules, instants)
def test_closes_at_is_consistent_with_is_open(s: Schedule, now: datetime) -> None:
    c = s.closes_at(now)
    if not s.is_open(now):
        assert c is None
        return
    if c is None:  # open beyond the horizon: sample the first month
        assert all(s.is_open(x) for x in samples(s, now, now + timedelta(days=30)))
        return
    assert c > now
    assert not s.is_open(c)
    hi = min(c, now + timedelta(days=30))
    assert all(s.is_open(x) for x in samples(s, now, hi))


@SETTINGS
@given(schedules, instants)
def test_openings_are_open_and_ordered(s: Schedule, now: datetime) -> None:
    got = s.openings(now, 4)
    for o in got:
        assert s.is_open(o.start) or o.start < now
        if o.end is not None:
            assert not s.is_open(o.end)
    for a, b in itertools.pairwise(got):
        assert a.end is not None
        assert a.end < b.start


def opens_on(w: Window, d: date) -> bool:
    """Whether `w` opens on local date `d`, told from the calendar alone (an oracle that shares
    no code with core: the nth weekday is the one whose day of the month is in week n)."""
    if w.monthly is None:
        return d.weekday() in w.days
    base = d - timedelta(days=w.monthly.offset)
    if base.weekday() != w.monthly.weekday:
        return False
    if w.monthly.nth == -1:
        return (base + timedelta(days=7)).month != base.month
    return (base.day - 1) // 7 == w.monthly.nth - 1


@SETTINGS
@given(windows, st.dates(date(2026, 1, 1), date(2027, 12, 1)), st.integers(1, 400))
def test_a_window_is_never_skipped(w: Window, first: date, days: int) -> None:
    last = first + timedelta(days=days - 1)
    got = list(occurrences(w, first, last))
    wanted = [first + timedelta(days=i) for i in range(days)]
    wanted = [d for d in wanted if opens_on(w, d)]
    assert [o.start.astimezone(ZoneInfo(w.time_zone)).date() for o in got] == wanted
    assert all(o.end - o.start == w.length for o in got)


@SETTINGS
@given(windows, st.dates(date(2026, 1, 1), date(2027, 12, 1)))
def test_a_window_starts_at_its_wall_clock_time_or_right_after_a_gap(w: Window, d: date) -> None:
    for occ in occurrences(w, d, d + timedelta(days=62)):
        local = occ.start.astimezone(ZoneInfo(w.time_zone))
        wall = datetime.combine(local.date(), w.start)
        if "does not exist" in occ.note:
            # The first instant after the gap: a second earlier was before the wall time.
            before = (occ.start - timedelta(seconds=1)).astimezone(ZoneInfo(w.time_zone))
            assert local.replace(tzinfo=None) > wall > before.replace(tzinfo=None)
        else:
            assert local.replace(tzinfo=None) == wall
            assert local.fold == 0

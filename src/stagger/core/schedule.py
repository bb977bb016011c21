"""When a reboot may start: the windows (core/windows.py) resolved to instants in their real
time zones, joined, minus blackouts.

Rules of this file:
- Pure: `now` is always an argument; nothing here reads the clock. zoneinfo is used as data.
- Each configured day yields exactly one opening, whatever DST does (a window is never
  skipped):
  - a start inside a spring-forward gap begins at the first instant after the gap;
  - a start that happens twice on fall-back begins at the first occurrence;
  - the length is always elapsed time, so a 2h window is 2 real hours long.
- Openings are half-open intervals [start, end): at `end` the window is closed.
- No windows at all means always open; blackouts still apply.
- Every search is bounded by HORIZON: an opening that lies further ahead is reported as none.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from stagger.core.durations import format_duration
from stagger.core.windows import MAX_LENGTH, Blackout, Window, require_aware

# How far ahead next_open, closes_at and openings look. A year and a day, so a yearly freeze
# that covers every window is reported as "no window opens" rather than searched forever.
HORIZON = timedelta(days=366)
# Occurrences that started up to this long before a day can still be open on it: the longest
# window plus the widest distance between two UTC offsets (-12h..+14h), rounded up.
_LOOKBACK = MAX_LENGTH + timedelta(days=2)


@dataclass(frozen=True)
class Occurrence:
    """One window's opening on one day, resolved to instants. `note` explains a DST shift."""

    start: datetime
    end: datetime
    window: Window
    note: str = ""


@dataclass(frozen=True)
class Opening:
    """A stretch in which a reboot may start: windows joined, blackouts cut out.
    `end` is None when it lasts beyond the horizon; `window` is None with no windows."""

    start: datetime
    end: datetime | None
    window: Window | None
    notes: tuple[str, ...] = ()


# --- resolving wall-clock times ----------------------------------------------------------------


@lru_cache(maxsize=65536)
def resolve_wall_time(day: date, at: time, zone: str) -> tuple[datetime, str]:
    """The instant a wall-clock time begins in `zone` on `day`, and a note when DST moved it.
    Fall-back (the time happens twice): the first occurrence. Spring-forward (the time does
    not exist): the first instant after the gap."""
    tz = ZoneInfo(zone)
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first < second:
        return first, (
            f"{at:%H:%M} happens twice on {day.isoformat()} in {zone} (clocks go back); "
            "the window starts at the first one"
        )
    if first == second:
        return first, ""
    # In the gap: fold=1 maps to an instant before the transition, fold=0 to one after it.
    # Find the transition to the second: the first instant whose wall time is >= `wall`.
    lo, hi = int(second.timestamp()), int(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        local = datetime.fromtimestamp(mid, tz).replace(tzinfo=None)
        if local >= wall:
            hi = mid
        else:
            lo = mid
    begin = datetime.fromtimestamp(hi, UTC)
    shown = begin.astimezone(tz)
    return begin, (
        f"{at:%H:%M} does not exist on {day.isoformat()} in {zone} (clocks go forward); "
        f"the window starts at {shown:%H:%M} and keeps its length"
    )


def window_days(window: Window, first_day: date, last_day: date) -> Iterator[date]:
    """The local dates in [first_day, last_day] on which `window` opens, in order."""
    if window.monthly is not None:
        yield from window.monthly.days_between(first_day, last_day)
        return
    day = first_day
    while day <= last_day:
        if day.weekday() in window.days:
            yield day
        day += timedelta(days=1)


def occurrences(window: Window, first_day: date, last_day: date) -> Iterator[Occurrence]:
    """The window's openings for each local date in [first_day, last_day], in order. Exactly one
    per configured day: DST shifts an opening, it never drops one."""
    for day in window_days(window, first_day, last_day):
        begin, note = resolve_wall_time(day, window.start, window.time_zone)
        yield Occurrence(begin, begin + window.length, window, note)


def _fmt_local(t: datetime, zone: str, now: datetime | None = None) -> str:
    local = t.astimezone(ZoneInfo(zone))
    if now is not None and abs(t - now) < timedelta(days=6):
        return f"{local:%a %H:%M} {zone}"
    return f"{local:%a %Y-%m-%d %H:%M} {zone}"


# --- the schedule ------------------------------------------------------------------------------


def _merge_blackouts(blackouts: Sequence[Blackout]) -> tuple[Blackout, ...]:
    """Overlapping or touching blackouts as one range (keeping the first one's reason)."""
    merged: list[Blackout] = []
    for b in sorted(blackouts, key=lambda b: (b.start, b.end)):
        if merged and b.start <= merged[-1].end:
            last = merged[-1]
            if b.end > last.end:
                merged[-1] = Blackout(last.start, b.end, last.reason)
        else:
            merged.append(b)
    return tuple(merged)


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...] = ()
    blackouts: tuple[Blackout, ...] = ()
    _blocks: tuple[Blackout, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_blocks", _merge_blackouts(self.blackouts))

    @property
    def always_open(self) -> bool:
        """No windows configured: a reboot may start at any time outside blackouts."""
        return not self.windows

    # -- pieces

    def blackout_at(self, now: datetime) -> Blackout | None:
        """The configured blackout in force at `now` (the earliest-starting one)."""
        require_aware(now)
        for b in sorted(self.blackouts, key=lambda b: b.start):
            if b.contains(now):
                return b
        return None

    def _block_at(self, t: datetime) -> Blackout | None:
        for b in self._blocks:
            if b.contains(t):
                return b
        return None

    def _occurrences_from(self, now: datetime) -> Iterator[Occurrence]:
        """Every window's openings that may still be open at `now` or start later (up to the
        horizon), in order of start."""
        first = (now.astimezone(UTC) - _LOOKBACK).date()
        last = (now.astimezone(UTC) + HORIZON).date() + timedelta(days=1)
        limit = now + HORIZON
        merged = heapq.merge(
            *(occurrences(w, first, last) for w in self.windows), key=lambda o: o.start
        )
        for occ in merged:
            if occ.start > limit:
                return
            if occ.end > now:
                yield occ

    def window_at(self, now: datetime) -> Occurrence | None:
        """The window opening that contains `now` (blackouts not considered)."""
        for occ in self._occurrences_from(now):
            if occ.start > now:
                return None
            return occ
        return None

    # -- the questions

    def is_open(self, now: datetime) -> bool:
        require_aware(now)
        if self._block_at(now) is not None:
            return False
        return self.always_open or self.window_at(now) is not None

    def closes_at(self, now: datetime) -> datetime | None:
        """The end of the opening that contains `now`: the windows' end (touching or overlapping
        windows count as one) or the next blackout's start, whichever is first. None when the
        schedule is closed at `now`, or when the opening lasts beyond the horizon."""
        if not self.is_open(now):
            return None
        limit = now + HORIZON
        cap = next((b.start for b in self._blocks if b.start > now), None)
        if self.always_open:
            return cap
        end = now
        for occ in self._occurrences_from(now):
            if occ.start > end or (cap is not None and end >= cap) or end >= limit:
                break
            end = max(end, occ.end)
        if cap is not None and cap <= end:
            return cap
        return None if end >= limit else end

    def _next_open(self, now: datetime) -> tuple[datetime, Window | None] | None:
        limit = now + HORIZON
        if self.always_open:
            t = now
            while (b := self._block_at(t)) is not None:
                t = b.end
            return (t, None) if t <= limit else None
        t = now
        for occ in self._occurrences_from(now):
            t = max(t, occ.start)
            while t < occ.end:
                b = self._block_at(t)
                if b is None:
                    return (t, occ.window) if t <= limit else None
                t = b.end
            if t > limit:
                return None
        return None

    def next_open(self, now: datetime) -> datetime | None:
        """The first instant at or after `now` at which a reboot may start; `now` itself when
        open. None when no window opens within HORIZON (every one is covered by blackouts)."""
        require_aware(now)
        found = self._next_open(now)
        return None if found is None else found[0]

    def why(self, now: datetime) -> str:
        """One sentence for an operator: open or closed, and until when."""
        require_aware(now)
        block = self.blackout_at(now)
        if block is not None:
            until = self._block_at(now)
            end = until.end if until is not None else block.end
            return (
                f"closed: blackout {block.label()} until {end.isoformat()} "
                f"(in {format_duration(end - now)}); then {self._next_sentence(now)}"
            )
        if self.is_open(now):
            closes = self.closes_at(now)
            if self.always_open:
                head = "open: no windows are configured, so a reboot may start at any time"
                if closes is None:
                    return head
                nxt = next(b for b in self._blocks if b.start == closes)
                return (
                    f"{head} until blackout {nxt.label()} begins at {closes.isoformat()} "
                    f"(in {format_duration(closes - now)})"
                )
            occ = self.window_at(now)
            zone = occ.window.time_zone if occ is not None else "UTC"
            if closes is None:
                return "open: the windows cover every instant of the coming year"
            return (
                f"open: window {occ.window.describe() if occ else ''} until "
                f"{_fmt_local(closes, zone, now)} (in {format_duration(closes - now)})"
            )
        return "closed: " + self._next_sentence(now)

    def _next_sentence(self, now: datetime) -> str:
        found = self._next_open(now)
        if found is None:
            return f"no window opens within the next {HORIZON.days} days"
        t, window = found
        when = f"(in {format_duration(t - now)})"
        if window is None:
            return f"open from {t.isoformat()} {when}"
        return f"next window {_fmt_local(t, window.time_zone, now)} {when}"

    # -- listing

    def openings(self, start: datetime, count: int) -> list[Opening]:
        """The next `count` openings that are open at or after `start` (the first one may have
        begun earlier), each with notes on DST shifts and blackouts that changed it."""
        require_aware(start)
        out: list[Opening] = []
        for opening in self._openings(start):
            out.append(opening)
            if len(out) >= count:
                break
        return out

    def _openings(self, now: datetime) -> Iterator[Opening]:
        limit = now + HORIZON
        joined: Iterator[Opening]
        if self.always_open:
            joined = iter([Opening(now, limit, None)])
        else:
            joined = _join(self._occurrences_from(now))
        hidden: dict[Blackout, int] = {}  # openings a blackout removed whole, told with the next
        for base in joined:
            pieces = list(self._cut(base))
            if not pieces and base.end is not None and base.end > now:
                block = self._block_at(base.start)
                if block is not None:
                    hidden[block] = hidden.get(block, 0) + 1
            for piece in pieces:
                if piece.end is not None and piece.end <= now:
                    continue
                if piece.start > limit:
                    return
                if hidden:
                    told = tuple(
                        f"blackout {b.label()} ({b.start.isoformat()} to {b.end.isoformat()}) "
                        f"covered {n} opening(s) before this one"
                        for b, n in hidden.items()
                    )
                    piece = Opening(piece.start, piece.end, piece.window, told + piece.notes)
                    hidden = {}
                if piece.end is not None and piece.end >= limit:
                    yield Opening(piece.start, None, piece.window, piece.notes)
                    return
                yield piece

    def _cut(self, base: Opening) -> Iterator[Opening]:
        """`base` with every blackout cut out of it."""
        assert base.end is not None
        start, end, notes = base.start, base.end, list(base.notes)
        for b in self._blocks:
            if b.end <= start or b.start >= end:
                continue
            if b.start > start:
                yield Opening(
                    start,
                    b.start,
                    base.window,
                    (*notes, f"ends early: blackout {b.label()} begins {b.start.isoformat()}"),
                )
                notes = [n for n in notes if not n.startswith("ends early")]
            start = b.end
            notes = [f"starts late: blackout {b.label()} lasts until {b.end.isoformat()}"]
            if start >= end:
                return
        yield Opening(start, end, base.window, tuple(notes))


def _join(occs: Iterable[Occurrence]) -> Iterator[Opening]:
    """Overlapping or touching occurrences as one opening."""
    cur: Opening | None = None
    for occ in occs:
        notes = (occ.note,) if occ.note else ()
        if cur is not None and cur.end is not None and occ.start <= cur.end:
            end = max(cur.end, occ.end)
            cur = Opening(cur.start, end, cur.window, cur.notes + notes)
            continue
        if cur is not None:
            yield cur
        cur = Opening(occ.start, occ.end, occ.window, notes)
    if cur is not None:
        yield cur

"""A group's turns: how many slots its max allows now (a count, or a percentage of its known
nodes), which freed slots still cool down (pacing), and who is next (the fair queue). Pure
functions of plain values; core/semaphore.py keeps the values in the group record and applies
them in `acquire` (docs/rollout.md, "Percent max, pacing, fair order, ETA").

- Known nodes: the holders, and every node that asked for, held or released a slot of the
  group within its `stale_after` (the group's memory). Node reports are not read: a lock must
  stay one read of one record.
- Pacing: each release (or expiry) of a slot starts a cool-down of `pace`; a cooling slot is
  not granted. So, per slot, two grants are at least `pace` apart, and at most `max` grants
  fall in any window of length `pace`.
- Fair queue: a node asking for a slot it cannot have yet joins the queue (its first ask);
  it keeps its place while it asks again within `stale_after` (its last ask). A free slot
  goes to the queue's first nodes: a node at position P is granted when P <= free slots.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from stagger.core.errors import InvalidInput

# A waiter's last-ask mark is written again only when older than stale_after / MARK_FRACTION:
# a client that asks at least that often writes about MARK_FRACTION times per stale_after, and
# one that asks at least every stale_after / MARK_FRACTION keeps its place.
MARK_FRACTION = 2


def validate_percent(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise InvalidInput(
            f"max {value!r}% is not valid: give a whole percentage from 1% to 100% "
            "(or a count such as 0 to stop new reboots)"
        )
    return value


def percent_slots(percent: int, known: int) -> int:
    """`percent` of `known` nodes, rounded down, at least 1."""
    return max(1, known * percent // 100)


def known_nodes(
    holders: Iterable[str], seen: Mapping[str, datetime], now: datetime, memory: timedelta
) -> frozenset[str]:
    """The holders and the nodes seen (asked, held, released) within `memory` of `now`."""
    return frozenset(holders) | {n for n, t in seen.items() if now - t <= memory}


def cooling_ends(
    releases: Iterable[datetime], now: datetime, pace: timedelta | None
) -> list[datetime]:
    """When each still-cooling freed slot may be granted again, earliest first."""
    if pace is None:
        return []
    return sorted(t + pace for t in releases if t + pace > now)


def pacing_until(ends: list[datetime], held: int, slots: int) -> datetime | None:
    """When a slot cools down enough for a new grant, given `ends` (cooling_ends), `held` live
    holds and `slots` allowed: None when one is free now, or when cooling alone never frees one
    (the holders must release first)."""
    occupied = held + len(ends)
    if occupied < slots:
        return None
    needed = occupied - slots + 1  # cooling slots that must end
    if needed > len(ends):
        return None
    return ends[needed - 1]


@dataclass(frozen=True)
class Waiter:
    """A node in a group's queue."""

    id: str
    position: int  # 1-based
    first_asked: datetime
    last_asked: datetime


def places(
    waiting: Mapping[str, datetime],
    seen: Mapping[str, datetime],
    now: datetime,
    stale_after: timedelta,
    *,
    exclude: Collection[str] = (),
) -> dict[str, int]:
    """Each node's 1-based place in the live queue, first asked first: nodes in `waiting`
    (id → first ask, in the order they joined) whose last ask (`seen`) is within
    `stale_after`; a node that stopped asking has left it."""
    oldest = now - stale_after
    live = (
        node
        for node in waiting
        if (last := seen.get(node)) is not None and last >= oldest and node not in exclude
    )
    return {node: i for i, node in enumerate(live, 1)}


def places_valid_until(
    found: Mapping[str, int], seen: Mapping[str, datetime], stale_after: timedelta
) -> datetime | None:
    """Until when `found` (the places at some moment) stays the answer as time goes on: until
    the first of its waiters stops counting as asking. None: no waiter, so for ever (a node
    that left comes back only by asking, which writes a new value)."""
    if not found:
        return None
    return min(seen[n] for n in found) + stale_after


def queue(
    waiting: Mapping[str, datetime],
    seen: Mapping[str, datetime],
    now: datetime,
    stale_after: timedelta,
    *,
    exclude: Collection[str] = (),
) -> tuple[Waiter, ...]:
    """The live queue (places), as Waiters."""
    found = places(waiting, seen, now, stale_after, exclude=exclude)
    return tuple(Waiter(node, i, waiting[node], seen[node]) for node, i in found.items())


def mark_due(last: datetime | None, now: datetime, stale_after: timedelta) -> bool:
    """Whether a waiter's last-ask mark must be written now (so it stays in the queue)."""
    return last is None or now - last >= stale_after / MARK_FRACTION

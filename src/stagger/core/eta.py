"""When a rollout is likely to finish: a pure estimate from the nodes still to reboot, the
slots, the pace, the bake of each stage and the measured cycle time (docs/rollout.md, "ETA").

The model: every slot takes the next waiting node as soon as it is free (or its cool-down
ended), and every node's cycle (slot granted to slot released) lasts the median of the recent
measured cycles. Stages run one after the other, each followed by its bake. A generic list of
stages, so a rollout of several stages and a single group (one stage, no bake) use the same
function."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median

from stagger.core.rollout_gate import StageState
from stagger.core.rollout_status import RolloutStatus
from stagger.core.semaphore import Action, Event, Semaphore

# How many of the newest measured cycles the median is taken over.
RECENT_CYCLES = 21


@dataclass(frozen=True)
class StagePlan:
    """One stage (or one group) still to finish: `pending` nodes that wait for a slot, the
    `slots` it may use, when its current holders took theirs, and its pace and bake."""

    pending: int
    slots: int
    holding_since: tuple[datetime, ...] = ()
    cooling_until: tuple[datetime, ...] = ()
    pace: timedelta | None = None
    bake: timedelta = timedelta(0)


def cycle_times(events: Iterable[Event]) -> list[timedelta]:
    """Each measured cycle (a node's grant to its release), oldest first, from history given
    oldest first. A release without its grant in the events is not a measure."""
    granted: dict[tuple[str, str], datetime] = {}
    cycles: list[timedelta] = []
    for e in events:
        key = (e.group, e.id)
        if e.action is Action.ACQUIRED:
            granted[key] = e.time
        elif e.action is Action.RELEASED and key in granted:
            cycles.append(e.time - granted.pop(key))
    return cycles


def typical_cycle(events: Iterable[Event]) -> timedelta | None:
    """The median of the RECENT_CYCLES newest measured cycles; None before the first one."""
    cycles = cycle_times(events)[-RECENT_CYCLES:]
    if not cycles:
        return None
    return timedelta(seconds=median(c.total_seconds() for c in cycles))


def stage_end(stage: StagePlan, cycle: timedelta, start: datetime) -> datetime | None:
    """When the stage's last node finishes if it starts at `start`; None when it never does
    (no slot while nodes wait)."""
    pace = stage.pace or timedelta(0)
    last = start
    free: list[datetime] = []
    for since in sorted(stage.holding_since):
        done = max(since + cycle, start)
        last = max(last, done)
        free.append(done + pace)
    free = sorted(free)[: stage.slots]
    free += sorted(max(t, start) for t in stage.cooling_until)[: max(stage.slots - len(free), 0)]
    free += [start] * max(stage.slots - len(free), 0)
    if stage.pending and not free:
        return None
    heapq.heapify(free)
    for _ in range(stage.pending):
        at = heapq.heappop(free)
        done = at + cycle
        last = max(last, done)
        heapq.heappush(free, done + pace)
    return last


def estimate(stages: Sequence[StagePlan], cycle: timedelta, now: datetime) -> list[datetime | None]:
    """When each stage is done (its last node finished and its bake over), in order; None
    from the first stage that cannot finish on."""
    ends: list[datetime | None] = []
    start: datetime | None = now
    for stage in stages:
        end = stage_end(stage, cycle, start) if start is not None else None
        start = end + stage.bake if end is not None else None
        ends.append(start)
    return ends


@dataclass(frozen=True)
class GroupEta:
    """A group's estimated completion: `completes_at` None when it cannot be estimated
    (`why` says why)."""

    pending: int  # nodes in the queue
    in_progress: int  # holders
    cycle: timedelta | None  # the median measured cycle
    completes_at: datetime | None
    why: str = ""


def group_eta(sem: Semaphore, now: datetime, events: Iterable[Event], paused: bool) -> GroupEta:
    """The estimate for one group (one stage without bake): its queue waits for its slots,
    with its pace. `events` is the group's history, oldest first."""
    holds = sem.live_holds(now)
    waiting = len(sem.queue(now))
    cycle = typical_cycle(events)
    if not holds and not waiting:
        return GroupEta(0, 0, cycle, now, "nothing to do")
    if cycle is None:
        return GroupEta(waiting, len(holds), None, None, "no cycle measured yet")
    if paused:
        return GroupEta(waiting, len(holds), cycle, None, "paused")
    plan = StagePlan(
        pending=waiting,
        slots=sem.slots(now),
        holding_since=tuple(h.since for h in holds),
        cooling_until=tuple(sem.cooling(now)),
        pace=sem.pace,
    )
    (end,) = estimate([plan], cycle, now)
    return GroupEta(waiting, len(holds), cycle, end, "" if end is not None else "max is 0")


def rollout_eta(
    status: RolloutStatus, groups: Mapping[str, Semaphore], events: Iterable[Event], now: datetime
) -> datetime | None:
    """When the rollout is likely complete: its stages not yet done, in order, each with its
    pending nodes, its groups' slots, holders and cool-downs (the slowest pace of its groups)
    and its bake; a baking stage starts the next ones at its bake's end. `events` is history,
    oldest first, for the median cycle. None when it cannot be said (no cycle measured yet, a
    halted stage, or a stage with no slot)."""
    if status.complete:
        return now
    cycle = typical_cycle(events)
    start = now
    plans: list[StagePlan] = []
    for s in status.stages:
        if s.state is StageState.DONE:
            continue
        if s.state is StageState.HALTED:
            return None
        if s.state is StageState.BAKING and not plans:
            start = max(start, s.bake_ends or start)
            continue
        sems = [groups.get(g) or Semaphore(g) for g in s.stage.groups]
        holds = [h for sem in sems for h in sem.live_holds(now)]
        paces = [sem.pace for sem in sems if sem.pace is not None]
        plans.append(
            StagePlan(
                pending=max(s.totals.pending - len(holds), 0),
                slots=sum(sem.slots(now) for sem in sems),
                holding_since=tuple(h.since for h in holds),
                cooling_until=tuple(t for sem in sems for t in sem.cooling(now)),
                pace=max(paces) if paces else None,
                bake=s.stage.bake,
            )
        )
    if not plans:
        return start
    if cycle is None:
        return None
    return estimate(plans, cycle, start)[-1]

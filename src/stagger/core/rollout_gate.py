"""The rollout as a value, and its gate: may a group grant a slot now?

Rules of this file:
- Pure, and below core/semaphore.py (which keeps the rollout in the FLEET record and asks
  `gate` inside every acquire), so it imports nothing of it. Everything else a rollout
  decides (its nodes, its stage ends, its budget) is core/rollout.py's.
- Only stage ends are written (`StageMark`); whether a stage is open, baking or done, and
  when a later stage opens, is derived from them at `now` (`timeline`), so a bake or a
  close_after passing writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from stagger.core.errors import InvalidInput
from stagger.core.times import later

MAX_STAGES = 100
ONE_SECOND = timedelta(seconds=1)


# --- the error budget ---------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """How many halted nodes stop a scope: a count, or a percentage of its nodes."""

    count: int | None = None
    percent: float | None = None

    def limit(self, nodes: int) -> int:
        """The number of halted nodes that stops a scope of `nodes` nodes (a percentage is
        rounded down, and is at least 1)."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return max(1, math.floor(nodes * self.percent / 100))

    def text(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


def parse_budget(value: Any, what: str = "max_failures") -> Budget:
    """A count (1, "3") or a percentage ("5%") of halted nodes; at least 1 node."""
    if isinstance(value, bool):
        value = None
    text = str(value).strip() if value is not None else ""
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if math.isfinite(percent) and 0 < percent <= 100:
                return Budget(percent=percent)
        elif text.isdigit() and 1 <= int(text) <= 1_000_000:
            return Budget(count=int(text))
    except ValueError:
        pass
    raise InvalidInput(
        f"{what} {value!r} is not valid: give a number of halted nodes (like 1) or a "
        'percentage of the nodes (like "5%"), at least one node'
    )


def budget_to_text(budget: Budget | None) -> str | None:
    return budget.text() if budget is not None else None


# --- the rollout value --------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    groups: tuple[str, ...]
    bake: timedelta = timedelta(0)
    # None: the stage waits for every node it knows, however long that takes.
    close_after: timedelta | None = None

    def name(self, index: int) -> str:
        return f"stage {index + 1} ({', '.join(self.groups) or 'no group'})"


# Names of the nodes a close_after left behind that a stage's mark keeps, at most (the first
# by id; the rest are counted): the mark is in the fleet record, which every lock reads.
LEFT_BEHIND_KEPT = 100


@dataclass(frozen=True)
class StageMark:
    """What was written when a stage ended: when its last node finished (`done_at`), when its
    bake ends, and the nodes left behind when close_after closed it first (the first
    LEFT_BEHIND_KEPT of them by id, and how many they were: `behind`)."""

    done_at: datetime
    bake_ends: datetime
    left_behind: tuple[str, ...] = ()
    closed: bool = False
    behind: int = 0  # every node left behind; a mark written before the count: its names

    @classmethod
    def closed_with(cls, at: datetime, behind: Sequence[str]) -> StageMark:
        """The mark of a stage close_after ended at `at`, leaving `behind` (sorted)."""
        return cls(at, at, tuple(behind[:LEFT_BEHIND_KEPT]), closed=True, behind=len(behind))

    @property
    def behind_count(self) -> int:
        return max(self.behind, len(self.left_behind))


@dataclass(frozen=True)
class Rollout:
    stages: tuple[Stage, ...]
    started_at: datetime
    by: str
    max_failures: Budget | None = None
    # Counts the rollouts begun on this store; a group's `finished` list of an older one is
    # ignored (it is dropped at the group's next write).
    generation: int = 1
    marks: tuple[StageMark, ...] = ()
    # The halted nodes that made the rollout pause itself: it pauses again only for a new one.
    tripped_by: tuple[str, ...] = ()

    def stage_of(self, group: str) -> int | None:
        for i, stage in enumerate(self.stages):
            if group in stage.groups:
                return i
        return None

    def groups(self) -> tuple[str, ...]:
        return tuple(g for s in self.stages for g in s.groups)


# --- where the rollout is at `now` ----------------------------------------------------------


class StageState(StrEnum):
    WAITING = "waiting"  # an earlier stage has not ended and baked
    OPEN = "open"  # its nodes may reboot
    BAKING = "baking"  # every node finished; the bake runs
    DONE = "done"
    HALTED = "halted"  # a node of the stage halted (judged from reports, for status)


@dataclass(frozen=True)
class StageTime:
    """When a stage's gate opened (None: not yet) and when it let the next one open."""

    opened_at: datetime | None
    passed_at: datetime | None  # done and baked, or closed by close_after; None: not yet


def timeline(rollout: Rollout, now: datetime) -> tuple[StageTime, ...]:
    """Each stage's opening and passing at `now`, derived from the written marks."""
    times: list[StageTime] = []
    opened: datetime | None = rollout.started_at
    for i, stage in enumerate(rollout.stages):
        if opened is None or opened > now:
            times.append(StageTime(None, None))
            opened = None
            continue
        passed: datetime | None = None
        mark = rollout.marks[i] if i < len(rollout.marks) else None
        if mark is not None:
            passed = mark.bake_ends
        elif stage.close_after is not None:
            closes = later(opened, stage.close_after)
            passed = closes if closes <= now else None
        if passed is not None and passed > now:
            passed = None
        times.append(StageTime(opened, passed))
        opened = passed
    return tuple(times)


def complete(rollout: Rollout, now: datetime) -> bool:
    """Every stage done and baked (or closed) at `now`."""
    return all(t.passed_at is not None for t in timeline(rollout, now))


@dataclass(frozen=True)
class Waiting:
    """Why a group's grant waits: the stage that must end first (index), and when its bake
    ends when it is baking. `restart`: the rollout was complete, so this ask begins a new one
    (a write the store does, then it asks again)."""

    stage: int
    name: str
    bake_ends: datetime | None = None
    restart: bool = False


def gate(rollout: Rollout | None, group: str, now: datetime) -> Waiting | None:
    """May `group` grant a slot at `now`? None: yes (groups in no stage are never held back);
    else what it waits for."""
    if rollout is None:
        return None
    index = rollout.stage_of(group)
    if index is None:
        return None
    times = timeline(rollout, now)
    if all(t.passed_at is not None for t in times):
        return Waiting(0, rollout.stages[0].name(0), restart=True)
    for j in range(index):
        if times[j].passed_at is None:
            mark = rollout.marks[j] if j < len(rollout.marks) else None
            bake = mark.bake_ends if mark is not None and mark.bake_ends > now else None
            return Waiting(j, rollout.stages[j].name(j), bake)
    return None

"""Where a rollout is at `now` (`status`: what `GET /v1/rollout`, `stagger rollout status` and
the dashboard show): each stage's state, its nodes done, pending, halted and left behind,
named up to a bound and counted in full (docs/rollout.md, "What is read"). Pure; judged by
core/rollout.py's `stage_views`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from stagger.core.rollout import StageView, stage_views
from stagger.core.rollout_gate import Rollout, Stage, StageMark, StageState, StageTime, timeline
from stagger.core.rollout_reads import Reports
from stagger.core.semaphore import Semaphore

# Nodes a rollout's status names in each list of a stage (done, pending, halted, left
# behind), at most: the rest are counted (StageTotals), so `GET /v1/rollout` stays small at
# any fleet size (docs/rollout.md, "What is read").
MAX_STAGE_NAMES = 100


def _left_behind(
    mark: StageMark | None, view: StageView, t: StageTime
) -> tuple[tuple[str, ...], int]:
    """The nodes a close_after left behind (the first of them by id), and how many: as
    written, or (closed by time and not written yet) the stage's nodes not done."""
    if mark is not None:
        return mark.left_behind, mark.behind_count
    if t.passed_at is not None:
        behind = view.not_done
        return behind, len(behind)
    return (), 0


@dataclass(frozen=True)
class StageTotals:
    """How many nodes each list of a stage has (its status names at most MAX_STAGE_NAMES)."""

    done: int = 0
    pending: int = 0
    halted: int = 0
    left_behind: int = 0


@dataclass(frozen=True)
class StageStatus:
    """A stage at `now`: its lists name at most `status`'s bound of nodes each, in order
    (`done` names only nodes the read named: those its groups' records name, or that need a
    reboot or are in their cycle; GroupNodes), and `totals` counts them all."""

    index: int
    stage: Stage
    state: StageState
    done: tuple[str, ...]
    pending: tuple[str, ...]
    halted: tuple[str, ...]
    opened_at: datetime | None
    bake_ends: datetime | None
    left_behind: tuple[str, ...]
    totals: StageTotals


@dataclass(frozen=True)
class RolloutStatus:
    rollout: Rollout
    now: datetime
    stages: tuple[StageStatus, ...] = field(default_factory=tuple)
    complete: bool = False
    # Hook for the fleet ETA (docs/rollout.md): None until an estimate is computed.
    eta: datetime | None = None


def status(
    rollout: Rollout,
    groups: Mapping[str, Semaphore],
    reports: Reports,
    now: datetime,
    names: int = MAX_STAGE_NAMES,
) -> RolloutStatus:
    """Where the rollout is at `now`: each stage's lists name at most `names` nodes, and
    count them all (StageTotals). Its stages name every node done only when `reports` does
    (every report, or GroupNodes naming every node at rest); the counts are the same either
    way."""
    views = stage_views(rollout, groups, reports, now)
    times = timeline(rollout, now)
    out: list[StageStatus] = []
    for i, (stage, view, t) in enumerate(zip(rollout.stages, views, times, strict=True)):
        mark = rollout.marks[i] if i < len(rollout.marks) else None
        if t.opened_at is None:
            state = StageState.WAITING
        elif view.halted and t.passed_at is None:
            state = StageState.HALTED
        elif t.passed_at is not None:
            state = StageState.DONE
        elif mark is not None:
            state = StageState.BAKING
        else:
            state = StageState.OPEN
        bake_ends = mark.bake_ends if mark is not None and state is StageState.BAKING else None
        behind, left = _left_behind(mark, view, t)
        totals = StageTotals(view.done_count, len(view.pending), len(view.halted), left)
        out.append(
            StageStatus(
                i,
                stage,
                state,
                view.done[:names],
                view.pending[:names],
                view.halted[:names],
                t.opened_at,
                bake_ends,
                behind[:names],
                totals,
            )
        )
    return RolloutStatus(rollout, now, tuple(out), all(t.passed_at for t in times), eta=None)

"""A fleet with every node state and group records naming its nodes every way a rollout reads
them, to prove that judging a rollout from the store's summary reads (GroupNodes) decides what
judging it from every report does (core/rollout.py, docs/rollout.md "What is read")."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stagger.core import rollout as r
from stagger.core import rollout_reads as reads
from stagger.core import rollout_status as rs
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Budget, Rollout, Stage, StageMark
from stagger.core.semaphore import Hold, Semaphore

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
GROUPS = ("canary", "web", "api")
OTHER = "db"  # reports in a group of no stage: never judged
STAGES = (Stage(("canary",), bake=30 * M), Stage(("web", "api"), close_after=60 * M))


def fleet(rng: random.Random) -> list[NodeReport]:
    """Every state, with and without needed_since, in every group (and one other), reported
    at times around T0 (the rollout's start), plus idle nodes at rest."""
    out: list[NodeReport] = []
    for group in (*GROUPS, OTHER):
        for state in State:
            for needed in (None, T0 - 90 * M):
                at = T0 + rng.randint(-30, 30) * M
                name = f"{group}-{state.value}-{'n' if needed else 'r'}"
                out.append(NodeReport(name, group, state, needed_since=needed, updated_at=at))
        for i in range(6):
            at = T0 + rng.randint(-30, 30) * M
            out.append(NodeReport(f"{group}-rest-{i}", group, State.IDLE, updated_at=at))
    return out


def record(rng: random.Random, group: str, ids: Sequence[str], now: datetime) -> Semaphore:
    """A group record naming some of `ids` (reported or not, of any group) as finished
    before or after T0, gated, queued or holding (some of them stale)."""

    def some(k: int) -> list[str]:
        return rng.sample(list(ids), min(k, len(ids)))

    def when() -> datetime:
        return T0 + rng.randint(-40, 40) * M

    holds = {n: Hold(n, when(), now - rng.choice([1, 100]) * M) for n in some(rng.randint(0, 3))}
    waiting = {n: when() for n in some(rng.randint(0, 3)) if n not in holds}
    return Semaphore(
        group,
        max=5,
        holds=holds,
        stale_after=30 * M,
        finished={n: when() for n in some(rng.randint(0, 8))},
        gated={n: when() for n in some(rng.randint(0, 4))},
        waiting=waiting,
        seen={n: now - M for n in waiting},
        max_failures=rng.choice([None, Budget(1), Budget(2), Budget(None, 20)]),
    )


@dataclass(frozen=True)
class Case:
    rollout: Rollout
    groups: dict[str, Semaphore]
    now: datetime


def case(rng: random.Random, reports: Sequence[NodeReport]) -> Case:
    ids = [x.id for x in reports] + [f"gone-{i}" for i in range(4)]  # unreported ids too
    now = T0 + rng.randint(0, 90) * M
    marks = rng.choice([(), (StageMark(T0 + 5 * M, T0 + 35 * M),)])
    budget = rng.choice([None, Budget(1), Budget(3), Budget(None, 10)])
    rollout = Rollout(STAGES, T0, "operator:a", budget, marks=marks)
    return Case(rollout, {g: record(rng, g, ids, now) for g in GROUPS}, now)


def named(c: Case) -> dict[str, frozenset[str]]:
    """What advance_rollout asks the store for (judged_reads), every staged group included
    (a case's rollout may have ended its stages: then only the groups with a budget are)."""
    asked = reads.judged_reads(c.rollout, c.groups)
    return {g: asked.get(g, reads.record_ids(sem)) for g, sem in c.groups.items()}


def summary_read(
    reports: Sequence[NodeReport], ids: Mapping[str, frozenset[str] | None]
) -> dict[str, reads.GroupNodes]:
    """What a store's summary read gives (pure): the busy reports, the idle ids asked for,
    and the count of idle reports, per group."""
    out: dict[str, reads.GroupNodes] = {}
    for group, wanted in ids.items():
        mine = [x for x in reports if x.group == group]
        idle = [x.id for x in mine if x.state is State.IDLE]
        found = idle if wanted is None else [n for n in idle if n in wanted]
        busy = [x for x in mine if reads.needs_reboot(x)]
        out[group] = reads.GroupNodes.read(busy, found, len(idle))
    return out


def judgments(c: Case, reports: reads.Reports) -> tuple[object, ...]:
    """Every decision and count judged from `reports`: the stage views (done counted), what
    advance writes, the status's stages, and each group's budget."""
    views = r.stage_views(c.rollout, c.groups, reports, c.now)
    counted = tuple((v.done_count, v.pending, v.halted, v.last_finished) for v in views)
    budgets = tuple(r.group_budget(s, c.rollout, reports, c.now) for s in c.groups.values())
    unscoped = tuple(r.group_budget(s, None, reports, c.now) for s in c.groups.values())
    return counted, r.advance(c.rollout, views, c.now), budgets, unscoped


def listed(c: Case, reports: reads.Reports, names: int = 10**9) -> tuple[rs.StageStatus, ...]:
    """The status's stages, each list named up to `names` (by default whole: every done
    node named when `reports` names it)."""
    return rs.status(c.rollout, c.groups, reports, c.now, names).stages


def whole(s: rs.StageStatus) -> rs.StageTotals:
    """The totals a stage whose every list is whole has: its lists' lengths."""
    return rs.StageTotals(len(s.done), len(s.pending), len(s.halted), len(s.left_behind))


def cut_from(every: Sequence[rs.StageStatus], read: Sequence[rs.StageStatus], names: int) -> None:
    """`read` (a status read as the store reads it, lists cut at `names`) counts what `every`
    (whole lists, every report) names, and names its first ones: all but done, of which it
    names only the nodes the read named."""
    assert len(read) == len(every)
    for w, s in zip(every, read, strict=True):
        assert (s.state, s.totals) == (w.state, whole(w))
        assert (s.pending, s.halted, s.left_behind) == (
            w.pending[:names],
            w.halted[:names],
            w.left_behind[:names],
        )
        assert set(s.done) <= set(w.done)
        assert len(s.done) <= names
        assert list(s.done) == sorted(s.done)

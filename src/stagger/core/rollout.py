"""A rollout: ordered stages of groups, each baked before the next opens, and an error budget.

Rules of this file:
- Pure: values in, values out; time comes in as `now`. The rollout is kept in the FLEET record
  (core.semaphore.FLEET), which every acquire reads in its own transaction, so the gate
  (`gate`) is judged on the same value a grant is written against.
- Only stage ends are written (`StageMark`); whether a stage is open, baking or done, and when
  a later stage opens, is derived from them at `now` (`timeline`), so a bake or a
  close_after passing writes nothing.
- Who is done is judged from what the store already holds (`judge_nodes`): agents' reports,
  the group's holds, and the nodes that gave their slot back (`finished`, kept in each
  group's record by the release that ends a cycle). See docs/rollout.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from stagger.core.cycle.node_state import State
from stagger.core.durations import (
    check_duration,
    format_duration,
    is_bare_number,
    parse_duration,
)
from stagger.core.errors import InvalidInput
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import (
    MAX_STAGES,
    ONE_SECOND,
    Budget,
    Rollout,
    Stage,
    StageMark,
    complete,
    parse_budget,
    timeline,
)
from stagger.core.rollout_reads import GroupNodes, Reports, group_nodes, needs_reboot, of_group
from stagger.core.semaphore import FLEET, Action, Event, Semaphore, validate_group
from stagger.core.times import later

# Nodes named in one event or one left-behind list, at most (the rest are counted).
MAX_NAMED = 20


def check_stages(stages: Sequence[Stage]) -> tuple[Stage, ...]:
    if not stages:
        raise InvalidInput("a rollout needs at least one stage ([[rollout.stage]] groups = [...])")
    if len(stages) > MAX_STAGES:
        raise InvalidInput(f"a rollout has at most {MAX_STAGES} stages, not {len(stages)}")
    seen: dict[str, int] = {}
    for i, stage in enumerate(stages):
        for group in stage.groups:
            validate_group(group)
            if group in seen:
                raise InvalidInput(
                    f"group {group!r} is in stage {seen[group] + 1} and stage {i + 1}: "
                    "a group belongs to one stage only"
                )
            seen[group] = i
        for what, value in (("bake", stage.bake), ("close_after", stage.close_after)):
            if value is not None:
                check_duration(value, what)
                if value < timedelta(0):
                    raise InvalidInput(f"stage {i + 1}: {what} cannot be negative")
        if stage.close_after is not None and stage.close_after < ONE_SECOND:
            raise InvalidInput(f"stage {i + 1}: close_after must be at least 1s")
    return tuple(stages)


def _duration(value: Any, what: str) -> timedelta:
    """A duration as the config writes one: a string with a unit ("30m"); a bare number is
    refused (seconds or minutes?)."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or is_bare_number(value):
        raise InvalidInput(
            f"{what} {value!r} is not a duration with a unit: write it like '30m' or '90s'"
        )
    return parse_duration(value, what=what)


def plan_from_table(table: Mapping[str, Any]) -> tuple[tuple[Stage, ...], Budget | None]:
    """The stages and budget of a `[rollout]` TOML table (docs/rollout.md)."""
    if not isinstance(table, Mapping):
        raise InvalidInput("[rollout] must be a table")
    unknown = sorted(set(table) - {"stage", "max_failures"})
    if unknown:
        raise InvalidInput(
            f"[rollout] does not take {', '.join(unknown)}: it takes max_failures and "
            "[[rollout.stage]] tables"
        )
    raw = table.get("stage", [])
    if not isinstance(raw, list):
        raise InvalidInput("rollout.stage must be a list of tables ([[rollout.stage]])")
    stages: list[Stage] = []
    for i, doc in enumerate(raw, start=1):
        if not isinstance(doc, Mapping):
            raise InvalidInput(f"stage {i} must be a table with groups = [...]")
        extra = sorted(set(doc) - {"groups", "bake", "close_after"})
        if extra:
            raise InvalidInput(
                f"stage {i} does not take {', '.join(extra)}: it takes groups, bake and close_after"
            )
        groups = doc.get("groups")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise InvalidInput(f'stage {i}: groups must be a list of group names, like ["web"]')
        bake = _duration(doc.get("bake", "0s"), f"stage {i} bake")
        close = doc.get("close_after")
        close_after = _duration(close, f"stage {i} close_after") if close is not None else None
        stages.append(Stage(tuple(groups), bake, close_after))
    budget = table.get("max_failures")
    return check_stages(stages), (parse_budget(budget) if budget is not None else None)


# --- changes ------------------------------------------------------------------------------


def begin(
    fleet: Semaphore,
    stages: Sequence[Stage],
    budget: Budget | None,
    now: datetime,
    *,
    by: str,
) -> tuple[Semaphore, tuple[Event, ...]]:
    """A new rollout in the FLEET record (`rollout set`): every stage starts again."""
    stages = check_stages(stages)
    old = fleet.rollout
    generation = old.generation + 1 if old is not None else 1
    new = Rollout(tuple(stages), now, by, budget, generation)
    detail = f"{len(stages)} stage(s): " + "; ".join(
        f"{', '.join(s.groups) or '-'} (bake {format_duration(s.bake)})" for s in stages
    )
    if budget is not None:
        detail += f"; max_failures {budget.text()}"
    event = Event(now, FLEET, Action.ROLLOUT_SET, by, detail=detail)
    return replace(fleet, rollout=new), (event,)


def restart(fleet: Semaphore, now: datetime, *, by: str) -> tuple[Semaphore, tuple[Event, ...]]:
    """A node asked after the rollout was complete: the same stages begin again. Nothing
    changes when the rollout is not complete (another process restarted it first)."""
    old = fleet.rollout
    if old is None or not complete(old, now):
        return fleet, ()
    new = Rollout(old.stages, now, "stagger", old.max_failures, old.generation + 1)
    event = Event(now, FLEET, Action.ROLLOUT_SET, "stagger", detail=f"a new rollout: {by} asked")
    return replace(fleet, rollout=new), (event,)


def clear(fleet: Semaphore, now: datetime, *, by: str) -> tuple[Semaphore, tuple[Event, ...]]:
    if fleet.rollout is None:
        return fleet, ()
    return replace(fleet, rollout=None), (Event(now, FLEET, Action.ROLLOUT_CLEARED, by),)


# --- judging the nodes ----------------------------------------------------------------------


class NodeState(StrEnum):
    DONE = "done"
    PENDING = "pending"
    HALTED = "halted"


@dataclass(frozen=True)
class Judged:
    state: NodeState
    finished_at: datetime | None = None  # when it finished a cycle in this rollout


def judge_nodes(
    rollout: Rollout,
    sem: Semaphore,
    reports: Iterable[NodeReport],
    now: datetime,
) -> dict[str, Judged]:
    """Every node known in `sem`'s group, judged for this rollout (`judge_group`)."""
    return judge_group(rollout, sem, group_nodes(sem.group, reports), now)[0]


def judge_group(
    rollout: Rollout, sem: Semaphore, nodes: GroupNodes, now: datetime
) -> tuple[dict[str, Judged], int]:
    """Every node known in `sem`'s group, judged for this rollout: halted (its report says
    HALTED, or it holds a slot past stale_after), pending (it holds a slot, its report says
    it needs a reboot, or, reporting nothing, it last gave a slot back before this rollout),
    or done (it gave its slot back in this rollout, or reports no need). Also how many more
    nodes are done: at rest, and not named (`GroupNodes`)."""
    finished = {k: t for k, t in sem.finished.items() if t >= rollout.started_at}
    out: dict[str, Judged] = {}
    for r in nodes.busy:
        if r.group != sem.group:
            continue
        done_at = finished.get(r.id)
        if r.state is State.HALTED:
            out[r.id] = Judged(NodeState.HALTED)
        elif needs_reboot(r) and not (
            done_at is not None and r.updated_at is not None and done_at >= r.updated_at
        ):
            out[r.id] = Judged(NodeState.PENDING)
        else:
            out[r.id] = Judged(NodeState.DONE, done_at)
    resting = nodes.resting - out.keys()  # a read racing a report may name a node twice
    for node_id in resting:
        out[node_id] = Judged(NodeState.DONE, finished.get(node_id))
    unnamed = max(nodes.at_rest - len(resting), 0)
    for node_id, at in sem.finished.items():
        if node_id not in out:
            # Finished before this rollout began: a member (a FleetLock client, which cannot
            # say it needs no reboot) that this rollout waits for until it finishes again.
            state = NodeState.DONE if at >= rollout.started_at else NodeState.PENDING
            out[node_id] = Judged(state, at if state is NodeState.DONE else None)
    # Asked in this rollout and not finished since: refused by the gate (`gated`), or queued
    # for a slot of an open stage (the fair queue; a FleetLock client says nothing else).
    asked_for = {**sem.gated, **{w.id: w.first_asked for w in sem.queue(now)}}
    for node_id, asked in asked_for.items():
        seen = out.get(node_id)
        if asked < rollout.started_at or (seen is not None and seen.state is not NodeState.DONE):
            continue
        if seen is None or seen.finished_at is None or seen.finished_at < asked:
            # Denied in this rollout and not finished since: it needs a reboot.
            out[node_id] = Judged(NodeState.PENDING)
    for hold in sem.live_holds(now):
        if hold.is_stale(now, sem.stale_after):
            # A holder silent past stale_after (a FleetLock client that never came back).
            out[hold.id] = Judged(NodeState.HALTED)
        elif out.get(hold.id, Judged(NodeState.DONE)).state is not NodeState.HALTED:
            out[hold.id] = Judged(NodeState.PENDING)
    return out, unnamed


@dataclass(frozen=True)
class StageView:
    """A stage's nodes at `now`, by state."""

    done: tuple[str, ...]
    pending: tuple[str, ...]
    halted: tuple[str, ...]
    last_finished: datetime | None
    more_done: int = 0  # done nodes counted and not named (GroupNodes)

    @property
    def done_count(self) -> int:
        return len(self.done) + self.more_done

    @property
    def not_done(self) -> tuple[str, ...]:
        """Its pending and halted nodes, by id: what a close_after leaves behind."""
        return tuple(sorted({*self.pending, *self.halted}))


def stage_views(
    rollout: Rollout,
    groups: Mapping[str, Semaphore],
    reports: Reports,
    now: datetime,
) -> tuple[StageView, ...]:
    """Each stage's nodes, judged from its groups' records (absent: never written) and
    the reports: every report, or what the store read of each group (GroupNodes)."""
    views: list[StageView] = []
    for stage in rollout.stages:
        judged: dict[str, Judged] = {}
        more = 0
        for group in stage.groups:
            sem = groups.get(group) or Semaphore(group, stored=False)
            found, unnamed = judge_group(rollout, sem, of_group(reports, group), now)
            judged.update(found)
            more += unnamed
        by_state = {
            s: tuple(sorted(k for k, j in judged.items() if j.state is s)) for s in NodeState
        }
        times = [j.finished_at for j in judged.values() if j.finished_at is not None]
        views.append(
            StageView(
                by_state[NodeState.DONE],
                by_state[NodeState.PENDING],
                by_state[NodeState.HALTED],
                max(times) if times else None,
                more,
            )
        )
    return tuple(views)


def _names(nodes: Sequence[str]) -> str:
    shown = ", ".join(nodes[:MAX_NAMED])
    more = len(nodes) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class Advanced:
    """What `advance` decided: the new rollout (None: nothing to write), its events, and the
    pause the budget asks for (None: none)."""

    rollout: Rollout | None
    events: tuple[Event, ...] = ()
    halt_reason: str | None = None


def advance(rollout: Rollout, views: Sequence[StageView], now: datetime) -> Advanced:
    """The stage ends and the budget, judged at `now` from `views` (stage_views): an open
    stage whose every known node is done and none halted ends now (its bake runs from its
    last node's finish); one whose close_after has passed ends with the rest left behind.
    When the rollout's halted nodes reach max_failures, it asks for a pause (once per new
    halted node)."""
    marks = list(rollout.marks)
    events: list[Event] = []
    changed = False
    while len(marks) < len(rollout.stages):
        i = len(marks)
        current = replace(rollout, marks=tuple(marks))
        opened = timeline(current, now)[i].opened_at
        if opened is None:
            break
        stage, view = rollout.stages[i], views[i]
        name = stage.name(i)
        if not view.pending and not view.halted:
            finished = view.last_finished
            done_at = max(finished, opened) if finished is not None else opened
            # No node rebooted (none needed one): nothing to bake.
            bake_ends = later(done_at, stage.bake) if finished is not None else done_at
            marks.append(StageMark(done_at, bake_ends))
            bake = f"; bake until {bake_ends.isoformat()}" if bake_ends > done_at else ""
            detail = f"{name}: {view.done_count} node(s) done{bake}"
            events.append(Event(now, FLEET, Action.STAGE_DONE, "stagger", detail=detail))
            changed = True
            continue
        if stage.close_after is not None and later(opened, stage.close_after) <= now:
            closes = later(opened, stage.close_after)
            behind = view.not_done
            marks.append(StageMark.closed_with(closes, behind))
            detail = (
                f"{name} closed after {format_duration(stage.close_after)}; "
                f"{len(behind)} node(s) left behind: {_names(behind)}"
            )
            events.append(Event(now, FLEET, Action.STAGE_DONE, "stagger", detail=detail))
            changed = True
            continue
        break
    tripped = rollout.tripped_by
    halt: str | None = None
    if rollout.max_failures is not None:
        halted = tuple(sorted({n for v in views for n in v.halted}))
        total = sum(v.done_count + len(v.pending) + len(v.halted) for v in views)
        limit = rollout.max_failures.limit(total)
        if len(halted) >= limit and set(halted) - set(tripped):
            halt = (
                f"the rollout halted: {len(halted)} node(s) failed (max_failures "
                f"{rollout.max_failures.text()}): {_names(halted)}; fix them, then "
                "`stagger resume`"
            )
            tripped = halted
            events.append(Event(now, FLEET, Action.ROLLOUT_HALTED, "stagger", detail=halt))
            changed = True
    if not changed:
        return Advanced(None)
    return Advanced(replace(rollout, marks=tuple(marks), tripped_by=tripped), tuple(events), halt)


def group_budget(
    sem: Semaphore, rollout: Rollout | None, reports: Reports, now: datetime
) -> tuple[str, ...] | None:
    """The halted nodes of a group that has a max_failures and reached it with a node not
    yet counted (`budget_tripped`), else None. Judged for the rollout when one is set, else
    over the group's known nodes."""
    if sem.max_failures is None:
        return None
    scope = rollout or Rollout((), datetime.min.replace(tzinfo=now.tzinfo), "", generation=0)
    judged, unnamed = judge_group(scope, sem, of_group(reports, sem.group), now)
    halted = tuple(sorted(k for k, j in judged.items() if j.state is NodeState.HALTED))
    if len(halted) < sem.max_failures.limit(len(judged) + unnamed):
        return None
    if not set(halted) - set(sem.budget_tripped):
        return None
    return halted


def set_max_failures(
    sem: Semaphore, budget: Budget | None, now: datetime, *, by: str
) -> tuple[Semaphore, tuple[Event, ...]]:
    """A group's own error budget (None: none). Setting it again writes nothing."""
    if budget == sem.max_failures and sem.stored:
        return sem, ()
    detail = f"max_failures {budget.text() if budget is not None else 'none'}"
    event = Event(now, sem.group, Action.CONFIGURED, by, detail=detail)
    return replace(sem, max_failures=budget, budget_tripped=()), (event,)


def group_halt_reason(sem: Semaphore, halted: Sequence[str]) -> str:
    assert sem.max_failures is not None
    return (
        f"group {sem.group} halted: {len(halted)} node(s) failed (max_failures "
        f"{sem.max_failures.text()}): {_names(halted)}; fix them, then "
        f"`stagger resume --group {sem.group}`"
    )

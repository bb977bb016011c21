"""The fleet view: which nodes exist and where each one is in its cycle, built from the node
reports, the holds and the history, and what a hold says about its node.

Rules of this file:
- Pure: the server, the dashboard and the CLI call `fleet_nodes` with what they read and the
  backend's `now`.
- A stagger agent reports itself (`NodeReport`); a FleetLock-only client (Zincati, Flatcar)
  never does, so it is known from its lock activity alone: the holds and the history.
- A forgotten node is not shown again from its older lock activity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from stagger.core.cycle.node_state import State
from stagger.core.node_report import DEFAULT_SILENT_AFTER, NodeReport
from stagger.core.semaphore import Action, Event, Hold, Pause


class Source(StrEnum):
    REPORT = "report"  # a stagger agent's own report
    LOCKS = "locks"  # known from lock activity only (Zincati, Flatcar, any FleetLock client)


# The words a node shown from its locks alone is in (a FleetLock client says nothing more).
HOLDING = "holding"  # holds a slot now: rebooting, or not yet back to steady state
SEEN = "seen"  # released its slot (or never held one that is still kept)

# Cycle states in which a node that needed a reboot is on its way through it.
IN_PROGRESS = frozenset(
    {
        State.ACQUIRING,
        State.DRAINING,
        State.REBOOTING,
        State.VERIFYING,
        State.RELEASING,
        State.ABORTING,
    }
)


@dataclass(frozen=True)
class NodeView:
    """One row of the fleet view: a reported node, or one known from its locks."""

    id: str
    group: str
    state: str  # a machine State's value, or HOLDING / SEEN for lock-only nodes
    source: Source
    silent: bool = False
    holds_slot: bool = False
    report: NodeReport | None = None
    last_lock_activity: datetime | None = None
    last_released: datetime | None = None
    pause: Pause | None = None  # the node's own pause in force (stagger pause --node)

    @property
    def needed_since(self) -> datetime | None:
        return self.report.needed_since if self.report is not None else None

    @property
    def last_reboot(self) -> datetime | None:
        if self.report is not None:
            return self.report.last_reboot
        return self.last_released  # a FleetLock client releases once it is back up


def fleet_nodes(
    reports: Iterable[NodeReport],
    holds: Mapping[str, Iterable[Hold]],
    history: Iterable[Event],
    now: datetime,
    silent_after: timedelta = DEFAULT_SILENT_AFTER,
    node_pauses: Mapping[str, Pause] | None = None,
) -> list[NodeView]:
    """Every node the store knows of, sorted by group then id. `holds` maps each group to its
    live holds; `history` is any slice of the events (newest first or not). A node that
    reports is shown from its report; any other id that held or asked for a slot is shown
    from its lock activity. Operator actions on an id (`by` another) count as its activity
    too, since the id is still a node's. Lock activity up to the moment an id was forgotten
    is not: a forgotten node shows again only when it holds a slot or locks again.
    `node_pauses` (the node pauses in force, by id) marks each paused node's row."""
    holding = {(g, h.id) for g, hs in holds.items() for h in hs}
    views: dict[tuple[str, str], NodeView] = {}
    reported: set[str] = set()
    for r in reports:
        reported.add(r.id)
        views[(r.group, r.id)] = NodeView(
            id=r.id,
            group=r.group,
            state=r.state.value,
            source=Source.REPORT,
            silent=r.is_silent(now, silent_after),
            holds_slot=(r.group, r.id) in holding,
            report=r,
        )
    history = list(history)
    forgot: dict[str, datetime] = {}
    for e in history:
        if e.action is Action.FORGOTTEN and e.id:
            forgot[e.id] = max(forgot.get(e.id, e.time), e.time)
    activity: dict[tuple[str, str], datetime] = {}
    released: dict[tuple[str, str], datetime] = {}
    for e in history:
        if e.action not in (Action.ACQUIRED, Action.RELEASED, Action.EXPIRED) or not e.id:
            continue
        if e.id in forgot and e.time <= forgot[e.id]:
            continue
        key = (e.group, e.id)
        activity[key] = max(activity.get(key, e.time), e.time)
        if e.action is Action.RELEASED:
            released[key] = max(released.get(key, e.time), e.time)
    for key in holding | set(activity):
        group, node_id = key
        if node_id in reported:
            continue
        views[key] = NodeView(
            id=node_id,
            group=group,
            state=HOLDING if key in holding else SEEN,
            source=Source.LOCKS,
            holds_slot=key in holding,
            last_lock_activity=activity.get(key),
            last_released=released.get(key),
        )
    paused = node_pauses or {}
    return [
        replace(views[k], pause=paused[k[1]]) if k[1] in paused else views[k] for k in sorted(views)
    ]


# --- what a hold says about its node -----------------------------------------------------------


class HoldCondition(StrEnum):
    """What a hold's row says about its node, worst first (the order of HOLD_MARKS)."""

    HALTED = "halted"  # the node reports its health check failed after the reboot
    STALE = "stale"  # no heartbeat for longer than the group's stale_after
    OK = "ok"


# Which node report states mark a hold, beyond its own staleness.
HOLD_MARKS: Mapping[State, HoldCondition] = {State.HALTED: HoldCondition.HALTED}


def hold_conditions(
    group: str, hold_id: str, stale: bool, reports: Mapping[str, NodeReport]
) -> tuple[HoldCondition, ...]:
    """Every condition of the hold of `hold_id` in `group`, worst first; (OK,) when none.
    `reports` maps node ids to their last report; one that names another group says nothing
    about this hold. The status table, the API and the dashboard all show these, so a halted
    holder never reads `ok` anywhere while its node row says halted."""
    found: list[HoldCondition] = []
    report = reports.get(hold_id)
    if report is not None and report.group == group and report.state in HOLD_MARKS:
        found.append(HOLD_MARKS[report.state])
    if stale:
        found.append(HoldCondition.STALE)
    return tuple(found) or (HoldCondition.OK,)

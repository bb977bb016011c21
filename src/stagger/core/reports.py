"""Node reports and the fleet view built from them: which nodes exist, where each one is in
its cycle, and how far the current rollout of each group has come.

Rules of this file:
- Pure: values in, values out. The backends store NodeReports, the server and the dashboard
  call `fleet_nodes` and `rollout` with what they read and the backend's `now`.
- A stagger agent reports itself (`NodeReport`); a FleetLock-only client (Zincati, Flatcar)
  never does, so it is known from its lock activity alone: the holds and the history.
- Silence is judged by the backend's clock (`updated_at` is stamped by the backend that
  stored the report, never by the node), like hold expiry.
- One report a backend cannot read (a newer agent's state, a damaged value) leaves out that
  node only (`decode_reports`), never the whole fleet view.
- Forgetting a node (`check_forget`, `forgotten`) removes its report; the fleet view then no
  longer shows it from its older lock activity either (`fleet_nodes`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from stagger.core.cycle.node_state import CheckResult, NodeState, State
from stagger.core.errors import StaggerError
from stagger.core.semaphore import Action, Event, Hold, Pause, validate_group, validate_id
from stagger.core.times import check_instant

DEFAULT_SILENT_AFTER = timedelta(minutes=15)
# The agent publishes at every transition and at least this often (the issue: 5 minutes).
REPORT_INTERVAL = timedelta(minutes=5)
MAX_TEXT = 1000  # reason, detector and health detail are cut to this many characters


@dataclass(frozen=True)
class NodeReport:
    """What a stagger agent publishes about itself. `updated_at` is the storing backend's
    time of the last report."""

    id: str
    group: str
    state: State
    reason: str = ""
    needed_since: datetime | None = None
    detector: str = ""
    next_window: datetime | None = None  # the next opening of a reboot window, if known
    last_reboot: datetime | None = None
    last_health: CheckResult | None = None
    version: str = ""
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        validate_id(self.id)
        validate_group(self.group)
        # One time no reader can show must not break the fleet view: refused when sent, and
        # a stored one makes this report unreadable (decode_reports), never the whole view.
        for name in ("needed_since", "next_window", "last_reboot", "updated_at"):
            value = getattr(self, name)
            if value is not None:
                check_instant(value, name)
        if self.last_health is not None:
            check_instant(self.last_health.at, "last_health.at")

    @classmethod
    def of(
        cls,
        node_id: str,
        group: str,
        state: NodeState,
        *,
        version: str,
        next_window: datetime | None = None,
    ) -> NodeReport:
        """The report of an agent whose saved state is `state`."""
        need = state.needed
        return cls(
            id=node_id,
            group=group,
            state=state.cycle,
            reason=state.reason[:MAX_TEXT],
            needed_since=need.since if need is not None else None,
            detector=need.detector[:MAX_TEXT] if need is not None else "",
            next_window=next_window,
            last_reboot=state.last_reboot,
            last_health=state.last_health,
            version=version,
        )

    def stamped(self, now: datetime) -> NodeReport:
        return replace(self, updated_at=now)

    def is_silent(self, now: datetime, silent_after: timedelta) -> bool:
        return self.updated_at is None or now - self.updated_at > silent_after

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (times as RFC 3339): the stored form in every backend."""
        health = self.last_health
        return {
            "version_format": 1,
            "id": self.id,
            "group": self.group,
            "state": self.state.value,
            "reason": self.reason,
            "needed_since": _ts(self.needed_since),
            "detector": self.detector,
            "next_window": _ts(self.next_window),
            "last_reboot": _ts(self.last_reboot),
            "last_health": (
                None
                if health is None
                else {"ok": health.ok, "detail": health.detail, "at": health.at.isoformat()}
            ),
            "version": self.version,
            "updated_at": _ts(self.updated_at),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> NodeReport:
        """The inverse of to_dict. Raises ValueError/KeyError/TypeError on a broken document;
        a state this stagger does not know (a newer agent's) raises ValueError too."""
        h = doc.get("last_health")
        return cls(
            id=doc["id"],
            group=doc["group"],
            state=State(doc["state"]),
            reason=str(doc.get("reason", "")),
            needed_since=_dt(doc.get("needed_since")),
            detector=str(doc.get("detector", "")),
            next_window=_dt(doc.get("next_window")),
            last_reboot=_dt(doc.get("last_reboot")),
            last_health=(
                None
                if not h
                else CheckResult(bool(h["ok"]), str(h["detail"]), datetime.fromisoformat(h["at"]))
            ),
            version=str(doc.get("version", "")),
            updated_at=_dt(doc.get("updated_at")),
        )


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- reading stored reports, one at a time ----------------------------------------------------


@dataclass(frozen=True)
class Unreadable:
    """A stored report this stagger cannot read: where it is (`key`: the node id in SQLite,
    the key in etcd) and why (`error`)."""

    key: str
    error: str


@dataclass(frozen=True)
class StoredReports:
    """What a backend holds: the reports it could read, and the ones it could not."""

    reports: tuple[NodeReport, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()


def decode_reports(stored: Iterable[tuple[str, str | bytes]]) -> StoredReports:
    """Each (key, stored JSON) as a NodeReport, in the given order; one that cannot be read
    (broken JSON, a missing field, a state a newer agent knows and this stagger does not) is
    left out and named in `unreadable`, so it never hides the others."""
    reports: list[NodeReport] = []
    unreadable: list[Unreadable] = []
    for key, raw in stored:
        try:
            reports.append(NodeReport.from_dict(json.loads(raw)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)
            unreadable.append(Unreadable(key, reason[:MAX_TEXT]))
    return StoredReports(tuple(reports), tuple(unreadable))


def stored_group(raw: str | bytes) -> str | None:
    """The group a stored report names, when it can be read that far (a report that is
    unreadable otherwise may still say it); None when not."""
    try:
        doc = json.loads(raw)
        return validate_group(doc["group"]) if isinstance(doc, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


# --- forgetting a node ------------------------------------------------------------------------


class NodeHoldsSlot(StaggerError):
    """A node that holds a slot cannot be forgotten: its slot would stay taken by nobody
    anyone sees."""

    exit_code = 1

    def __init__(self, node_id: str, group: str) -> None:
        super().__init__(
            f"node {node_id} holds a slot in group {group}: release it first with "
            f"`stagger unlock --group {group} --id {node_id}`, then forget it"
        )
        self.node_id = node_id
        self.group = group


def check_forget(node_id: str, holds: Mapping[str, Iterable[Hold]]) -> None:
    """Raise NodeHoldsSlot when `node_id` holds a slot in any group (`holds`: each group's
    live holds)."""
    for group in sorted(holds):
        if any(h.id == node_id for h in holds[group]):
            raise NodeHoldsSlot(node_id, group)


def forgotten(node_id: str, group: str, now: datetime, *, by: str) -> Event:
    """The history event of an operator forgetting `node_id`, recorded in the group its
    report named."""
    return Event(now, group, Action.FORGOTTEN, by, node_id, "report removed")


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --- the fleet view ---------------------------------------------------------------------------


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


# --- rollout progress -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """How far a group's current wave has come. `started` is the first grant of the wave;
    None means no wave is in progress (nothing needs a reboot and no slot is held)."""

    group: str
    started: datetime | None
    done: tuple[str, ...] = ()
    in_progress: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    halted: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return len(self.done) + len(self.in_progress) + len(self.waiting) + len(self.halted)


def wave_start(
    group_events: Iterable[Event], pending_needs: Iterable[datetime], now: datetime
) -> datetime | None:
    """The first grant of the group's current wave.

    The wave began at the first grant after the last moment the group was quiet: no slot held
    and no node that still needs a reboot needing it yet. (A node's need is known only while
    it lasts, so the moment is looked for before the earliest need still pending.) None when
    no grant follows that moment and nothing is pending: no wave is in progress."""
    events = sorted(group_events, key=lambda e: e.time)
    needs = list(pending_needs)
    horizon = min(needs) if needs else now
    holders: set[str] = set()
    quiet_at: datetime | None = None  # None: quiet since before the history we have
    for e in events:
        if e.time >= horizon:
            break
        if e.action is Action.ACQUIRED:
            holders.add(e.id)
        elif e.action in (Action.RELEASED, Action.EXPIRED):
            holders.discard(e.id)
        if not holders:
            quiet_at = e.time
    if not needs and not holders:
        # Quiet now: whatever came after quiet_at is finished, so no wave is in progress.
        return None
    for e in events:
        if e.action is Action.ACQUIRED and (quiet_at is None or e.time > quiet_at):
            return e.time
    return None


def rollout(
    group: str, nodes: Iterable[NodeView], group_events: Iterable[Event], now: datetime
) -> Rollout:
    """The current wave of `group`: nodes that needed a reboot since its first grant, as done
    (rebooted since, nothing pending), in progress (holding or on the way), waiting (need a
    reboot, not started) or halted (failed health after the reboot)."""
    mine = [n for n in nodes if n.group == group]
    pending = [
        n.report.needed_since
        for n in mine
        if n.report is not None and n.report.needed_since is not None
    ]
    events = [e for e in group_events if e.group == group]
    started = wave_start(events, pending, now)
    if started is None and not any(n.holds_slot for n in mine):
        return Rollout(group, None)
    done: list[str] = []
    moving: list[str] = []
    waiting: list[str] = []
    halted: list[str] = []
    for n in mine:
        r = n.report
        if r is not None and r.state is State.HALTED:
            halted.append(n.id)
        elif n.holds_slot or (r is not None and r.state in IN_PROGRESS):
            moving.append(n.id)
        elif r is not None and r.needed_since is not None:
            waiting.append(n.id)
        elif started is not None and n.last_reboot is not None and n.last_reboot >= started:
            done.append(n.id)
    return Rollout(group, started, tuple(done), tuple(moving), tuple(waiting), tuple(halted))

"""The documents of the reboot semaphores: pause, hold, group, status, event, history page,
a lock's answer (granted or denied), and the admin requests and their answers.

Why this file is long (~530 lines): the group, hold, pause, queue, ETA and status documents
are one family of models that embed each other; keeping them together keeps the JSON shape
of `status` readable in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated, Literal

from annotated_types import Interval
from pydantic import BeforeValidator, Field

from stagger.api.base import By, Instant, MaybeInstant, Model, Request
from stagger.api.blockers import BlockerModel
from stagger.backends.protocol import GroupStatus, Snapshot
from stagger.core.eta import GroupEta
from stagger.core.fleet_view import HoldCondition, hold_conditions
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import budget_to_text, parse_budget
from stagger.core.semaphore import (
    MAX_SLOTS,
    Action,
    Denied,
    DenyReason,
    Event,
    Granted,
    Hold,
    Pause,
    Semaphore,
    Urgent,
)
from stagger.core.text import PLAIN_TEXT_NOT_BLANK
from stagger.core.turns import Waiter

# Node id → its last report: what a hold's condition is judged with (core.fleet_view).
Reports = Mapping[str, NodeReport]


class PauseModel(Model):
    reason: str
    by: str
    since: Instant
    until: MaybeInstant = None

    @classmethod
    def of(cls, p: Pause | None) -> PauseModel | None:
        return cls.from_pause(p) if p is not None else None

    @classmethod
    def from_pause(cls, p: Pause) -> PauseModel:
        return cls(reason=p.reason, by=p.by, since=p.since, until=p.until)

    def value(self) -> Pause:
        return Pause(reason=self.reason, by=self.by, since=self.since, until=self.until)


class UrgentModel(Model):
    """An emergency reboot asked for one node (stagger need-reboot --now --node ID)."""

    reason: str
    by: str
    since: Instant
    ignore_blackouts: bool = False

    @classmethod
    def of(cls, u: Urgent) -> UrgentModel:
        return cls(reason=u.reason, by=u.by, since=u.since, ignore_blackouts=u.ignore_blackouts)

    def value(self) -> Urgent:
        return Urgent(self.reason, self.by, self.since, self.ignore_blackouts)


def urgent_models(urgent: Mapping[str, Urgent]) -> dict[str, UrgentModel]:
    return {k: UrgentModel.of(u) for k, u in sorted(urgent.items())}


class HoldModel(Model):
    id: str
    since: Instant
    last_seen: Instant
    expires_at: MaybeInstant = None
    note: str = ""
    stale: bool = False
    condition: HoldCondition = Field(
        HoldCondition.OK,
        description="worst first: halted (the holder reports its health check failed), stale "
        "(no heartbeat for stale_after), else ok",
    )
    node_state: str | None = Field(
        None, description="the holder's own reported cycle state (stagger agents only)"
    )

    @classmethod
    def of(
        cls, h: Hold, stale: bool = False, group: str = "", reports: Reports | None = None
    ) -> HoldModel:
        reports = reports or {}
        report = reports.get(h.id)
        mine = report is not None and report.group == group
        return cls(
            id=h.id,
            since=h.since,
            last_seen=h.last_seen,
            expires_at=h.expires_at,
            note=h.note,
            stale=stale,
            condition=hold_conditions(group, h.id, stale, reports)[0],
            node_state=report.state.value if report is not None and mine else None,
        )

    def value(self) -> Hold:
        return Hold(self.id, self.since, self.last_seen, self.expires_at, self.note)


class WaiterModel(Model):
    """A node in a group's queue for a slot (first asked, first served)."""

    id: str
    position: int = Field(ge=1, description="1-based place in the queue")
    first_asked: Instant
    last_asked: Instant = Field(description="it leaves the queue stale_after after this")

    @classmethod
    def of(cls, w: Waiter) -> WaiterModel:
        return cls(id=w.id, position=w.position, first_asked=w.first_asked, last_asked=w.last_asked)


class EtaModel(Model):
    """A group's estimated completion (docs/rollout.md, "ETA"): how it is computed and how
    wrong it can be are documented there."""

    completes_at: MaybeInstant = Field(description="null: cannot be estimated (see why)")
    pending: int = Field(description="nodes in the queue")
    in_progress: int = Field(description="nodes holding a slot")
    cycle_seconds: float | None = Field(description="the median of the recent measured cycles")
    why: str = Field("", description="why there is no estimate, when there is none")

    @classmethod
    def of(cls, e: GroupEta) -> EtaModel:
        cycle = e.cycle.total_seconds() if e.cycle is not None else None
        return cls(
            completes_at=e.completes_at,
            pending=e.pending,
            in_progress=e.in_progress,
            cycle_seconds=cycle,
            why=e.why,
        )


class GroupModel(Model):
    group: str
    max: int = Field(description="slots in force now: the count, or max_percent of known_nodes")
    max_percent: int | None = Field(
        None, description="set: max is this percentage of known_nodes (rounded down, at least 1)"
    )
    known_nodes: list[str] = Field(
        default_factory=list,
        description="the nodes a percentage counts: holders and nodes that asked for, held or "
        "released a slot within stale_after",
    )
    pace: float | None = Field(
        None, description="seconds a freed slot waits before it is granted again; null: none"
    )
    cooling_until: list[Instant] = Field(
        default_factory=list, description="when each freed slot still cooling down (pace) ends"
    )
    queue: list[WaiterModel] = Field(
        default_factory=list, description="the nodes waiting for a slot, first asked first"
    )
    held: int = Field(description="live holds (expired ones excluded): the length of `holds`")
    free: int = Field(description="slots a new lock may take: max - held - cooling, at least 0")
    holds: list[HoldModel] = Field(description="the live holds, oldest first")
    pause: PauseModel | None = Field(None, description="the group's own pause, active or not")
    paused: bool = Field(description="a pause (the group's or the fleet's) is in force")
    hold_ttl: float | None = Field(None, description="seconds; null: holds never expire")
    stale_after: float = Field(description="seconds without a heartbeat before a hold is stale")
    exists: bool = Field(
        True,
        description="false: the group was never written (no lock, set-max or pause yet); the "
        "other fields are the defaults it would be created with",
    )
    node_pauses: dict[str, PauseModel] = Field(
        default_factory=dict,
        description="the node pauses in force (in every group: a node's pause is not a group's)",
    )
    urgent_reboots: dict[str, UrgentModel] = Field(
        default_factory=dict,
        description="the emergency reboots asked for nodes (need-reboot --now --node), by id",
    )
    max_failures: str | None = Field(
        None, description='the group\'s error budget: halted nodes, a count ("2") or a share ("5%")'
    )
    eta: EtaModel | None = Field(
        None, description="the estimated completion of a busy group (docs/rollout.md, ETA)"
    )

    @classmethod
    def of(
        cls, g: GroupStatus, reports: Reports | None = None, eta: GroupEta | None = None
    ) -> GroupModel:
        sem, stale = g.semaphore, g.stale
        holds = g.holds
        slots = sem.slots(g.now)
        cooling = sem.cooling(g.now)
        return cls(
            group=g.group,
            max=slots,
            max_percent=sem.max_percent,
            known_nodes=sorted(sem.known(g.now)) if sem.max_percent is not None else [],
            pace=sem.pace.total_seconds() if sem.pace is not None else None,
            cooling_until=cooling,
            queue=[WaiterModel.of(w) for w in sem.queue(g.now)],
            held=len(holds),
            free=max(slots - len(holds) - len(cooling), 0),
            holds=[HoldModel.of(h, h.id in stale, g.group, reports) for h in holds],
            pause=PauseModel.of(sem.pause),
            paused=g.pause is not None,
            hold_ttl=sem.hold_ttl.total_seconds() if sem.hold_ttl is not None else None,
            stale_after=sem.stale_after.total_seconds(),
            exists=sem.stored,
            node_pauses={k: PauseModel.from_pause(p) for k, p in g.node_pauses.items()},
            urgent_reboots=urgent_models(g.urgent_reboots),
            max_failures=budget_to_text(sem.max_failures),
            eta=EtaModel.of(eta) if eta is not None else None,
        )

    def value(self, now: datetime, fleet: Pause | None) -> GroupStatus:
        pace = timedelta(seconds=self.pace) if self.pace is not None else None
        # The memory of nodes as this reading saw it: the known ones seen now, the waiters at
        # their last ask, so the value judges max and queue at `now` as the server did.
        seen = {k: now for k in self.known_nodes} | {w.id: w.last_asked for w in self.queue}
        sem = Semaphore(
            group=self.group,
            max=self.max,
            holds={h.id: h.value() for h in self.holds},
            pause=self.pause.value() if self.pause is not None else None,
            hold_ttl=timedelta(seconds=self.hold_ttl) if self.hold_ttl is not None else None,
            stale_after=timedelta(seconds=self.stale_after),
            max_percent=self.max_percent,
            pace=pace,
            releases=tuple(t - pace for t in self.cooling_until) if pace is not None else (),
            seen=seen,
            waiting={w.id: w.first_asked for w in self.queue},
            stored=self.exists,
            max_failures=parse_budget(self.max_failures) if self.max_failures else None,
        )
        return GroupStatus(
            sem,
            now,
            fleet,
            {k: p.value() for k, p in self.node_pauses.items()},
            {k: u.value() for k, u in self.urgent_reboots.items()},
        )


class StatusModel(Model):
    now: Instant = Field(description="the backend's time of the reading")
    fleet_pause: PauseModel | None = None
    node_pauses: dict[str, PauseModel] = Field(
        default_factory=dict, description="the node pauses in force, by node id"
    )
    urgent_reboots: dict[str, UrgentModel] = Field(
        default_factory=dict,
        description="the emergency reboots asked for nodes (need-reboot --now --node), by id",
    )
    groups: list[GroupModel]
    blockers: list[BlockerModel] = Field(
        default_factory=list,
        description="the server's [[blocker]] entries and their last verdicts (empty when "
        "read from a store directly: only a server checks blockers)",
    )

    @classmethod
    def of(
        cls,
        snap: Snapshot,
        reports: Reports | None = None,
        blockers: list[BlockerModel] | None = None,
        etas: Mapping[str, GroupEta] | None = None,
    ) -> StatusModel:
        return cls(
            now=snap.now,
            fleet_pause=PauseModel.of(snap.fleet_pause),
            node_pauses={k: PauseModel.from_pause(p) for k, p in snap.node_pauses.items()},
            urgent_reboots=urgent_models(snap.urgent_reboots),
            groups=[GroupModel.of(g, reports, (etas or {}).get(g.group)) for g in snap.groups],
            blockers=blockers or [],
        )

    def value(self) -> Snapshot:
        fleet = self.fleet_pause.value() if self.fleet_pause is not None else None
        nodes = {k: p.value() for k, p in self.node_pauses.items()}
        urgent = {k: u.value() for k, u in self.urgent_reboots.items()}
        groups = tuple(
            replace(g.value(self.now, fleet), node_pauses=nodes, urgent_reboots=urgent)
            for g in self.groups
        )
        return Snapshot(self.now, groups, fleet, nodes, urgent)


class EventModel(Model):
    time: Instant
    group: str
    action: Action
    by: str
    id: str = ""
    detail: str = ""

    @classmethod
    def of(cls, e: Event) -> EventModel:
        return cls(time=e.time, group=e.group, action=e.action, by=e.by, id=e.id, detail=e.detail)

    def value(self) -> Event:
        return Event(self.time, self.group, self.action, self.by, self.id, self.detail)


class HistoryModel(Model):
    events: list[EventModel] = Field(description="newest first")
    next_cursor: str | None = Field(
        default=None,
        description="pass as `cursor` for the next (older) page; null: no older event matches",
    )

    @classmethod
    def of(cls, events: Sequence[Event], next_cursor: str | None = None) -> HistoryModel:
        """`events` as the backend returns them: newest first."""
        return cls(events=[EventModel.of(e) for e in events], next_cursor=next_cursor)


class GrantedModel(Model):
    """`stagger lock --json` when the slot is taken (or was already held)."""

    result: Literal["granted"] = "granted"
    group: str
    id: str
    by: str
    already_held: bool = Field(description="true: the id held a slot already; nothing changed")
    hold: HoldModel

    @classmethod
    def of(cls, g: Granted, group: str, node: str, by: str) -> GrantedModel:
        return cls(
            group=group, id=node, by=by, already_held=g.already_held, hold=HoldModel.of(g.hold)
        )


class DeniedModel(Model):
    """`stagger lock --json` when refused. `max`, `holders` and `pause` mean what they mean in
    a FleetLock denial (ErrorModel)."""

    result: Literal["denied"] = "denied"
    group: str
    id: str
    reason: DenyReason
    max: int
    holders: list[str] = Field(description="the ids holding a slot")
    pause: PauseModel | None = Field(None, description="the pause in force (a paused denial)")
    node: str | None = Field(
        None, description="set when the pause in force is this node's own (pause --node)"
    )
    until: MaybeInstant = Field(None, description="pacing: when a freed slot may be granted")
    position: int | None = Field(
        None, ge=1, description="the node's 1-based place in the group's queue"
    )
    queue_full: int | None = Field(
        None,
        ge=1,
        description="the queue was full (this many nodes wait): the node has no place yet",
    )
    message: str

    @classmethod
    def of(cls, d: Denied, group: str, node: str, message: str) -> DeniedModel:
        return cls(
            group=group,
            id=node,
            reason=d.reason,
            max=d.max,
            holders=list(d.holders),
            pause=PauseModel.of(d.pause),
            node=d.node or None,
            until=d.until,
            position=d.position,
            queue_full=d.queue_full or None,
            message=message,
        )


def _whole_number(value: object) -> object:
    """JSON Schema's integer includes 2.0: accept it as 2 (and nothing else a strict int
    refuses), so the API accepts what /openapi.json allows."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A max given as a percentage of the group's known nodes: "1%" to "100%".
PERCENT_PATTERN = r"^([1-9][0-9]?|100)%$"


class SetMaxRequest(Request):
    max: (
        Annotated[int, Interval(ge=0, le=MAX_SLOTS), BeforeValidator(_whole_number)]
        | Annotated[str, Field(pattern=PERCENT_PATTERN)]
    ) = Field(
        description=f"slots (0 to {MAX_SLOTS}), or a percentage of the group's known nodes "
        '("10%": rounded down, at least 1)'
    )
    by: By = None

    @property
    def percent(self) -> bool:
        return isinstance(self.max, str)

    @property
    def value(self) -> int:
        return int(self.max[:-1]) if isinstance(self.max, str) else self.max


class SetMaxResponse(Model):
    group: str
    max: int
    percent: bool = False


# The longest hold_ttl or stale_after the admin API takes (seconds): ten years, far beyond any
# reboot, and well inside what a time can be added to. The shortest is a millisecond: a float
# just above 0 (5e-324) is 0 as a duration, so "more than 0" alone lets the schema accept what
# the store refuses.
MAX_GROUP_SECONDS = 10 * 365 * 86400
MIN_GROUP_SECONDS = 0.001


class PaceRequest(Request):
    """PUT /v1/groups/{group}/pace: how long a freed slot waits before it is granted again."""

    pace: float | None = Field(
        ge=MIN_GROUP_SECONDS, le=MAX_GROUP_SECONDS, description="seconds; null: no pace"
    )
    by: By = None


class PaceResponse(Model):
    group: str
    pace: float | None = Field(description="seconds; null: no pace")


class ConfigureRequest(Request):
    """PUT /v1/groups/{group}/config: both settings, as `stagger set-max --hold-ttl
    --stale-after` sends them (it keeps the current value of the one not given)."""

    hold_ttl: float | None = Field(
        ge=MIN_GROUP_SECONDS, le=MAX_GROUP_SECONDS, description="seconds; null: never expire"
    )
    stale_after: float = Field(
        ge=MIN_GROUP_SECONDS,
        le=MAX_GROUP_SECONDS,
        description="seconds without a heartbeat before stale",
    )
    by: By = None


class PauseRequest(Request):
    reason: str = Field(
        min_length=1,
        max_length=1000,
        pattern=r"\S",
        json_schema_extra={"pattern": PLAIN_TEXT_NOT_BLANK},
        description="plain text on one line: no control characters, not blank",
    )
    until: datetime | None = Field(
        None,
        description="RFC 3339 with offset, from 1970 up to (not including) 3000 in UTC; "
        "null: until resumed",
    )
    by: By = None


class AskRebootRequest(Request):
    reason: str = Field(
        min_length=1,
        max_length=1000,
        pattern=r"\S",
        json_schema_extra={"pattern": PLAIN_TEXT_NOT_BLANK},
        description="plain text on one line: no control characters, not blank",
    )
    ignore_blackouts: bool = False
    by: By = None


class AskRebootResponse(Model):
    node: str
    urgent: UrgentModel


class ClearRebootResponse(Model):
    node: str
    cleared: UrgentModel | None = Field(description="the ask dropped, if any")


class ActorRequest(Request):
    by: By = None


class PauseResponse(Model):
    group: str | None = Field(description="null: the fleet-wide pause (or a node's)")
    node: str | None = Field(None, description="set: the pause of this one node")
    pause: PauseModel


class ResumeResponse(Model):
    group: str | None = Field(description="null: the fleet-wide pause (or a node's)")
    node: str | None = Field(None, description="set: the pause of this one node")
    lifted: PauseModel | None = Field(description="the pause that was lifted, if any")


class UnlockResponse(Model):
    group: str
    id: str
    by: str = Field("", description="who released it, as recorded in history")
    released: bool = Field(description="false: the id held nothing (nothing was written)")
    hold: HoldModel | None = None


class TouchResponse(Model):
    group: str
    id: str
    held: bool = Field(description="false: the id holds nothing (an operator released it)")
    hold: HoldModel | None = None


class HealthModel(Model):
    status: str

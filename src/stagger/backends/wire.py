"""The JSON shapes stagger's server speaks, shared by the server (which writes them) and the
FleetLock client backend (which reads them back when the server is ours).

FleetLock itself only defines `{"kind", "value"}` errors; `ErrorKind` is our fixed set of
kinds (the spec asks for a small, bounded set, since Zincati uses `kind` as a metrics label).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from stagger.backends.base import GroupStatus, Snapshot
from stagger.core.cycle.node_state import CheckResult, State
from stagger.core.reports import (
    MAX_TEXT,
    HoldCondition,
    NodeReport,
    NodeView,
    Source,
    Unreadable,
    hold_conditions,
)
from stagger.core.semaphore import (
    GROUP_RE,
    MAX_GROUP_LEN,
    MAX_SLOTS,
    Action,
    Denied,
    DenyReason,
    Event,
    Hold,
    Pause,
    Semaphore,
    Urgent,
)
from stagger.core.text import PLAIN_TEXT, PLAIN_TEXT_NOT_BLANK, check_operator_text
from stagger.core.times import RANGE_TEXT


class ErrorKind(StrEnum):
    """Every `kind` the server can answer with, and the HTTP status that goes with it."""

    INVALID_REQUEST = "invalid_request"  # 400: header, JSON, id or a field is wrong
    INVALID_GROUP = "invalid_group"  # 400: group does not match GROUP_RE
    UNAUTHORIZED = "unauthorized"  # 401: no or unknown credentials
    FORBIDDEN = "forbidden"  # 403: the token may not do this (group, or admin-only)
    NOT_FOUND = "not_found"  # 404: no such endpoint
    UNKNOWN_GROUP = "unknown_group"  # 404: group not configured (unknown-group policy refuse)
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
    PAYLOAD_TOO_LARGE = "payload_too_large"  # 413: body over 64 KiB
    FAILED_LOCK_SEMAPHORE_FULL = "failed_lock_semaphore_full"  # 423: every slot is held
    FAILED_LOCK_PAUSED = "failed_lock_paused"  # 423: reboots in the group are paused
    NODE_HOLDS_SLOT = "node_holds_slot"  # 409: a node to forget holds a slot; release it first
    BACKEND_UNAVAILABLE = "backend_unavailable"  # 503: the store did not answer; retry later
    INTERNAL_ERROR = "internal_error"  # 500: a bug in stagger; please report it

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS = {
    ErrorKind.INVALID_REQUEST: 400,
    ErrorKind.INVALID_GROUP: 400,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.UNKNOWN_GROUP: 404,
    ErrorKind.METHOD_NOT_ALLOWED: 405,
    ErrorKind.PAYLOAD_TOO_LARGE: 413,
    ErrorKind.FAILED_LOCK_SEMAPHORE_FULL: 423,
    ErrorKind.FAILED_LOCK_PAUSED: 423,
    ErrorKind.NODE_HOLDS_SLOT: 409,
    ErrorKind.BACKEND_UNAVAILABLE: 503,
    ErrorKind.INTERNAL_ERROR: 500,
}

DENIAL_KINDS = {
    DenyReason.FULL: ErrorKind.FAILED_LOCK_SEMAPHORE_FULL,
    DenyReason.PAUSED: ErrorKind.FAILED_LOCK_PAUSED,
}


# Node id → its last report: what a hold's condition is judged with (core.reports).
Reports = Mapping[str, NodeReport]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Request(BaseModel):
    """A request body: strict types ("2" is not a number), unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class PauseModel(_Model):
    reason: str
    by: str
    since: datetime
    until: datetime | None = None

    @classmethod
    def of(cls, p: Pause | None) -> PauseModel | None:
        return cls.from_pause(p) if p is not None else None

    @classmethod
    def from_pause(cls, p: Pause) -> PauseModel:
        return cls(reason=p.reason, by=p.by, since=p.since, until=p.until)

    def value(self) -> Pause:
        return Pause(reason=self.reason, by=self.by, since=self.since, until=self.until)


class UrgentModel(_Model):
    """An emergency reboot asked for one node (stagger need-reboot --now --node ID)."""

    reason: str
    by: str
    since: datetime
    ignore_blackouts: bool = False

    @classmethod
    def of(cls, u: Urgent) -> UrgentModel:
        return cls(reason=u.reason, by=u.by, since=u.since, ignore_blackouts=u.ignore_blackouts)

    def value(self) -> Urgent:
        return Urgent(self.reason, self.by, self.since, self.ignore_blackouts)


def urgent_models(urgent: Mapping[str, Urgent]) -> dict[str, UrgentModel]:
    return {k: UrgentModel.of(u) for k, u in sorted(urgent.items())}


class ErrorModel(_Model):
    """A FleetLock error body. `max` and `holders` come with a full-semaphore denial,
    `pause` with a paused one (and `node` when it is that node's own pause), and `group` with
    node_holds_slot (extra fields FleetLock clients ignore)."""

    kind: ErrorKind
    value: str = Field(min_length=1)
    max: int | None = None
    holders: list[str] | None = None
    pause: PauseModel | None = None
    group: str | None = None
    node: str | None = None

    def denial(self) -> Denied | None:
        for reason, kind in DENIAL_KINDS.items():
            if kind is self.kind:
                p = self.pause.value() if self.pause is not None else None
                return Denied(reason, self.max or 0, tuple(self.holders or ()), p, self.node or "")
        return None


class HoldModel(_Model):
    id: str
    since: datetime
    last_seen: datetime
    expires_at: datetime | None = None
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


class GroupModel(_Model):
    group: str
    max: int
    holders: int = Field(description="live holds (expired ones excluded)")
    holds: list[HoldModel]
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

    @classmethod
    def of(cls, g: GroupStatus, reports: Reports | None = None) -> GroupModel:
        sem, stale = g.semaphore, g.stale
        holds = g.holds
        return cls(
            group=g.group,
            max=sem.max,
            holders=len(holds),
            holds=[HoldModel.of(h, h.id in stale, g.group, reports) for h in holds],
            pause=PauseModel.of(sem.pause),
            paused=g.pause is not None,
            hold_ttl=sem.hold_ttl.total_seconds() if sem.hold_ttl is not None else None,
            stale_after=sem.stale_after.total_seconds(),
            exists=sem.stored,
            node_pauses={k: PauseModel.from_pause(p) for k, p in g.node_pauses.items()},
            urgent_reboots=urgent_models(g.urgent_reboots),
        )

    def value(self, now: datetime, fleet: Pause | None) -> GroupStatus:
        sem = Semaphore(
            group=self.group,
            max=self.max,
            holds={h.id: h.value() for h in self.holds},
            pause=self.pause.value() if self.pause is not None else None,
            hold_ttl=timedelta(seconds=self.hold_ttl) if self.hold_ttl is not None else None,
            stale_after=timedelta(seconds=self.stale_after),
            stored=self.exists,
        )
        return GroupStatus(
            sem,
            now,
            fleet,
            {k: p.value() for k, p in self.node_pauses.items()},
            {k: u.value() for k, u in self.urgent_reboots.items()},
        )


class StatusModel(_Model):
    now: datetime
    fleet_pause: PauseModel | None = None
    node_pauses: dict[str, PauseModel] = Field(
        default_factory=dict, description="the node pauses in force, by node id"
    )
    urgent_reboots: dict[str, UrgentModel] = Field(
        default_factory=dict,
        description="the emergency reboots asked for nodes (need-reboot --now --node), by id",
    )
    groups: list[GroupModel]

    @classmethod
    def of(cls, snap: Snapshot, reports: Reports | None = None) -> StatusModel:
        return cls(
            now=snap.now,
            fleet_pause=PauseModel.of(snap.fleet_pause),
            node_pauses={k: PauseModel.from_pause(p) for k, p in snap.node_pauses.items()},
            urgent_reboots=urgent_models(snap.urgent_reboots),
            groups=[GroupModel.of(g, reports) for g in snap.groups],
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


class EventModel(_Model):
    time: datetime
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


class HistoryModel(_Model):
    events: list[EventModel] = Field(description="newest first")


By = Annotated[
    str | None,
    Field(
        None,
        min_length=1,
        max_length=256,
        json_schema_extra={"pattern": PLAIN_TEXT},
        description="who acts, recorded in history; no control characters",
    ),
    AfterValidator(lambda v: None if v is None else check_operator_text(v, "by")),
]


def _whole_number(value: object) -> object:
    """JSON Schema's integer includes 2.0: accept it as 2 (and nothing else a strict int
    refuses), so the API accepts what /openapi.json allows."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class SetMaxRequest(_Request):
    max: Annotated[int, BeforeValidator(_whole_number)] = Field(ge=0, le=MAX_SLOTS)
    by: By = None


class SetMaxResponse(_Model):
    group: str
    max: int


# The longest hold_ttl or stale_after the admin API takes (seconds): ten years, far beyond any
# reboot, and well inside what a time can be added to. The shortest is a millisecond: a float
# just above 0 (5e-324) is 0 as a duration, so "more than 0" alone lets the schema accept what
# the store refuses.
MAX_GROUP_SECONDS = 10 * 365 * 86400
MIN_GROUP_SECONDS = 0.001


class ConfigureRequest(_Request):
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


class PauseRequest(_Request):
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


class AskRebootRequest(_Request):
    reason: str = Field(
        min_length=1,
        max_length=1000,
        pattern=r"\S",
        json_schema_extra={"pattern": PLAIN_TEXT_NOT_BLANK},
        description="plain text on one line: no control characters, not blank",
    )
    ignore_blackouts: bool = False
    by: By = None


class AskRebootResponse(_Model):
    node: str
    urgent: UrgentModel


class ClearRebootResponse(_Model):
    node: str
    cleared: UrgentModel | None = Field(description="the ask dropped, if any")


class ActorRequest(_Request):
    by: By = None


class PauseResponse(_Model):
    group: str | None = Field(description="null: the fleet-wide pause (or a node's)")
    node: str | None = Field(None, description="set: the pause of this one node")
    pause: PauseModel


class ResumeResponse(_Model):
    group: str | None = Field(description="null: the fleet-wide pause (or a node's)")
    node: str | None = Field(None, description="set: the pause of this one node")
    lifted: PauseModel | None = Field(description="the pause that was lifted, if any")


class UnlockResponse(_Model):
    group: str
    id: str
    released: bool = Field(description="false: the id held nothing (nothing was written)")
    hold: HoldModel | None = None


class TouchResponse(_Model):
    group: str
    id: str
    held: bool = Field(description="false: the id holds nothing (an operator released it)")
    hold: HoldModel | None = None


class HealthModel(_Model):
    status: str


# --- node reports (a stagger extension; FleetLock-only clients never call it) -----------------


class HealthResultModel(_Model):
    # Strict, as it is also part of a request body: `at` is an RFC 3339 string, never a
    # number, as /openapi.json says.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    ok: bool
    detail: str = Field("", max_length=MAX_TEXT)
    at: datetime

    @classmethod
    def of(cls, c: CheckResult | None) -> HealthResultModel | None:
        return None if c is None else cls(ok=c.ok, detail=c.detail[:MAX_TEXT], at=c.at)

    def value(self) -> CheckResult:
        return CheckResult(self.ok, self.detail, self.at)


_TIME = f"RFC 3339 with offset, {RANGE_TEXT} (400 otherwise)"


class NodeReportRequest(_Request):
    """What an agent sends to POST /v1/nodes/{id}/report. The server stamps `updated_at`."""

    group: str = Field(min_length=1, max_length=MAX_GROUP_LEN, pattern=GROUP_RE.pattern)
    state: State
    reason: str = Field("", max_length=MAX_TEXT)
    needed_since: datetime | None = Field(None, description=_TIME)
    detector: str = Field("", max_length=MAX_TEXT)
    next_window: datetime | None = Field(
        None, description="the next reboot window opening; " + _TIME
    )
    last_reboot: datetime | None = Field(None, description=_TIME)
    last_health: HealthResultModel | None = None
    version: str = Field("", max_length=100, description="the agent's stagger version")

    @classmethod
    def of(cls, r: NodeReport) -> NodeReportRequest:
        return cls(
            group=r.group,
            state=r.state,
            reason=r.reason,
            needed_since=r.needed_since,
            detector=r.detector,
            next_window=r.next_window,
            last_reboot=r.last_reboot,
            last_health=HealthResultModel.of(r.last_health),
            version=r.version,
        )

    def value(self, node_id: str) -> NodeReport:
        return NodeReport(
            id=node_id,
            group=self.group,
            state=self.state,
            reason=self.reason,
            needed_since=self.needed_since,
            detector=self.detector,
            next_window=self.next_window,
            last_reboot=self.last_reboot,
            last_health=self.last_health.value() if self.last_health is not None else None,
            version=self.version,
        )


class NodeModel(_Model):
    """One node as the fleet view shows it: from its own report (`source` report) or, for a
    FleetLock-only client such as Zincati, from its lock activity (`source` locks)."""

    id: str
    group: str
    state: str = Field(
        description="a cycle state (idle, waiting, ..., halted) for a reporting node; "
        "'holding' or 'seen' for a node known from its locks only"
    )
    source: Source
    silent: bool = Field(description="no report for longer than the server's silent_after")
    holds_slot: bool
    reason: str = ""
    needed_since: datetime | None = None
    detector: str = ""
    next_window: datetime | None = None
    last_reboot: datetime | None = Field(
        None, description="a lock-only node: when it last released its slot"
    )
    last_health: HealthResultModel | None = None
    version: str = ""
    updated_at: datetime | None = Field(None, description="the server's time of the last report")
    last_lock_activity: datetime | None = None
    pause: PauseModel | None = Field(
        None, description="the node's own pause in force (stagger pause --node), if any"
    )

    @classmethod
    def of(cls, n: NodeView) -> NodeModel:
        r = n.report
        return cls(
            id=n.id,
            group=n.group,
            state=n.state,
            source=n.source,
            silent=n.silent,
            holds_slot=n.holds_slot,
            reason=r.reason if r is not None else "",
            needed_since=n.needed_since,
            detector=r.detector if r is not None else "",
            next_window=r.next_window if r is not None else None,
            last_reboot=n.last_reboot,
            last_health=HealthResultModel.of(r.last_health) if r is not None else None,
            version=r.version if r is not None else "",
            updated_at=r.updated_at if r is not None else None,
            last_lock_activity=n.last_lock_activity,
            pause=PauseModel.of(n.pause),
        )

    def report(self) -> NodeReport | None:
        """The stored report behind this row (None for a lock-only node)."""
        if self.source is not Source.REPORT:
            return None
        return NodeReport(
            id=self.id,
            group=self.group,
            state=State(self.state),
            reason=self.reason,
            needed_since=self.needed_since,
            detector=self.detector,
            next_window=self.next_window,
            last_reboot=self.last_reboot,
            last_health=self.last_health.value() if self.last_health is not None else None,
            version=self.version,
            updated_at=self.updated_at,
        )


class UnreadableModel(_Model):
    """A stored report the server cannot read: its node is missing from `nodes`."""

    key: str = Field(description="where it is stored: the node id (SQLite) or the etcd key")
    error: str = Field(description="why it cannot be read")

    @classmethod
    def of(cls, u: Unreadable) -> UnreadableModel:
        return cls(key=u.key, error=u.error)

    def value(self) -> Unreadable:
        return Unreadable(self.key, self.error)


class NodesModel(_Model):
    now: datetime
    silent_after: float = Field(description="seconds without a report before a node is silent")
    nodes: list[NodeModel]
    unreadable: list[UnreadableModel] = Field(
        default_factory=list,
        description="stored reports the server cannot read (e.g. from a newer agent: upgrade "
        "the server), left out of `nodes`",
    )


class ForgetResponse(_Model):
    id: str
    forgotten: bool = Field(
        description="false: no report of this id was stored (nothing was written)"
    )


class ReportResponse(_Model):
    id: str
    group: str
    updated_at: datetime

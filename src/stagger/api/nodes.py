"""The documents of node reports (a stagger extension; FleetLock-only clients never send
one): the report an agent sends, and the fleet view (`GET /v1/nodes`, `stagger nodes`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import ConfigDict, Field

from stagger.api.base import Instant, MaybeInstant, Model, Request
from stagger.api.groups import PauseModel
from stagger.core.cycle.node_state import CheckResult, State
from stagger.core.fleet_view import NodeView, Source
from stagger.core.listing import NODES, NodePage, decode_node_cursor, encode_cursor
from stagger.core.node_report import MAX_TEXT, NodeReport, Unreadable
from stagger.core.semaphore import GROUP_RE, MAX_GROUP_LEN
from stagger.core.times import RANGE_TEXT


class HealthResultModel(Model):
    # Strict, as it is also part of a request body: `at` is an RFC 3339 string, never a
    # number, as /openapi.json says.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    ok: bool
    detail: str = Field("", max_length=MAX_TEXT)
    at: Instant

    @classmethod
    def of(cls, c: CheckResult | None) -> HealthResultModel | None:
        return None if c is None else cls(ok=c.ok, detail=c.detail[:MAX_TEXT], at=c.at)

    def value(self) -> CheckResult:
        return CheckResult(self.ok, self.detail, self.at)


_TIME = f"RFC 3339 with offset, {RANGE_TEXT} (400 otherwise)"


class NodeReportRequest(Request):
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


class NodeModel(Model):
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
    needed_since: MaybeInstant = None
    detector: str = ""
    next_window: MaybeInstant = None
    last_reboot: MaybeInstant = Field(
        None, description="a lock-only node: when it last released its slot"
    )
    last_health: HealthResultModel | None = None
    version: str = ""
    updated_at: MaybeInstant = Field(None, description="the server's time of the last report")
    last_lock_activity: MaybeInstant = None
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

    def view(self) -> NodeView:
        """The fleet view's row this document shows."""
        report = self.report()
        return NodeView(
            id=self.id,
            group=self.group,
            state=self.state,
            source=self.source,
            silent=self.silent,
            holds_slot=self.holds_slot,
            report=report,
            last_lock_activity=self.last_lock_activity,
            last_released=self.last_reboot if report is None else None,
            pause=self.pause.value() if self.pause is not None else None,
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


class UnreadableModel(Model):
    """A stored report the server cannot read: its node is missing from `nodes`."""

    key: str = Field(description="where it is stored: the node id (SQLite) or the etcd key")
    error: str = Field(description="why it cannot be read")

    @classmethod
    def of(cls, u: Unreadable) -> UnreadableModel:
        return cls(key=u.key, error=u.error)

    def value(self) -> Unreadable:
        return Unreadable(self.key, self.error)


class NodesModel(Model):
    """One page of the fleet view (`GET /v1/nodes`; `stagger nodes --json` with every page)."""

    now: Instant = Field(description="the backend's time of the reading")
    silent_after: float = Field(description="seconds without a report before a node is silent")
    nodes: list[NodeModel]
    unreadable: list[UnreadableModel] = Field(
        default_factory=list,
        description="stored reports the server cannot read (e.g. from a newer agent: upgrade "
        "the server), left out of `nodes`",
    )
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next page; null: this is the last page"
    )
    totals: dict[str, int] = Field(
        default_factory=dict,
        description="nodes per state in the `group` asked for (else the fleet), whatever the "
        "other filters; states with no node are left out",
    )
    silent: int = Field(
        default=0, description="how many of the reporting nodes those totals count are silent"
    )

    @classmethod
    def of(cls, page: NodePage) -> NodesModel:
        return cls(
            now=page.now,
            silent_after=page.silent_after.total_seconds(),
            nodes=[NodeModel.of(v) for v in page.nodes],
            unreadable=[UnreadableModel.of(u) for u in page.unreadable],
            next_cursor=encode_cursor(NODES, page.next) if page.next is not None else None,
            totals=dict(page.totals),
            silent=page.silent,
        )

    def value(self) -> NodePage:
        return NodePage(
            now=self.now,
            silent_after=timedelta(seconds=self.silent_after),
            nodes=tuple(n.view() for n in self.nodes),
            next=decode_node_cursor(self.next_cursor) if self.next_cursor else None,
            totals=dict(self.totals),
            silent=self.silent,
            unreadable=tuple(u.value() for u in self.unreadable),
        )


class ForgetResponse(Model):
    id: str
    by: str = Field("", description="who forgot it, as recorded in history")
    forgotten: bool = Field(
        description="false: no report of this id was stored (nothing was written)"
    )


class ReportResponse(Model):
    id: str
    group: str
    updated_at: Instant

"""The Backend Protocol: where a fleet's semaphores live.

Every backend does the same three things for a change: load the group's Semaphore, apply one
operation from core/semaphore.py, and compare-and-swap the result (writing nothing when the
operation changed nothing). A lost compare-and-swap is retried (retry.py), bounded and with jitter;
it never reaches a caller as a failure. Expiry is judged by the backend's clock only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from stagger.core.durations import parse_duration
from stagger.core.errors import ConfigError, InvalidInput
from stagger.core.listing import HistoryPage, HistoryQuery, NodePage, NodeQuery
from stagger.core.node_report import NodeReport, StoredReports
from stagger.core.roles import Role
from stagger.core.rollout_gate import Rollout
from stagger.core.semaphore import (
    DEFAULT_STALE_AFTER,
    Denied,
    Event,
    Granted,
    Hold,
    NotHeld,
    Pause,
    Released,
    Semaphore,
    Urgent,
    active_node_pauses,
)


def utcnow() -> datetime:
    """The wall clock, in UTC. Shells read the clock; core never does."""
    return datetime.now(UTC)


Clock = Callable[[], datetime]


def option_seconds(value: Any, what: str) -> float:
    """A backend option that is a time: seconds as a number, a timedelta, or a duration like
    3s. `what` names the option in the error ("etcd option timeout")."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_duration(str(value), what=what).total_seconds()
    except InvalidInput as exc:
        raise ConfigError(exc.message) from exc


def validate_limit(limit: int) -> int:
    """A history limit: a whole number ≥ 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"history limit {limit!r} is not valid: give a whole number ≥ 1")
    return limit


@dataclass(frozen=True)
class GroupStatus:
    """A group as an operator sees it, judged at `now` (the backend's clock)."""

    semaphore: Semaphore
    now: datetime
    fleet_pause: Pause | None = None
    # The node pauses in force (stagger pause --node), by node id.
    node_pauses: Mapping[str, Pause] = field(default_factory=dict)
    # The emergency reboots asked through the store (need-reboot --now --node), by node id.
    urgent_reboots: Mapping[str, Urgent] = field(default_factory=dict)
    # The rollout in the FLEET record (core/rollout_gate.py), which every acquire judges.
    rollout: Rollout | None = None

    @property
    def group(self) -> str:
        return self.semaphore.group

    @property
    def holds(self) -> list[Hold]:
        return sorted(self.semaphore.live_holds(self.now), key=lambda h: (h.since, h.id))

    @property
    def stale(self) -> set[str]:
        return {h.id for h in self.semaphore.stale_holds(self.now)}

    @property
    def pause(self) -> Pause | None:
        return self.semaphore.active_pause(self.now, self.fleet_pause)


@dataclass(frozen=True)
class Snapshot:
    """Every known group (or one) plus the fleet-wide pause, at the backend's `now`."""

    now: datetime
    groups: tuple[GroupStatus, ...]
    fleet_pause: Pause | None = None
    # The node pauses in force (stagger pause --node), by node id.
    node_pauses: Mapping[str, Pause] = field(default_factory=dict)
    # The emergency reboots asked through the store (need-reboot --now --node), by node id.
    urgent_reboots: Mapping[str, Urgent] = field(default_factory=dict)
    # The rollout in the FLEET record (core/rollout_gate.py).
    rollout: Rollout | None = None


def group_status(sem: Semaphore, now: datetime, fleet: Semaphore | None) -> GroupStatus:
    """`sem` as an operator sees it at `now`, given the FLEET record (its pauses)."""
    pause = fleet.pause if fleet is not None else None
    urgent = fleet.urgent_reboots if fleet is not None else {}
    rollout = fleet.rollout if fleet is not None else None
    return GroupStatus(sem, now, pause, active_node_pauses(fleet, now), urgent, rollout)


def snapshot_of(now: datetime, sems: Iterable[Semaphore], fleet: Semaphore | None) -> Snapshot:
    """The Snapshot of `sems` (in order) and the FLEET record, judged at `now`."""
    groups = tuple(group_status(s, now, fleet) for s in sems)
    pause = fleet.pause if fleet is not None else None
    active = pause if pause is not None and pause.active(now) else None
    urgent = fleet.urgent_reboots if fleet is not None else {}
    rollout = fleet.rollout if fleet is not None else None
    return Snapshot(now, groups, active, active_node_pauses(fleet, now), urgent, rollout)


@runtime_checkable
class Backend(Protocol):
    """One fleet's semaphores. Group and id are validated by core before anything is read.

    `by` names who acts (a node id, or `operator:NAME`); it is recorded in history.
    `group=None` on pause/resume means every group (the fleet-wide pause).
    """

    url: str

    async def acquire(
        self, group: str, node_id: str, *, note: str = "", by: str | None = None
    ) -> Granted | Denied: ...

    async def release(
        self, group: str, node_id: str, *, by: str | None = None
    ) -> Released | NotHeld: ...

    async def touch(self, group: str, node_id: str) -> Hold | None: ...

    async def set_max(self, group: str, value: int, *, by: str, percent: bool = False) -> int:
        """Set the group's max: `value` slots, or with `percent` that percentage of its known
        nodes (core/turns.py)."""
        ...

    async def set_pace(self, group: str, pace: timedelta | None, *, by: str) -> timedelta | None:
        """After a slot is freed, grant it again only `pace` later (None: at once)."""
        ...

    async def configure(
        self,
        group: str,
        *,
        by: str,
        hold_ttl: timedelta | None,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
    ) -> Semaphore: ...

    async def pause(
        self, group: str | None, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause: ...

    async def resume(self, group: str | None, *, by: str) -> Pause | None: ...

    async def pause_node(
        self, node_id: str, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause:
        """Refuse new holds to `node_id` in every group until `until` (None: until resumed);
        a hold it has stays."""
        ...

    async def resume_node(self, node_id: str, *, by: str) -> Pause | None:
        """Lift `node_id`'s pause: the pause lifted, or None when it was not paused."""
        ...

    async def ask_reboot(
        self, node_id: str, *, by: str, reason: str, ignore_blackouts: bool = False
    ) -> Urgent:
        """Ask `node_id`'s agent for an emergency reboot (need-reboot --now --node): it sees
        the ask when it next reads its group's status, and clears it once it rebooted."""
        ...

    async def clear_reboot(
        self, node_id: str, *, done_by: datetime | None = None, group: str | None = None
    ) -> Urgent | None:
        """Drop `node_id`'s ask made before `done_by` (its last reboot; None: any ask). `group`
        is the node's, for a server's node-token check."""
        ...

    async def status(self, group: str | None = None) -> Snapshot: ...

    async def history(self, group: str | None = None, limit: int = 100) -> list[Event]: ...

    async def report(self, report: NodeReport) -> NodeReport:
        """Store a node's report (replacing its last one), stamped with the backend's time
        as `updated_at`; returns what was stored."""
        ...

    async def nodes(self, group: str | None = None) -> list[NodeReport]:
        """The last report of every node (or of one group's), sorted by group then id. A
        report this stagger cannot read is left out (and logged once): see read_nodes."""
        ...

    async def read_nodes(self, group: str | None = None) -> StoredReports:
        """What `nodes` returns, plus the stored reports this stagger cannot read (where,
        and why), so a reader can say that some nodes are missing from the view."""
        ...

    async def node_page(self, query: NodeQuery, silent_after: timedelta) -> NodePage:
        """One page of the fleet view (core/listing.py): the nodes matching `query` after its
        cursor in (group, id) order, the key to continue after, and the totals per state of
        the query's group (or the fleet), read without reading every report."""
        ...

    async def history_page(self, query: HistoryQuery) -> HistoryPage:
        """One page of events matching `query`, newest first, before its cursor."""
        ...

    async def forget(self, node_id: str, *, by: str) -> bool:
        """Remove the node's report, so the fleet view no longer lists it, and record a
        `forgotten` event (by `by`) in the history of the group the report named. False
        (nothing written) when no report of `node_id` is stored. Raises NodeHoldsSlot when the
        node holds a slot in any group: an operator releases it first."""
        ...

    async def ping(self) -> None:
        """Raise BackendUnavailable unless the backend answers now."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class RemembersGroups(Protocol):
    """A backend that keeps the newest view of each group it has seen (etcd). Such a view may
    be stale: it is good for choosing to PROPOSE a change (the backend's guarded write
    decides), never for answering one that needs no write."""

    def remembered(self, group: str) -> GroupStatus | None:
        """The newest view of `group` this object has seen, at the backend's now; None when
        it has seen none."""
        ...

    def changing(self, group: str) -> bool:
        """Whether this object is writing a change to `group` now: one asked now is decided
        right after it, in the same store round trip as the next changes (group commit)."""
        ...


@runtime_checkable
class Revisions(Protocol):
    """A backend that can say cheaply whether anything in the store changed: a reader keeps
    what it built from a read until the mark differs (the dashboard's live refresh answers
    304 Not Modified meanwhile). The FleetLock client backend is not one."""

    async def revision(self) -> str:
        """A mark that changes whenever anything in the store changes (it may also change
        when nothing a reader shows did); costs one small round trip, whatever the fleet's
        size."""
        ...


@runtime_checkable
class Roles(Protocol):
    """A backend on which several servers can share a job, one at a time (core/roles.py): the
    notifier. Expiry is judged by the backend's clock (etcd: an etcd lease). The FleetLock
    client backend is not one: a server never runs on it."""

    async def claim_role(
        self, name: str, owner: str, ttl: timedelta, mark: str | None = None
    ) -> tuple[Role, bool]:
        """Take or keep the role `name` for `ttl`, leaving `mark` (None: keep the stored one):
        (the role as it is now, whether `owner` holds it). Held by another owner: nothing is
        written."""
        ...

    async def release_role(self, name: str, owner: str) -> None:
        """Give the role up now (its mark stays), if `owner` holds it; else do nothing."""
        ...


log = logging.getLogger("stagger.backends")


class UnreadableReports:
    """Warns once per (stored report, reason) that a report cannot be read, with `how` to
    inspect it (a backend's command for its key), so a fleet view read every few seconds
    says it once, not every time."""

    def __init__(self, how: Callable[[str], str]) -> None:
        self._how = how
        self._told: set[tuple[str, str]] = set()

    def tell(self, found: StoredReports) -> StoredReports:
        for u in found.unreadable:
            if (u.key, u.error) in self._told:
                continue
            self._told.add((u.key, u.error))
            log.warning(
                "the node report at %s cannot be read (%s), so that node is left out of the "
                "fleet view: upgrade this stagger if a newer agent wrote it, else inspect it "
                "(%s) and remove it with `stagger forget ID`",
                u.key,
                u.error,
                self._how(u.key),
            )
        return found

"""A group's reboot semaphore, as a value.

Rules of this file:
- Everything that decides who may hold a slot lives here; backends only load a Semaphore,
  call one operation, and compare-and-swap the result.
- Operations are pure: they take the current value (and `now` where time matters) and return
  a Change: the new value, an outcome, and the event to record. `event is None` means nothing
  changed, and a backend then writes nothing.
- Invariant: a grant never makes the number of live holds exceed `max`. Lowering `max` evicts
  nobody; it only blocks new grants until enough holders release.

Why this file is long (~800 lines): every rule that decides who may hold a slot (pauses,
the rollout's gate, pace, a percentage max, the fair queue's Lineup, expiry) is applied in
`acquire`/`admission` here, so that the invariant "never more than max" is argued and tested
(tests/core/test_semaphore_invariants.py) against one file. Pure helpers that need no part of
it live beside it: core/turns.py, core/rollout_gate.py, core/node_controls.py, core/names.py
(the rules for group names and node ids, re-exported here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from stagger.core.durations import check_duration
from stagger.core.errors import InvalidInput
from stagger.core.names import GROUP_RE as GROUP_RE
from stagger.core.names import MAX_GROUP_LEN as MAX_GROUP_LEN
from stagger.core.names import MAX_ID_LEN as MAX_ID_LEN
from stagger.core.names import MAX_SLOTS as MAX_SLOTS
from stagger.core.names import NODE_ID_RE as NODE_ID_RE
from stagger.core.names import NODE_ID_RULE as NODE_ID_RULE
from stagger.core.names import validate_group as validate_group
from stagger.core.names import validate_id as validate_id
from stagger.core.names import validate_max as validate_max
from stagger.core.names import validate_name as validate_name
from stagger.core.names import validate_node_id as validate_node_id
from stagger.core.rollout_gate import Budget, Rollout, gate
from stagger.core.text import check_operator_text
from stagger.core.times import check_instant, later
from stagger.core.turns import (
    Waiter,
    cooling_ends,
    known_nodes,
    mark_due,
    pacing_until,
    percent_slots,
    places,
    places_valid_until,
    queue,
    validate_percent,
)

DEFAULT_GROUP = "default"
# The fleet-wide pause is kept as the pause of this reserved pseudo-group (not a valid name).
FLEET = "*"
DEFAULT_MAX = 1
DEFAULT_STALE_AFTER = timedelta(minutes=15)
HISTORY_LIMIT = 1000
# A node that gave back a slot in a rollout's group is remembered as a member of it this long.
MEMBER_MEMORY = timedelta(days=30)
# A heartbeat more frequent than this writes nothing (docs/backends.md: at most one a minute).
TOUCH_INTERVAL = timedelta(minutes=1)
# The fair queue's most places (docs/rollout.md, "Fair order"): far more than the slots any
# group frees between two asks of its nodes, and a record that stays ~70 KB with 32-character
# ids (~300 KB with the longest ids) under etcd's 1.5 MiB request limit (docs/backends.md). A
# node denied while the queue is full gets no place and writes nothing; it joins once one frees.
QUEUE_LIMIT = 1000


@dataclass(frozen=True)
class Hold:
    """One node's slot. `expires_at` is set only when the group has a hold_ttl."""

    id: str
    since: datetime
    last_seen: datetime
    expires_at: datetime | None = None
    note: str = ""

    def is_stale(self, now: datetime, stale_after: timedelta) -> bool:
        return now - self.last_seen > stale_after

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Pause:
    """An operator's stop: reboots wait (updates do not). `until=None` means until resumed."""

    reason: str
    by: str
    since: datetime
    until: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True)
class Urgent:
    """An operator's emergency reboot of one node (`stagger need-reboot --now`): the node's
    agent skips its window for it — never a pause, and a blackout only with
    `ignore_blackouts` — but still takes a slot and runs its drain and health gate."""

    reason: str
    by: str
    since: datetime
    ignore_blackouts: bool = False

    def describe(self) -> str:
        blackouts = "; blackouts ignored too" if self.ignore_blackouts else ""
        return (
            f"an urgent reboot asked by {self.by}: {self.reason} (the window is skipped{blackouts})"
        )


class Action(StrEnum):
    """What an event records; the same words appear in history, metrics and notifications."""

    ACQUIRED = "acquired"
    RELEASED = "released"
    EXPIRED = "expired"
    MAX_CHANGED = "max_changed"
    CONFIGURED = "configured"
    PAUSED = "paused"
    RESUMED = "resumed"
    FORGOTTEN = "forgotten"  # an operator removed a node's report (`stagger forget`)
    REBOOT_ASKED = "reboot_asked"  # an operator asked one node for an emergency reboot
    ROLLOUT_SET = "rollout_set"  # a rollout began (`stagger rollout set`, or a node asked again)
    ROLLOUT_CLEARED = "rollout_cleared"
    STAGE_DONE = "stage_done"  # a rollout stage ended (done, or closed by close_after)
    ROLLOUT_HALTED = "rollout_halted"  # max_failures nodes halted: the rollout paused itself


@dataclass(frozen=True)
class Event:
    time: datetime
    group: str
    action: Action
    by: str
    id: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Semaphore:
    group: str
    max: int = DEFAULT_MAX
    holds: Mapping[str, Hold] = field(default_factory=dict)
    pause: Pause | None = None
    hold_ttl: timedelta | None = None
    stale_after: timedelta = DEFAULT_STALE_AFTER
    # Only in the FLEET record: each paused node's pause (stagger pause --node), kept beside
    # the fleet-wide pause so an acquire reads and guards one record for both.
    node_pauses: Mapping[str, Pause] = field(default_factory=dict)
    # Only in the FLEET record: each node's emergency reboot asked through the store (stagger
    # need-reboot --now --node ID), until its agent has rebooted for it and clears it.
    urgent_reboots: Mapping[str, Urgent] = field(default_factory=dict)
    # A max given as a percentage of the known nodes (turns.py); None: `max` is the count.
    max_percent: int | None = None
    # After a slot is freed, it is not granted again for this long (None: at once).
    pace: timedelta | None = None
    # When slots were freed while a pace is set (only those still cooling are kept).
    releases: tuple[datetime, ...] = ()
    # Each node's last ask, grant or release in this group (the group's memory of its nodes:
    # kept for stale_after, and only where a decision reads it: a waiter's, and every node's
    # while the group has a percentage max; _tidy), and each queued node's first ask (the fair
    # queue's order, at most queue_limit places).
    seen: Mapping[str, datetime] = field(default_factory=dict)
    waiting: Mapping[str, datetime] = field(default_factory=dict)
    # The fair queue's most places: QUEUE_LIMIT (smaller only in tests). Not stored.
    queue_limit: int = field(default=QUEUE_LIMIT, compare=False, repr=False)
    # False for a group the store has never written (its defaults): setting a value equal to a
    # default then still writes, so the group an operator named exists from then on. Not
    # stored, not compared: two views of the same group are equal whether written or not.
    stored: bool = field(default=True, compare=False)
    # Only in the FLEET record: the rollout's stages and budget (core/rollout.py).
    rollout: Rollout | None = None
    # The nodes of a group in a rollout's stage that gave their own slot back, and when
    # (kept MEMBER_MEMORY): a FleetLock client's finished cycle, and, from an earlier
    # rollout, a member the next rollout waits for (core/rollout.py).
    finished: Mapping[str, datetime] = field(default_factory=dict)
    # The nodes a rollout's gate denied in this group, when each first asked in that rollout
    # (written once per node and rollout): a FleetLock client waiting for an earlier stage is
    # known to the rollout by nothing else. (Not the fair queue, `waiting` above.)
    gated: Mapping[str, datetime] = field(default_factory=dict)
    # The group's error budget (set-max --max-failures), and the halted nodes that last made
    # the group pause itself: it pauses again only for a new one.
    max_failures: Budget | None = None
    budget_tripped: tuple[str, ...] = ()
    # The places last computed (places()), with when and until when they hold: a value of a
    # long queue answers many asks, and recounting the queue on each would cost its length.
    _places: list[tuple[datetime, datetime | None, dict[str, int]]] = field(
        default_factory=list, init=False, compare=False, repr=False
    )

    def live_holds(self, now: datetime) -> list[Hold]:
        return [h for h in self.holds.values() if not h.is_expired(now)]

    def stale_holds(self, now: datetime) -> list[Hold]:
        return [h for h in self.live_holds(now) if h.is_stale(now, self.stale_after)]

    def holders(self, now: datetime) -> tuple[str, ...]:
        return tuple(sorted(h.id for h in self.live_holds(now)))

    def known(self, now: datetime) -> frozenset[str]:
        """The nodes a percentage max counts: holders, and those seen within stale_after."""
        return known_nodes(self.holds, self.seen, now, self.stale_after)

    def slots(self, now: datetime) -> int:
        """The max in force at `now`: the count, or the percentage of the known nodes."""
        if self.max_percent is None:
            return self.max
        return percent_slots(self.max_percent, len(self.known(now)))

    def limit_text(self) -> str:
        """The max as it was set: `3` or `10%`."""
        return f"{self.max_percent}%" if self.max_percent is not None else str(self.max)

    def cooling(self, now: datetime) -> list[datetime]:
        """When each freed slot still cooling down (pace) may be granted again."""
        return cooling_ends(self.releases, now, self.pace)

    def queue(self, now: datetime) -> tuple[Waiter, ...]:
        """The nodes waiting for a slot, first asked first."""
        return queue(self.waiting, self.seen, now, self.stale_after, exclude=self.holds)

    def places(self, now: datetime) -> Mapping[str, int]:
        """Each waiter's 1-based place at `now` (turns.places), kept while it holds."""
        if self._places:
            at, until, found = self._places[0]
            if at <= now and (until is None or now <= until):
                return found
        found = places(self.waiting, self.seen, now, self.stale_after, exclude=self.holds)
        self._places[:] = [(now, places_valid_until(found, self.seen, self.stale_after), found)]
        return found

    def active_pause(self, now: datetime, fleet: Pause | None = None) -> Pause | None:
        """The pause in force: the group's own, else a fleet-wide one."""
        for p in (self.pause, fleet):
            if p is not None and p.active(now):
                return p
        return None


# --- outcomes ---------------------------------------------------------------------------


# How a `blocked` denial's sentence begins; what follows is its detail (read back by clients).
BLOCKED_PREFIX = "reboots are blocked: "


class DenyReason(StrEnum):
    FULL = "full"
    PAUSED = "paused"
    # A fleet-wide blocker (core/blockers.py) says no: decided by the server, never stored.
    BLOCKED = "blocked"
    ROLLOUT_WAITING = "rollout_waiting"  # an earlier rollout stage has not ended and baked
    PACING = "pacing"  # a freed slot is cooling down (the group's pace); see `until`
    QUEUED = "queued"  # a slot is free, but nodes that asked earlier come first


@dataclass(frozen=True)
class Granted:
    hold: Hold
    already_held: bool


@dataclass(frozen=True)
class Denied:
    reason: DenyReason
    max: int
    holders: tuple[str, ...] = ()
    pause: Pause | None = None
    # Set when the pause in force is this node's own (stagger pause --node), not a group's.
    node: str = ""
    # BLOCKED: which blockers block, and why (core.blockers.Blocked.reason).
    detail: str = ""
    # A rollout_waiting denial: the stage that must end first, when its bake ends (if baking),
    # and whether this ask begins a new rollout (the last one was complete).
    stage: str = ""
    bake_ends: datetime | None = None
    restart: bool = False
    # PACING: when a cooling slot may be granted again.
    until: datetime | None = None
    # The node's 1-based place in the group's queue (None: not queued, e.g. its own pause).
    position: int | None = None
    # Set when the queue was full (QUEUE_LIMIT) so this node got no place: the queue's length.
    queue_full: int = 0

    def sentence(self) -> str:
        if self.position:
            return self._why() + f"; this node is number {self.position} in the queue"
        if self.queue_full:
            return self._why() + (
                f"; the queue is full ({self.queue_full} nodes wait): this node has no place "
                "yet and keeps asking; it joins the queue when a place frees"
            )
        return self._why()

    def _why(self) -> str:
        if self.reason is DenyReason.BLOCKED:
            return BLOCKED_PREFIX + (self.detail or "a blocker says no")
        if self.reason is DenyReason.ROLLOUT_WAITING:
            if self.restart:
                return "the last rollout is complete: a new one begins with stage 1; ask again"
            if self.bake_ends is not None:
                return (
                    f"waiting for {self.stage} to finish its bake at {self.bake_ends.isoformat()}"
                )
            return f"waiting for {self.stage} to finish (every node rebooted or reporting no need)"
        if self.reason is DenyReason.PAUSED and self.pause is not None:
            until = f" until {self.pause.until.isoformat()}" if self.pause.until else ""
            what = f"node {self.node} is paused" if self.node else "reboots are paused"
            return f"{what}{until} by {self.pause.by}: {self.pause.reason}"
        if self.reason is DenyReason.PACING and self.until is not None:
            return (
                f"the group is pacing its reboots: a freed slot may be granted again at "
                f"{self.until.isoformat()}"
            )
        if self.reason is DenyReason.QUEUED:
            ahead = self.position - 1 if self.position else self.queue_full
            return f"a slot is free, but {ahead} node(s) asked before this one and go first"
        return f"all {self.max} slot(s) are held by: {', '.join(self.holders) or '(nobody)'}"


@dataclass(frozen=True)
class Released:
    hold: Hold
    by: str


@dataclass(frozen=True)
class NotHeld:
    id: str


OutcomeT = TypeVar("OutcomeT")


@dataclass(frozen=True)
class Change(Generic[OutcomeT]):
    """The result of one operation: the new value, what happened, and what to record."""

    semaphore: Semaphore
    outcome: OutcomeT
    events: tuple[Event, ...] = ()
    # True when the value changed without an event worth keeping (a heartbeat).
    dirty: bool = False

    def __post_init__(self) -> None:
        # A change is written, so the group it leaves is a stored one: the next operation on
        # it (in the same etcd batch, say) must not take it for a group never written.
        if self.changed and not self.semaphore.stored:
            object.__setattr__(self, "semaphore", replace(self.semaphore, stored=True))

    @property
    def changed(self) -> bool:
        return self.dirty or bool(self.events)


# --- operations --------------------------------------------------------------------------


def _with_holds(sem: Semaphore, holds: Mapping[str, Hold]) -> Semaphore:
    return replace(sem, holds=dict(holds))


def _tidy(sem: Semaphore, now: datetime) -> Semaphore:
    """`sem` without what no decision reads any more: releases whose cool-down ended, nodes
    not seen within stale_after, queue places of nodes that left the queue, and, without a
    percentage max, the last asks of nodes that are not queued (only the queue reads them;
    a holder has its own last_seen). Applied on every write, so the record stays bounded by
    the queue (queue_limit) and, with a percentage max, the nodes active within stale_after
    (docs/backends.md, "What a write costs")."""
    seen = {k: t for k, t in sem.seen.items() if now - t <= sem.stale_after}
    waiting = {k: t for k, t in sem.waiting.items() if k in seen and k not in sem.holds}
    if sem.max_percent is None:
        seen = {k: t for k, t in seen.items() if k in waiting}
    releases = tuple(t for t in sem.releases if sem.pace is not None and t + sem.pace > now)
    return replace(sem, seen=seen, waiting=waiting, releases=releases)


def _freed(
    sem: Semaphore, keep: Mapping[str, Hold], gone: tuple[Hold, ...], now: datetime
) -> Semaphore:
    """`sem` with only the holds `keep`: each hold `gone` frees a slot, which starts its
    cool-down when the group has a pace, and its node is remembered as seen now."""
    releases = sem.releases + (now,) * len(gone) if sem.pace is not None else ()
    seen = {**sem.seen, **{h.id: now for h in gone}}
    return _tidy(replace(sem, holds=dict(keep), releases=releases, seen=seen), now)


def expire(sem: Semaphore, now: datetime) -> Change[tuple[Hold, ...]]:
    """Drop holds whose expiry (from the group's hold_ttl) has passed by `now`."""
    gone = tuple(h for h in sem.holds.values() if h.is_expired(now))
    if not gone:
        return Change(sem, ())
    keep = {k: h for k, h in sem.holds.items() if not h.is_expired(now)}
    events = tuple(
        Event(now, sem.group, Action.EXPIRED, "stagger", h.id, "hold_ttl passed") for h in gone
    )
    return Change(_freed(sem, keep, gone, now), gone, events)


def expire_lost(sem: Semaphore, alive: frozenset[str], now: datetime) -> Change[tuple[Hold, ...]]:
    """Drop holds whose backend-side lease is gone (etcd judges expiry by its own clock)."""
    if sem.hold_ttl is None:
        return Change(sem, ())
    gone = tuple(h for h in sem.holds.values() if h.id not in alive)
    if not gone:
        return Change(sem, ())
    keep = {k: h for k, h in sem.holds.items() if k in alive}
    events = tuple(
        Event(now, sem.group, Action.EXPIRED, "stagger", h.id, "hold lease expired") for h in gone
    )
    return Change(_freed(sem, keep, gone, now), gone, events)


def acquire(
    sem: Semaphore,
    node_id: str,
    now: datetime,
    *,
    note: str = "",
    fleet_pause: Pause | None = None,
    node_pause: Pause | None = None,
    by: str | None = None,
    rollout: Rollout | None = None,
) -> Change[Granted | Denied]:
    """Take a slot for `node_id`. Recursive: a holder asking again is granted, nothing written.
    `by` is who asked: the node itself (the default) or an operator taking a slot for it.
    `node_pause` is this node's own pause (node_pause_of): it refuses a new hold, never an
    existing one, and is named before a group's or the fleet's pause.

    A node that cannot have a slot yet takes its place in the group's queue (turns.py): that
    is written when it joins and when its last-ask mark is due, never on every ask."""
    validate_node_id(node_id)
    check_operator_text(note, "the note")
    check_operator_text(by or "", "by")
    swept = expire(sem, now)
    sem = swept.semaphore
    held = sem.holds.get(node_id)
    if held is not None:
        return Change(sem, Granted(held, already_held=True), swept.events)
    if node_pause is not None and node_pause.active(now):
        denied = Denied(
            DenyReason.PAUSED, sem.slots(now), sem.holders(now), node_pause, node=node_id
        )
        return Change(sem, denied, swept.events)
    turn = lineup(sem, now, fleet_pause=fleet_pause, asking=node_id, rollout=rollout).outcome
    gated = (
        turn.denial if turn.denial and turn.denial.reason is DenyReason.ROLLOUT_WAITING else None
    )
    if rollout is not None and gated is not None:
        return _note_gated(sem, node_id, now, rollout, Change(sem, gated, swept.events))
    if turn.grants(node_id):
        expires = later(now, sem.hold_ttl) if sem.hold_ttl is not None else None
        hold = Hold(node_id, since=now, last_seen=now, expires_at=expires, note=note)
        event = Event(now, sem.group, Action.ACQUIRED, by or node_id, node_id, note)
        new = replace(
            sem,
            holds={**sem.holds, node_id: hold},
            seen={**sem.seen, node_id: now},
            waiting={k: t for k, t in sem.waiting.items() if k != node_id},
        )
        return Change(_tidy(new, now), Granted(hold, already_held=False), (*swept.events, event))
    denied = turn.denial_of(node_id)
    # A group never written is not created by a denial (a typo's group stays unknown): its
    # askers get no place until its first grant, set-max or pause writes it.
    if not turn.writes(node_id, now) or not sem.stored:
        return Change(sem, denied, swept.events)
    # It joins at the end (leaving a place it had left), unless the queue is full: then only
    # its ask is noted (under a percentage max, where it counts among the known nodes).
    waiting = sem.waiting
    if node_id not in turn.queue and not turn.full:
        waiting = {k: t for k, t in waiting.items() if k != node_id} | {node_id: now}
    new = _tidy(replace(sem, seen={**sem.seen, node_id: now}, waiting=waiting), now)
    return Change(new, denied, swept.events, dirty=True)


@dataclass(frozen=True)
class Lineup:
    """What a lock asked on one group value answers every id that holds no slot and has no
    pause of its own (decided once per value, so one value answers many callers): the group's
    own denial (pause, full, pacing) or None, the slots free for new grants, and the queue."""

    denial: Denied | None
    slots: int
    free: int
    queue: Mapping[str, int]  # each waiter's 1-based place
    seen: Mapping[str, datetime]  # the waiters' last asks (and other nodes')
    stale_after: timedelta
    holders: tuple[str, ...] = ()
    limit: int = QUEUE_LIMIT  # the queue's most places
    # A percentage max: every node's ask counts (the known nodes), queued or not.
    counts_all: bool = False

    @property
    def length(self) -> int:
        return len(self.queue)

    @property
    def full(self) -> bool:
        """Whether a node not in the queue is denied without a place (and without a write)."""
        return self.length >= self.limit

    def position(self, node_id: str) -> int:
        """`node_id`'s place: its own in the queue, else the next one (it would join)."""
        place = self.queue.get(node_id)
        return place if place is not None else self.length + 1

    def grants(self, node_id: str) -> bool:
        """Whether a lock by `node_id` takes a slot now: one is free for its place."""
        return self.denial is None and self.position(node_id) <= self.free

    def writes(self, node_id: str, now: datetime) -> bool:
        """Whether a lock by `node_id` changes the group: a grant, joining the queue (unless
        it is full), or a last-ask mark that is due (turns.mark_due): a waiter's, and under a
        percentage max that of a node the full queue has no place for (it is a known node)."""
        if self.grants(node_id):
            return True
        if node_id in self.queue or (self.full and self.counts_all):
            return mark_due(self.seen.get(node_id), now, self.stale_after)
        return not self.full

    def denial_of(self, node_id: str) -> Denied:
        """The denial of a lock by `node_id` that is not granted (grants() is False): with its
        place in the queue, or, when the queue is full and it has none, the queue's length."""
        position: int | None = self.position(node_id)
        full = 0
        if node_id not in self.queue and self.full:
            position, full = None, self.length
        if self.denial is not None:
            return replace(self.denial, position=position, queue_full=full)
        return Denied(
            DenyReason.QUEUED, self.slots, self.holders, position=position, queue_full=full
        )


def lineup(
    sem: Semaphore,
    now: datetime,
    *,
    fleet_pause: Pause | None = None,
    asking: str = "",
    rollout: Rollout | None = None,
) -> Change[Lineup]:
    """The Lineup of `sem` at `now`, counting `asking` (the node asking, if one) among the
    known nodes of a percentage max."""
    decided = admission(sem, now, fleet_pause=fleet_pause, asking=asking, rollout=rollout)
    sem = decided.semaphore
    slots = sem.slots(now) if not asking else _with_seen(sem, asking, now).slots(now)
    free = 0 if decided.outcome is not None else slots - len(sem.holds) - len(sem.cooling(now))
    waiting = sem.places(now)
    turn = Lineup(
        decided.outcome,
        slots,
        max(free, 0),
        waiting,
        sem.seen,
        sem.stale_after,
        sem.holders(now),
        sem.queue_limit,
        sem.max_percent is not None,
    )
    return Change(sem, turn, decided.events)


def _with_seen(sem: Semaphore, node_id: str, now: datetime) -> Semaphore:
    return replace(sem, seen={**sem.seen, node_id: now})


def waiting_in(sem: Semaphore, rollout: Rollout | None) -> frozenset[str]:
    """The nodes the rollout's gate already noted as waiting in this group (in this rollout)."""
    if rollout is None:
        return frozenset()
    return frozenset(k for k, t in sem.gated.items() if t >= rollout.started_at)


def _note_gated(
    sem: Semaphore, node_id: str, now: datetime, rollout: Rollout, admitted: Change[Denied]
) -> Change[Granted | Denied]:
    """A rollout_waiting denial, noting `node_id` as waiting the first time it asks in this
    rollout (one write per node and rollout; a repeated ask writes nothing)."""
    denied = admitted.outcome
    assert denied is not None
    if denied.restart or node_id in waiting_in(sem, rollout):
        return Change(sem, denied, admitted.events)
    kept = {k: t for k, t in sem.gated.items() if t >= rollout.started_at}
    new = replace(sem, gated={**kept, node_id: now})
    return Change(new, denied, admitted.events, dirty=True)


def admission(
    sem: Semaphore,
    now: datetime,
    *,
    fleet_pause: Pause | None = None,
    asking: str = "",
    rollout: Rollout | None = None,
) -> Change[Denied | None]:
    """The group's own answer at `now` to every id that holds no slot after expiry (the new
    value's `holds`) and has no pause of its own: the same denial for all of them (paused,
    rollout_waiting, full, pacing), or None when a slot is free (who gets it is the queue's
    business: Lineup). One group value answers many callers, so this is decided once per
    value, not per id. `asking` counts as a known node for a percentage max. `rollout` is the
    FLEET record's: a group in a stage whose earlier stages have not ended and baked waits
    (core/rollout_gate.py)."""
    swept = expire(sem, now)
    sem = swept.semaphore
    slots = sem.slots(now) if not asking else _with_seen(sem, asking, now).slots(now)
    holders = sem.holders(now)
    pause = sem.active_pause(now, fleet_pause)
    if pause is not None:
        return Change(sem, Denied(DenyReason.PAUSED, slots, holders, pause), swept.events)
    waiting = gate(rollout, sem.group, now)
    if waiting is not None:
        denied = Denied(
            DenyReason.ROLLOUT_WAITING,
            slots,
            holders,
            stage=waiting.name,
            bake_ends=waiting.bake_ends,
            restart=waiting.restart,
        )
        return Change(sem, denied, swept.events)
    ends = sem.cooling(now)
    if len(sem.holds) + len(ends) >= slots:
        until = pacing_until(ends, len(sem.holds), slots)
        if until is None:
            return Change(sem, Denied(DenyReason.FULL, slots, holders), swept.events)
        return Change(sem, Denied(DenyReason.PACING, slots, holders, until=until), swept.events)
    return Change(sem, None, swept.events)


def admission_until(
    sem: Semaphore,
    now: datetime,
    *,
    fleet_pause: Pause | None = None,
    rollout: Rollout | None = None,
) -> datetime | None:
    """Until when `admission` (and the lineup) answers as it does at `now`: it reads the clock
    only through hold expiry, pause ends, cooling slots and the group's memory, so its answer
    is the same at every instant from `now` up to (not including) the first of those after
    `now`. None: no instant changes it. `now` itself (the answer holds at that instant only)
    with a rollout, whose bakes and close_after are judged at each instant, and with a pace
    and a hold already expired but not yet swept, whose slot cools from the instant it is."""
    if rollout is not None:
        return now
    if sem.pace is not None and any(h.is_expired(now) for h in sem.holds.values()):
        return now
    ends = [h.expires_at for h in sem.holds.values() if h.expires_at is not None]
    ends += [p.until for p in (sem.pause, fleet_pause) if p is not None and p.until is not None]
    # A pace's cooling slots come free, and a node seen leaves the group's memory (the known
    # nodes of a percentage max, and the queue) after stale_after.
    if sem.pace is not None:
        ends += [t + sem.pace for t in sem.releases]
    ends += [t + sem.stale_after for t in sem.seen.values()]
    later = [t for t in ends if t > now]
    return min(later) if later else None


def release(
    sem: Semaphore, node_id: str, now: datetime, *, by: str, rollout: Rollout | None = None
) -> Change[Released | NotHeld]:
    """Give back `node_id`'s slot. Idempotent: not holding is a success that writes nothing.
    `by` is the node itself or an operator (releasing another id's hold is an admin act).
    With a `rollout` whose stages name the group, the node is recorded as finished."""
    validate_id(node_id)
    check_operator_text(by, "by")
    held = sem.holds.get(node_id)
    if held is None:
        return Change(sem, NotHeld(node_id))
    keep = {k: h for k, h in sem.holds.items() if k != node_id}
    detail = "" if by == node_id else "released by an operator"
    event = Event(now, sem.group, Action.RELEASED, by, node_id, detail)
    new = _freed(sem, keep, (held,), now)
    if rollout is not None and rollout.stage_of(sem.group) is not None and by == node_id:
        # The rollout's record of a finished cycle (core/rollout.py), in the same write; an
        # entry older than MEMBER_MEMORY is dropped. An operator's unlock is no finished cycle.
        kept = {k: t for k, t in sem.finished.items() if now - t <= MEMBER_MEMORY}
        new = replace(new, finished={**kept, node_id: now})
    return Change(new, Released(held, by), (event,))


def touch_interval(sem: Semaphore) -> timedelta:
    """How often a heartbeat writes: once a minute, or a third of a shorter hold_ttl so that a
    live holder's heartbeats always renew its hold before it expires."""
    if sem.hold_ttl is not None:
        return min(TOUCH_INTERVAL, sem.hold_ttl / 3)
    return TOUCH_INTERVAL


def touch(sem: Semaphore, node_id: str, now: datetime) -> Change[Hold | None]:
    """A holder's heartbeat: refresh last_seen (and the ttl expiry). Returns the hold, or None
    when `node_id` holds nothing (an operator released it: the agent should notice).
    Not recorded in history, and a heartbeat within touch_interval() of the last one writes
    nothing."""
    held = sem.holds.get(node_id)
    if held is None or held.is_expired(now):
        return Change(sem, None)
    if now - held.last_seen < touch_interval(sem):
        return Change(sem, held)
    expires = later(now, sem.hold_ttl) if sem.hold_ttl is not None else None
    fresh = replace(held, last_seen=now, expires_at=expires)
    new = _with_holds(sem, {**sem.holds, node_id: fresh})
    return Change(new, fresh, dirty=True)


def set_max(
    sem: Semaphore, value: int, now: datetime, *, by: str, percent: bool = False
) -> Change[int]:
    """Change the slot count (or, with `percent`, the percentage of the known nodes), live.
    Lowering it below the holders evicts nobody."""
    if percent:
        validate_percent(value)
        new = replace(sem, max_percent=value)
    else:
        validate_max(value)
        new = replace(sem, max=value, max_percent=None)
    check_operator_text(by, "by")
    if new.limit_text() == sem.limit_text() and sem.stored:
        return Change(sem, value)
    text = new.limit_text()
    detail = f"{sem.limit_text()} -> {text}" if sem.stored else f"new group, max {text}"
    event = Event(now, sem.group, Action.MAX_CHANGED, by, detail=detail)
    # A count max forgets at once the nodes only a percentage counted (_tidy).
    return Change(_tidy(new, now), value, (event,))


def set_pace(
    sem: Semaphore, pace: timedelta | None, now: datetime, *, by: str
) -> Change[timedelta | None]:
    """Set how long a freed slot cools down before it is granted again (None: no pace)."""
    check_operator_text(by, "by")
    if pace is not None:
        if pace <= timedelta(0):
            raise InvalidInput("pace must be longer than 0 s (or none, for no pace)")
        check_duration(pace, "pace")
    if pace == sem.pace and sem.stored:
        return Change(sem, pace)
    releases = sem.releases if pace is not None else ()
    new = _tidy(replace(sem, pace=pace, releases=releases), now)
    detail = f"pace {sem.pace or 'none'} -> {pace or 'none'}"
    return Change(new, pace, (Event(now, sem.group, Action.CONFIGURED, by, detail=detail),))


def configure(
    sem: Semaphore,
    now: datetime,
    *,
    by: str,
    hold_ttl: timedelta | None,
    stale_after: timedelta,
) -> Change[Semaphore]:
    """Set the group's hold_ttl (None: holds never expire) and stale_after."""
    check_operator_text(by, "by")
    if hold_ttl is not None and hold_ttl <= timedelta(0):
        raise InvalidInput("hold_ttl must be longer than 0 s (or unset, so holds never expire)")
    if stale_after <= timedelta(0):
        raise InvalidInput("stale_after must be longer than 0 s")
    if hold_ttl is not None:
        check_duration(hold_ttl, "hold_ttl")
    check_duration(stale_after, "stale_after")
    if hold_ttl == sem.hold_ttl and stale_after == sem.stale_after and sem.stored:
        return Change(sem, sem)
    new = replace(sem, hold_ttl=hold_ttl, stale_after=stale_after)
    detail = f"hold_ttl={hold_ttl or 'none'} stale_after={stale_after}"
    return Change(new, new, (Event(now, sem.group, Action.CONFIGURED, by, detail=detail),))


def pause(
    sem: Semaphore, now: datetime, *, by: str, reason: str, until: datetime | None = None
) -> Change[Pause]:
    """Stop new grants in this group. Holders keep their slots; updates keep flowing."""
    if not reason.strip():
        raise InvalidInput("a pause needs a reason (--reason TEXT): it is shown to everyone")
    check_operator_text(reason, "the pause reason")
    check_operator_text(by, "by")
    if until is not None:
        check_instant(until, "pause end")
    if until is not None and until <= now:
        raise InvalidInput(f"pause end {until.isoformat()} is already past: give a future time")
    old = sem.pause
    same = old is not None and (old.reason, old.by, old.until) == (reason.strip(), by, until)
    if old is not None and same and old.active(now):
        # The same pause again (a retried command): nothing changes, so nothing is written.
        return Change(sem, old)
    p = Pause(reason=reason.strip(), by=by, since=now, until=until)
    detail = reason.strip() + (f" (until {until.isoformat()})" if until else "")
    return Change(
        replace(sem, pause=p), p, (Event(now, sem.group, Action.PAUSED, by, detail=detail),)
    )


def resume(sem: Semaphore, now: datetime, *, by: str) -> Change[Pause | None]:
    """Lift the group's pause. Resuming an unpaused group writes nothing."""
    check_operator_text(by, "by")
    if sem.pause is None:
        return Change(sem, None)
    event = Event(now, sem.group, Action.RESUMED, by, detail=sem.pause.reason)
    return Change(replace(sem, pause=None), sem.pause, (event,))

"""A group's reboot semaphore, as a value.

Rules of this file:
- Everything that decides who may hold a slot lives here; backends only load a Semaphore,
  call one operation, and compare-and-swap the result.
- Operations are pure: they take the current value (and `now` where time matters) and return
  a Change: the new value, an outcome, and the event to record. `event is None` means nothing
  changed, and a backend then writes nothing.
- Invariant: a grant never makes the number of live holds exceed `max`. Lowering `max` evicts
  nobody; it only blocks new grants until enough holders release.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from stagger.core.durations import check_duration
from stagger.core.errors import InvalidInput
from stagger.core.rollout_gate import Budget, Rollout, gate
from stagger.core.text import check_operator_text
from stagger.core.times import check_instant, later

# No leading dot: "." and ".." are not names a URL path can carry (clients resolve them).
GROUP_RE = re.compile(r"^[a-zA-Z0-9-][a-zA-Z0-9.-]*$")
MAX_GROUP_LEN = 128
MAX_ID_LEN = 256
# The rule for an id that takes a slot: it must fit in one URL path segment and one key, so
# whoever can lock it can also release, touch, report and forget it. It admits hostnames and
# FQDNs, Zincati's and Flatcar's 32-hex-digit ids, UUIDs and `host:port`.
NODE_ID_RE = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]*$")
NODE_ID_RULE = (
    f"1 to {MAX_ID_LEN} characters from A-Z, a-z, 0-9, '.', '_', ':' and '-', not starting with '.'"
)
MAX_SLOTS = 10_000
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


def validate_name(name: str, what: str, example: str) -> str:
    """A name that is also a key path segment (a group, a server role): 1 to MAX_GROUP_LEN
    characters from a-z, A-Z, 0-9, '.' and '-'."""
    if not name or len(name) > MAX_GROUP_LEN or not GROUP_RE.fullmatch(name):
        raise InvalidInput(
            f"{what} {name!r} is not valid: use 1 to {MAX_GROUP_LEN} characters from "
            f"a-z, A-Z, 0-9, '.' and '-', not starting with '.' (for example {example})"
        )
    return name


def validate_group(group: str) -> str:
    return validate_name(group, "group", "'web' or 'db.eu-1'")


def validate_id(node_id: str) -> str:
    """Any id a store may already hold (printable text): what release and reads accept, so a
    hold taken before the node id rule existed can still be given back."""
    if not node_id or len(node_id) > MAX_ID_LEN or not node_id.isprintable():
        raise InvalidInput(
            f"node id {node_id!r} is not valid: use 1 to {MAX_ID_LEN} printable characters "
            "(no control characters)"
        )
    return node_id


def validate_node_id(node_id: str) -> str:
    """The rule for an id that takes a slot or sends a report (NODE_ID_RE)."""
    if not node_id or len(node_id) > MAX_ID_LEN or not NODE_ID_RE.fullmatch(node_id):
        raise InvalidInput(f"node id {node_id!r} is not valid: use {NODE_ID_RULE}")
    return node_id


def validate_max(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SLOTS:
        raise InvalidInput(
            f"max {value!r} is not valid: give a whole number from 0 to {MAX_SLOTS} "
            "(0 stops every new reboot in the group)"
        )
    return value


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
    # known to the rollout by nothing else.
    waiting: Mapping[str, datetime] = field(default_factory=dict)
    # The group's error budget (set-max --max-failures), and the halted nodes that last made
    # the group pause itself: it pauses again only for a new one.
    max_failures: Budget | None = None
    budget_tripped: tuple[str, ...] = ()

    def live_holds(self, now: datetime) -> list[Hold]:
        return [h for h in self.holds.values() if not h.is_expired(now)]

    def stale_holds(self, now: datetime) -> list[Hold]:
        return [h for h in self.live_holds(now) if h.is_stale(now, self.stale_after)]

    def holders(self, now: datetime) -> tuple[str, ...]:
        return tuple(sorted(h.id for h in self.live_holds(now)))

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

    def sentence(self) -> str:
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


def expire(sem: Semaphore, now: datetime) -> Change[tuple[Hold, ...]]:
    """Drop holds whose expiry (from the group's hold_ttl) has passed by `now`."""
    gone = tuple(h for h in sem.holds.values() if h.is_expired(now))
    if not gone:
        return Change(sem, ())
    keep = {k: h for k, h in sem.holds.items() if not h.is_expired(now)}
    events = tuple(
        Event(now, sem.group, Action.EXPIRED, "stagger", h.id, "hold_ttl passed") for h in gone
    )
    return Change(_with_holds(sem, keep), gone, events)


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
    return Change(_with_holds(sem, keep), gone, events)


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
    existing one, and is named before a group's or the fleet's pause."""
    validate_node_id(node_id)
    check_operator_text(note, "the note")
    check_operator_text(by or "", "by")
    admitted = admission(sem, now, fleet_pause=fleet_pause, rollout=rollout)
    sem = admitted.semaphore
    held = sem.holds.get(node_id)
    if held is not None:
        return Change(sem, Granted(held, already_held=True), admitted.events)
    if node_pause is not None and node_pause.active(now):
        denied = Denied(DenyReason.PAUSED, sem.max, sem.holders(now), node_pause, node=node_id)
        return Change(sem, denied, admitted.events)
    if admitted.outcome is not None:
        if rollout is not None and admitted.outcome.reason is DenyReason.ROLLOUT_WAITING:
            return _note_waiting(sem, node_id, now, rollout, admitted)
        return Change(sem, admitted.outcome, admitted.events)
    expires = later(now, sem.hold_ttl) if sem.hold_ttl is not None else None
    hold = Hold(node_id, since=now, last_seen=now, expires_at=expires, note=note)
    event = Event(now, sem.group, Action.ACQUIRED, by or node_id, node_id, note)
    new = _with_holds(sem, {**sem.holds, node_id: hold})
    return Change(new, Granted(hold, already_held=False), (*admitted.events, event))


def waiting_in(sem: Semaphore, rollout: Rollout | None) -> frozenset[str]:
    """The nodes the rollout's gate already noted as waiting in this group (in this rollout)."""
    if rollout is None:
        return frozenset()
    return frozenset(k for k, t in sem.waiting.items() if t >= rollout.started_at)


def _note_waiting(
    sem: Semaphore, node_id: str, now: datetime, rollout: Rollout, admitted: Change[Denied | None]
) -> Change[Granted | Denied]:
    """A rollout_waiting denial, noting `node_id` as waiting the first time it asks in this
    rollout (one write per node and rollout; a repeated ask writes nothing)."""
    denied = admitted.outcome
    assert denied is not None
    if denied.restart or node_id in waiting_in(sem, rollout):
        return Change(sem, denied, admitted.events)
    kept = {k: t for k, t in sem.waiting.items() if t >= rollout.started_at}
    new = replace(sem, waiting={**kept, node_id: now})
    return Change(new, denied, admitted.events, dirty=True)


def admission(
    sem: Semaphore,
    now: datetime,
    *,
    fleet_pause: Pause | None = None,
    rollout: Rollout | None = None,
) -> Change[Denied | None]:
    """What `acquire` answers at `now` to every id that holds no slot after expiry (the new
    value's `holds`) and has no pause of its own: the same denial for all of them, or None
    when it would grant a slot. One group value answers many callers, so this is decided
    once per value, not per id. `rollout` is the FLEET record's: a group in a stage whose
    earlier stages have not ended and baked waits (core/rollout_gate.py)."""
    swept = expire(sem, now)
    sem = swept.semaphore
    pause = sem.active_pause(now, fleet_pause)
    if pause is not None:
        return Change(
            sem, Denied(DenyReason.PAUSED, sem.max, sem.holders(now), pause), swept.events
        )
    waiting = gate(rollout, sem.group, now)
    if waiting is not None:
        denied = Denied(
            DenyReason.ROLLOUT_WAITING,
            sem.max,
            sem.holders(now),
            stage=waiting.name,
            bake_ends=waiting.bake_ends,
            restart=waiting.restart,
        )
        return Change(sem, denied, swept.events)
    if len(sem.holds) >= sem.max:
        return Change(sem, Denied(DenyReason.FULL, sem.max, sem.holders(now)), swept.events)
    return Change(sem, None, swept.events)


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
    new = _with_holds(sem, keep)
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


def set_max(sem: Semaphore, value: int, now: datetime, *, by: str) -> Change[int]:
    """Change the slot count, live. Lowering it below the holders evicts nobody."""
    validate_max(value)
    check_operator_text(by, "by")
    if value == sem.max and sem.stored:
        return Change(sem, value)
    detail = f"{sem.max} -> {value}" if sem.stored else f"new group, max {value}"
    event = Event(now, sem.group, Action.MAX_CHANGED, by, detail=detail)
    return Change(replace(sem, max=value), value, (event,))


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


# --- one node's pause (kept in the FLEET record) ----------------------------------------


def node_pause_of(fleet: Semaphore | None, node_id: str, now: datetime) -> Pause | None:
    """`node_id`'s own pause in force at `now`, from the FLEET record (None: not paused)."""
    p = fleet.node_pauses.get(node_id) if fleet is not None else None
    return p if p is not None and p.active(now) else None


def active_node_pauses(fleet: Semaphore | None, now: datetime) -> dict[str, Pause]:
    """Every node pause in force at `now`, by node id (an ended one is simply left out)."""
    if fleet is None:
        return {}
    return {k: p for k, p in sorted(fleet.node_pauses.items()) if p.active(now)}


def pause_node(
    fleet: Semaphore,
    node_id: str,
    now: datetime,
    *,
    by: str,
    reason: str,
    until: datetime | None = None,
) -> Change[Pause]:
    """Stop new grants to one node, in every group (`fleet` is the FLEET record). Its hold,
    if any, stays. Decided by the group pause's own rules (`pause`), so both refuse the same
    inputs. Ended node pauses are dropped on the way, so the record does not grow."""
    validate_node_id(node_id)
    kept = active_node_pauses(fleet, now)
    decided = pause(
        Semaphore(FLEET, pause=kept.get(node_id)), now, by=by, reason=reason, until=until
    )
    p = decided.outcome
    if not decided.changed:
        return Change(fleet, p)
    events = tuple(replace(e, id=node_id) for e in decided.events)
    return Change(replace(fleet, node_pauses={**kept, node_id: p}), p, events)


def resume_node(fleet: Semaphore, node_id: str, now: datetime, *, by: str) -> Change[Pause | None]:
    """Lift one node's pause. Resuming a node that is not paused (or whose pause has ended)
    writes nothing."""
    validate_id(node_id)
    kept = active_node_pauses(fleet, now)
    decided = resume(Semaphore(FLEET, pause=kept.pop(node_id, None)), now, by=by)
    if not decided.changed:
        return Change(fleet, None)
    events = tuple(replace(e, id=node_id) for e in decided.events)
    return Change(replace(fleet, node_pauses=kept), decided.outcome, events)


# --- one node's emergency reboot, asked through the store (kept in the FLEET record) --------


def ask_reboot(
    fleet: Semaphore,
    node_id: str,
    now: datetime,
    *,
    by: str,
    reason: str,
    ignore_blackouts: bool = False,
) -> Change[Urgent]:
    """Ask `node_id`'s agent for an emergency reboot (stagger need-reboot --now --node ID). Its
    reason is checked like a pause's, by the same rules. Asked again, the newer ask replaces
    the older one."""
    validate_node_id(node_id)
    # A pause's checks on reason and by, so both refuse the same text.
    pause(Semaphore(FLEET), now, by=by, reason=reason)
    u = Urgent(reason.strip(), by, now, ignore_blackouts)
    detail = u.reason + (" (blackouts ignored too)" if ignore_blackouts else "")
    event = Event(now, FLEET, Action.REBOOT_ASKED, by, node_id, detail)
    new = replace(fleet, urgent_reboots={**fleet.urgent_reboots, node_id: u})
    return Change(new, u, (event,))


def clear_reboot(
    fleet: Semaphore, node_id: str, now: datetime, *, done_by: datetime | None = None
) -> Change[Urgent | None]:
    """Drop `node_id`'s emergency reboot once its agent rebooted for it: only an ask made
    before `done_by` (the node's last reboot), so a newer ask is kept; None: all of it. Not an
    event of its own (the node's grant and release already tell the story)."""
    validate_id(node_id)
    u = fleet.urgent_reboots.get(node_id)
    if u is None or (done_by is not None and u.since > done_by):
        return Change(fleet, None)
    kept = {k: v for k, v in fleet.urgent_reboots.items() if k != node_id}
    return Change(replace(fleet, urgent_reboots=kept), u, dirty=True)

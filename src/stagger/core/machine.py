"""The node cycle: states, events, actions and the table that joins them.

Rules of this file:
- Everything that decides what a node does next lives here. `step(state, event, now, ctx)`
  is the only entry point; the agent (agent/daemon.py), the simulator and the tests drive it
  and execute the actions it returns. Nothing here does I/O, reads the clock or logs.
- `TABLE[state][event type]` lists every transition. An event a state cannot take raises
  TransitionError: a bug, never a silent no-op. Each entry names the states it may lead to,
  and `step` asserts the handler stayed inside them (Zincati's transition asserts); where an
  event may lead to more than one, the entry says in words when it leads to each (for
  `explain --diagram text`, which shows only the moves `possible_moves` sees `step` take).
- Whether a reboot may start is `strategy.decide`'s answer; this file asks it again at every
  gate (before a slot request, on grant, and right before the reboot) and never re-decides.
- Invariants (tests/test_machine_properties.py): never a Reboot without a held slot when the
  strategy asks for one; never a Reboot outside an open window but an urgent one (never in a
  blackout unless it ignores blackouts, never while paused); never a release after a
  reboot before health passed. The abort paths (hooks failed, window closed or paused before
  the drain finished) release without a reboot and go back to WAITING with back-off.
- Every action with an effect outside the process is preceded by Persist in the same list.
- The reboot-loop guard: a need that a reboot did not clear (the same detector and detail seen
  again after the machine booted) never starts another cycle; the node waits, saying so, until
  the need changes or goes away (an operator's `stagger need-reboot` is a new detail). A
  detector that cannot answer is not a need that went away. `withheld` decides it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from stagger.core.errors import InvalidInput, TransitionError
from stagger.core.schedule import Blackout, Schedule
from stagger.core.semaphore import Pause, Urgent
from stagger.core.strategy import Decision, Situation, Strategy, Verdict, decide


class State(StrEnum):
    IDLE = "idle"  # no reboot is needed
    WAITING = "waiting"  # needed; waiting for the window, a pause to end, a slot or a back-off
    ACQUIRING = "acquiring"  # a slot was asked for; its answer is awaited
    DRAINING = "draining"  # pre-reboot hooks run (with a slot when the strategy needs one)
    REBOOTING = "rebooting"  # the reboot was asked for; the next start tells if it happened
    VERIFYING = "verifying"  # after the reboot: health checks run, the slot is kept meanwhile
    RELEASING = "releasing"  # health passed: the slot is given back
    # Why ABORTING exists: the slot goes back without a reboot, and the node returns to WAITING
    # with back-off instead of IDLE; the release may fail and be retried like RELEASING's.
    ABORTING = "aborting"
    HALTED = "halted"  # health failed after the reboot: the slot is kept, the rollout stops
    # Why DISABLED exists: /etc/stagger/disabled; the node reports its need, never reboots.
    DISABLED = "disabled"


# States in which the node rests with nothing in flight; the gates are judged again there.
RESTING = frozenset({State.IDLE, State.WAITING, State.DISABLED})


# --- values the agent persists --------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """A detector said a reboot is needed: which one, what it said, since when."""

    since: datetime
    detector: str
    detail: str = ""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a round of hooks or health checks."""

    ok: bool
    detail: str
    at: datetime


@dataclass(frozen=True)
class NodeState:
    """Everything the agent saves, and later what node reports publish."""

    cycle: State = State.IDLE
    since: datetime | None = None  # when `cycle` was entered
    reason: str = "no reboot is needed"  # one sentence: why the node is where it is
    needed: Need | None = None
    holds_slot: bool = False
    boot_id: str | None = None  # the boot the agent last ran in
    boot_id_at_reboot: str | None = None  # the boot in which the reboot was asked for
    attempts: int = 0  # aborted attempts in a row (drives the back-off)
    retry_at: datetime | None = None  # WAITING: no new attempt before this (back-off, denial)
    backend_retry_at: datetime | None = None  # a failed slot request or release is sent again
    last_hooks: CheckResult | None = None
    last_health: CheckResult | None = None
    next_check_at: datetime | None = None  # HALTED: when health is checked again
    last_reboot: datetime | None = None
    last_touch: datetime | None = None
    # Needs the machine has booted with since the need last went away (the reboot-loop guard):
    # the same need again was not cleared by a reboot and starts no other one. Newest last.
    rebooted_for: tuple[Need, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (times as RFC 3339), for the state store and node reports."""
        return {k: _dump(getattr(self, k)) for k in _FIELDS}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> NodeState:
        """The inverse of to_dict; unknown keys (from a newer agent) are ignored."""
        values: dict[str, Any] = {}
        for key in _FIELDS:
            if key in doc:
                values[key] = _LOAD.get(key, _identity)(doc[key])
        return cls(**values)


_FIELDS = tuple(NodeState.__dataclass_fields__)


def _dump(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, State):
        return value.value
    if isinstance(value, Need | CheckResult):
        return {k: _dump(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


def _identity(value: Any) -> Any:
    return value


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _need(value: Any) -> Need | None:
    if value is None:
        return None
    return Need(datetime.fromisoformat(value["since"]), value["detector"], value.get("detail", ""))


def _needs(value: Any) -> tuple[Need, ...]:
    return tuple(n for n in map(_need, value or ()) if n is not None)


def _check(value: Any) -> CheckResult | None:
    if value is None:
        return None
    return CheckResult(bool(value["ok"]), value["detail"], datetime.fromisoformat(value["at"]))


_LOAD: dict[str, Callable[[Any], Any]] = {
    "cycle": State,
    "since": _time,
    "needed": _need,
    "retry_at": _time,
    "backend_retry_at": _time,
    "last_hooks": _check,
    "last_health": _check,
    "next_check_at": _time,
    "last_reboot": _time,
    "last_touch": _time,
    "rebooted_for": _needs,
}


# --- what the machine is told ---------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """How long the agent waits between tries. Defaults for production; tests shorten them."""

    touch_interval: timedelta = timedelta(minutes=1)  # heartbeat while holding (DESIGN.md)
    retry_interval: timedelta = timedelta(seconds=30)  # after a denial or a backend error
    backoff_base: timedelta = timedelta(minutes=1)  # first wait after an aborted attempt
    backoff_max: timedelta = timedelta(hours=1)
    health_recheck: timedelta = timedelta(minutes=1)  # HALTED: checks run again this often

    def backoff(self, attempts: int) -> timedelta:
        """Doubling from backoff_base, capped at backoff_max."""
        factor = 1 << max(0, min(attempts - 1, 30))
        return min(self.backoff_base * factor, self.backoff_max)

    def retry_at(self, now: datetime, beat: float) -> datetime:
        """When a refused node (or one whose backend failed) asks again: on its own beat, the
        instants `beat`·retry_interval past each multiple of retry_interval since the Unix
        epoch, the first one at least half an interval after `now`. Nodes whose beats differ
        so never poll in lockstep, however they learnt of their need: a freed slot is asked
        for within retry_interval / fleet size. The wait is ½ to 1½ intervals, one on average."""
        period = max(1, self.retry_interval // _US)
        offset = int(beat * period) % period
        earliest = (now - _EPOCH) // _US + period // 2
        beats = -(-(earliest - offset) // period)  # ceiling division
        return _EPOCH + (offset + beats * period) * _US


_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def beat_of(node_id: str) -> float:
    """A node's beat in [0, 1), from its id: the same on every start, spread evenly over a
    fleet (a hash, never a random draw, so the machine stays a function of its inputs)."""
    digest = hashlib.sha256(node_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Context:
    """What the shell knows besides the event: the strategy, the schedule, the pause in force
    (from the backend), whether the backend answered at start, the disabled flag."""

    strategy: Strategy
    schedule: Schedule = field(default_factory=Schedule)
    pause: Pause | None = None
    # An operator's emergency reboot of this node (stagger need-reboot --now), if one is asked
    # for the need in hand: it opens the window, never a pause (nor a blackout unless it says so).
    urgent: Urgent | None = None
    backend_reachable: bool = True
    disabled: bool = False
    dry_run: bool = False
    timings: Timings = field(default_factory=Timings)
    beat: float = 0.0  # this node's place within a retry interval (beat_of its id)


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Needed:
    """At least one detector says a reboot is needed."""

    detector: str
    detail: str = ""


@dataclass(frozen=True)
class NotNeeded:
    """No detector says a reboot is needed any more. `unknown`: one could not answer (unknown
    is never a reboot, but neither does it show that a need went away)."""

    detector: str = ""
    detail: str = ""
    unknown: bool = False


@dataclass(frozen=True)
class Tick:
    """Time passed (a WakeAt came due, or the agent's periodic look)."""


@dataclass(frozen=True)
class PauseChanged:
    """The pause in force changed; the new one is in the Context."""


@dataclass(frozen=True)
class Restarted:
    """The agent started in the boot it last ran in: a restart, not a reboot."""

    boot_id: str


@dataclass(frozen=True)
class BootDetected:
    """The agent started in a new boot: the machine rebooted."""

    boot_id: str


@dataclass(frozen=True)
class SlotGranted:
    pass


@dataclass(frozen=True)
class SlotDenied:
    sentence: str


@dataclass(frozen=True)
class HooksPassed:
    detail: str = ""


@dataclass(frozen=True)
class HooksFailed:
    detail: str


@dataclass(frozen=True)
class RebootFailed:
    """The rebooter reported an error: the reboot did not start (or we cannot tell)."""

    detail: str


@dataclass(frozen=True)
class HealthPassed:
    detail: str = ""


@dataclass(frozen=True)
class HealthFailed:
    detail: str


@dataclass(frozen=True)
class Released:
    pass


@dataclass(frozen=True)
class ReleasedByOperator:
    """The heartbeat found no hold: an operator released it (`stagger unlock --id`)."""

    detail: str = ""


@dataclass(frozen=True)
class BackendError:
    detail: str


Event = (
    Needed
    | NotNeeded
    | Tick
    | PauseChanged
    | Restarted
    | BootDetected
    | SlotGranted
    | SlotDenied
    | HooksPassed
    | HooksFailed
    | RebootFailed
    | HealthPassed
    | HealthFailed
    | Released
    | ReleasedByOperator
    | BackendError
)


def start_event(state: NodeState, boot_id: str) -> Restarted | BootDetected:
    """The first event of every agent start: did the machine reboot since the last run?"""
    if state.boot_id is not None and state.boot_id != boot_id:
        return BootDetected(boot_id)
    return Restarted(boot_id)


# --- actions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Persist:
    """Save `state` atomically; always before the effects that follow it."""

    state: NodeState


@dataclass(frozen=True)
class RequestSlot:
    note: str = ""


@dataclass(frozen=True)
class RunPreRebootHooks:
    deadline: datetime | None  # the window's end (None: the schedule stays open)


@dataclass(frozen=True)
class Reboot:
    reason: str


@dataclass(frozen=True)
class RunHealthChecks:
    pass


@dataclass(frozen=True)
class ReleaseSlot:
    pass


@dataclass(frozen=True)
class Touch:
    """Heartbeat the hold; no hold found means an operator released it."""


@dataclass(frozen=True)
class RecordEvent:
    """Something an operator should hear about (history, log, later notifications)."""

    kind: str
    detail: str


@dataclass(frozen=True)
class WakeAt:
    """Send a Tick at `at` (replaces any earlier wake-up)."""

    at: datetime


Action = (
    Persist
    | RequestSlot
    | RunPreRebootHooks
    | Reboot
    | RunHealthChecks
    | ReleaseSlot
    | Touch
    | RecordEvent
    | WakeAt
)
# Actions with an effect outside the process: each needs the state persisted first.
EFFECTS = (RequestSlot, RunPreRebootHooks, Reboot, RunHealthChecks, ReleaseSlot, Touch)


# --- the gates ------------------------------------------------------------------------------------

DISABLED_SENTENCE = (
    "the disabled flag exists (/etc/stagger/disabled): this node never reboots on its own; "
    "remove the file to let it take part again"
)


def urgent_skips_window(urgent: Urgent | None, schedule: Schedule, now: datetime) -> Urgent | None:
    """The urgent reboot that may skip the window closed at `now`: none in a blackout, unless
    it was asked with ignore_blackouts. A pause is judged apart (strategy.decide): never
    skipped."""
    if urgent is None or schedule.is_open(now):
        return None
    if not urgent.ignore_blackouts and schedule.blackout_at(now) is not None:
        return None
    return urgent


def judge(
    strategy: Strategy,
    schedule: Schedule,
    now: datetime,
    *,
    needed: bool,
    pause: Pause | None = None,
    backend_reachable: bool = True,
    urgent: Urgent | None = None,
) -> Decision:
    """May a reboot start now, and does it need a slot? strategy.decide's answer, with the
    window taken as open for an urgent reboot (urgent_skips_window). `explain` asks it too."""
    is_open = schedule.is_open(now)
    skip = urgent_skips_window(urgent, schedule, now) if needed else None
    d = decide(
        strategy,
        Situation(
            reboot_needed=needed,
            window_open=is_open or skip is not None,
            pause=pause if pause is not None and pause.active(now) else None,
            backend_reachable=backend_reachable,
            schedule_why="" if is_open else schedule.why(now),
        ),
    )
    if skip is not None and d.verdict in (Verdict.ACQUIRE, Verdict.REBOOT):
        return replace(d, sentence=f"{d.sentence}: {skip.describe()}")
    return d


def gate(state: NodeState, ctx: Context, now: datetime) -> Decision:
    """judge() for the node in `state` under `ctx`."""
    return judge(
        ctx.strategy,
        ctx.schedule,
        now,
        needed=state.needed is not None,
        pause=ctx.pause,
        backend_reachable=ctx.backend_reachable,
        urgent=ctx.urgent,
    )


def _go(verdict: Verdict, state: NodeState) -> bool:
    """The decision lets the reboot go on from where the node is."""
    if verdict is Verdict.REBOOT:
        return True
    return verdict is Verdict.ACQUIRE and state.holds_slot


Out = tuple[NodeState, list[Action]]
Handler = Callable[[NodeState, Any, datetime, Context], Out]


def _settle(s: NodeState, ctx: Context, now: datetime) -> Out:
    """Where a node with nothing in flight goes: DISABLED, IDLE, WAITING, or on to ask for a
    slot (ACQUIRING) or to drain without one (DRAINING)."""
    base = replace(s, backend_retry_at=None, next_check_at=None)
    if ctx.disabled:
        return replace(base, cycle=State.DISABLED, reason=DISABLED_SENTENCE), []
    d = gate(base, ctx, now)
    if d.verdict is Verdict.IDLE:
        return replace(base, cycle=State.IDLE, reason=d.sentence, attempts=0, retry_at=None), []
    uncleared = withheld(base)
    if uncleared is not None:
        sentence = uncleared_sentence(base, uncleared)
        # Said once, when the node comes to rest this way (not at every Tick or restart).
        said = base.cycle is State.WAITING and base.reason == sentence
        record: list[Action] = [] if said else [RecordEvent("reboot_did_not_clear", sentence)]
        return replace(base, cycle=State.WAITING, reason=sentence, retry_at=None), record
    if d.verdict is Verdict.WAIT:
        return replace(base, cycle=State.WAITING, reason=d.sentence), []
    if base.retry_at is not None and now < base.retry_at:
        why = (
            f"backing off after {base.attempts} aborted attempt(s)"
            if base.attempts
            else "trying again"
        )
        return replace(
            base, cycle=State.WAITING, reason=f"{why} at {base.retry_at.isoformat()}"
        ), []
    base = replace(base, retry_at=None)
    if ctx.dry_run:
        return replace(
            base,
            cycle=State.WAITING,
            reason=f"dry run: {d.sentence}; nothing is done",
            retry_at=ctx.timings.retry_at(now, ctx.beat),
        ), [RecordEvent("dry_run", d.sentence)]
    if d.verdict is Verdict.ACQUIRE:
        note = base.needed.detector if base.needed else ""
        if urgent_skips_window(ctx.urgent, ctx.schedule, now) is not None and ctx.urgent:
            # History keeps who asked for the urgent reboot and why, with the grant.
            note = f"urgent: asked by {ctx.urgent.by}: {ctx.urgent.reason}"
        return replace(base, cycle=State.ACQUIRING, reason=d.sentence), [RequestSlot(note)]
    return _drain(replace(base, holds_slot=False, reason=d.sentence), ctx, now)


def _drain(s: NodeState, ctx: Context, now: datetime) -> Out:
    deadline = ctx.schedule.closes_at(now)
    return replace(s, cycle=State.DRAINING), [RunPreRebootHooks(deadline)]


def _abort(s: NodeState, ctx: Context, now: datetime, why: str) -> Out:
    """No reboot after all: give the slot back (ABORTING) and wait with back-off."""
    attempts = s.attempts + 1
    s = replace(
        s,
        attempts=attempts,
        retry_at=now + ctx.timings.backoff(attempts),
        reason=f"aborted: {why}",
    )
    record = RecordEvent("aborted", why)
    if s.holds_slot:
        return replace(s, cycle=State.ABORTING), [ReleaseSlot(), record]
    new, actions = _settle(s, ctx, now)
    return new, [record, *actions]


def _touch(s: NodeState, ctx: Context, now: datetime) -> Out:
    if s.holds_slot and (s.last_touch is None or now - s.last_touch >= ctx.timings.touch_interval):
        return replace(s, last_touch=now), [Touch()]
    return s, []


# --- the reboot-loop guard ------------------------------------------------------------------------

REBOOTED_FOR_KEPT = 8  # the needs remembered; more distinct ones in a row is not a loop


def _same(a: Need, b: Need) -> bool:
    return (a.detector, a.detail) == (b.detector, b.detail)


def withheld(s: NodeState) -> Need | None:
    """The need no reboot is started for, because the machine has already booted with it and
    it is still there (the same detector and detail); None when a reboot may be asked for."""
    need = s.needed
    if need is None or not any(_same(need, done) for done in s.rebooted_for):
        return None
    return need


def uncleared_sentence(s: NodeState, need: Need) -> str:
    when = f"the reboot at {s.last_reboot.isoformat()}" if s.last_reboot else "a reboot"
    said = need.detail or need.detector  # the agent's detail already names its detector(s)
    return (
        f"{when} did not clear the need ({said}); stagger does not reboot again for the same "
        "need: it waits until the detector says something else or nothing, or an operator "
        "asks again (`stagger need-reboot`)"
    )


def _held_back(s: NodeState, ctx: Context) -> str | None:
    """Why the cycle may not go on whatever the strategy says (the disabled flag, a need a
    reboot did not clear), asked at every gate; None: the strategy decides."""
    if ctx.disabled:
        return DISABLED_SENTENCE
    need = withheld(s)
    return None if need is None else uncleared_sentence(s, need)


def _booted(s: NodeState, boot_id: str) -> NodeState:
    """The machine booted: the need it had (if any) is one a reboot has now been tried for."""
    s = replace(s, boot_id=boot_id)
    need = s.needed
    if need is None or any(_same(need, done) for done in s.rebooted_for):
        return s
    return replace(s, rebooted_for=(*s.rebooted_for, need)[-REBOOTED_FOR_KEPT:])


# --- handlers -------------------------------------------------------------------------------------


def _need_on(s: NodeState, ev: Needed, now: datetime) -> NodeState:
    if s.needed is not None and (s.needed.detector, s.needed.detail) == (ev.detector, ev.detail):
        return s
    since = s.needed.since if s.needed is not None else now
    return replace(s, needed=Need(since, ev.detector, ev.detail))


def needed_resting(s: NodeState, ev: Needed, now: datetime, ctx: Context) -> Out:
    return _settle(_need_on(s, ev, now), ctx, now)


def needed_record(s: NodeState, ev: Needed, now: datetime, ctx: Context) -> Out:
    return _need_on(s, ev, now), []


def _need_off(s: NodeState, ev: NotNeeded) -> NodeState:
    """The need is gone (the guard is lifted), or unknown (the guard stays: a detector that
    cannot answer for a moment must not open the way to another reboot for the same need)."""
    return replace(s, needed=None, rebooted_for=s.rebooted_for if ev.unknown else ())


def not_needed_resting(s: NodeState, ev: NotNeeded, now: datetime, ctx: Context) -> Out:
    return _settle(_need_off(s, ev), ctx, now)


def not_needed_record(s: NodeState, ev: NotNeeded, now: datetime, ctx: Context) -> Out:
    return _need_off(s, ev), []


def resettle(s: NodeState, ev: Tick | PauseChanged, now: datetime, ctx: Context) -> Out:
    return _settle(s, ctx, now)


def start_resting(s: NodeState, ev: Restarted, now: datetime, ctx: Context) -> Out:
    return _settle(replace(s, boot_id=ev.boot_id), ctx, now)


def boot_resting(s: NodeState, ev: BootDetected, now: datetime, ctx: Context) -> Out:
    """Rebooted by something else while not in our cycle: the reboot met the need; the
    detectors say again if one is still wanted."""
    s = _booted(s, ev.boot_id)
    return _settle(replace(s, needed=None, attempts=0, retry_at=None), ctx, now)


def stay(s: NodeState, ev: Any, now: datetime, ctx: Context) -> Out:
    return s, []


def backend_error_record(s: NodeState, ev: BackendError, now: datetime, ctx: Context) -> Out:
    return s, [RecordEvent("backend_error", ev.detail)]


def backend_error_retry(s: NodeState, ev: BackendError, now: datetime, ctx: Context) -> Out:
    """A slot request or release failed: its outcome is unknown, so it is sent again later
    (both are idempotent)."""
    at = ctx.timings.retry_at(now, ctx.beat)
    why = f"the backend failed: {ev.detail}; trying again at {at.isoformat()}"
    return replace(s, backend_retry_at=at, reason=why), [RecordEvent("backend_error", ev.detail)]


# ACQUIRING


def acquiring_restart(s: NodeState, ev: Restarted, now: datetime, ctx: Context) -> Out:
    """The request's answer was lost with the process: ask again (acquire is recursive), or
    give back whatever it may have got when the gates now say no."""
    return _acquire_again(replace(s, boot_id=ev.boot_id), ctx, now)


def acquiring_tick(s: NodeState, ev: Tick, now: datetime, ctx: Context) -> Out:
    if s.backend_retry_at is None or now < s.backend_retry_at:
        return s, []
    return _acquire_again(s, ctx, now)


def _acquire_again(s: NodeState, ctx: Context, now: datetime) -> Out:
    s = replace(s, backend_retry_at=None)
    d = gate(s, ctx, now)
    held = _held_back(s, ctx)
    if d.verdict is Verdict.ACQUIRE and held is None:
        return s, [RequestSlot(s.needed.detector if s.needed else "")]
    # The earlier request may have been granted: release (a no-op when it was not).
    why = held or d.sentence
    return replace(s, cycle=State.ABORTING, holds_slot=True, reason=f"aborted: {why}"), [
        ReleaseSlot()
    ]


def boot_unverified(s: NodeState, ev: BootDetected, now: datetime, ctx: Context) -> Out:
    """The machine rebooted while a slot was (maybe) held: prove health before releasing."""
    s = replace(
        _booted(s, ev.boot_id),
        cycle=State.VERIFYING,
        needed=None,
        holds_slot=True if s.cycle is State.ACQUIRING else s.holds_slot,
        backend_retry_at=None,
        reason="the machine rebooted; checking health before giving the slot back",
    )
    return s, [RunHealthChecks()]


def granted(s: NodeState, ev: SlotGranted, now: datetime, ctx: Context) -> Out:
    s = replace(s, holds_slot=True, last_touch=now, backend_retry_at=None)
    d = gate(s, ctx, now)
    held = _held_back(s, ctx)
    if held is not None:
        return _abort(s, ctx, now, held)
    if not _go(d.verdict, s):
        return _abort(s, ctx, now, d.sentence)
    return _drain(replace(s, reason="slot held; running the pre-reboot hooks"), ctx, now)


def denied(s: NodeState, ev: SlotDenied, now: datetime, ctx: Context) -> Out:
    at = ctx.timings.retry_at(now, ctx.beat)
    return replace(
        s,
        cycle=State.WAITING,
        holds_slot=False,
        retry_at=at,
        backend_retry_at=None,
        reason=f"no slot: {ev.sentence}",
    ), []


# DRAINING


def draining_restart(s: NodeState, ev: Restarted | Tick, now: datetime, ctx: Context) -> Out:
    """The hooks (or the reboot) died with the process: run the hooks again if the gates
    still allow it; they are judged once more when the hooks pass."""
    if isinstance(ev, Restarted):
        s = replace(s, boot_id=ev.boot_id)
    d = gate(s, ctx, now)
    held = _held_back(s, ctx)
    if held is not None:
        return _abort(s, ctx, now, held)
    if not _go(d.verdict, s):
        return _abort(s, ctx, now, d.sentence)
    return _drain(replace(s, reason="running the pre-reboot hooks again after a restart"), ctx, now)


def draining_tick(s: NodeState, ev: Tick, now: datetime, ctx: Context) -> Out:
    return _touch(s, ctx, now)


def hooks_passed(s: NodeState, ev: HooksPassed, now: datetime, ctx: Context) -> Out:
    """The last gate before the reboot: the window and the slot are checked right here."""
    s = replace(s, last_hooks=CheckResult(True, ev.detail, now))
    d = gate(s, ctx, now)
    held = _held_back(s, ctx)
    if held is not None:
        return _abort(s, ctx, now, held)
    if not _go(d.verdict, s):
        return _abort(s, ctx, now, f"the hooks passed, but {d.sentence}")
    s = replace(
        s,
        cycle=State.REBOOTING,
        boot_id_at_reboot=s.boot_id,
        last_reboot=now,
        reason="rebooting",
    )
    need = s.needed
    return s, [Reboot((need.detail or need.detector) if need else "")]


def hooks_failed(s: NodeState, ev: HooksFailed, now: datetime, ctx: Context) -> Out:
    s = replace(s, last_hooks=CheckResult(False, ev.detail, now))
    return _abort(s, ctx, now, f"the pre-reboot hooks failed: {ev.detail}")


def lost_slot_draining(s: NodeState, ev: ReleasedByOperator, now: datetime, ctx: Context) -> Out:
    """An operator took the slot away mid-drain: no reboot; wait with back-off."""
    s = replace(s, holds_slot=False)
    new, actions = _abort(s, ctx, now, "an operator released this node's hold during the drain")
    return new, [RecordEvent("released_by_operator", ev.detail), *actions]


# REBOOTING


def rebooting_restart(s: NodeState, ev: Restarted, now: datetime, ctx: Context) -> Out:
    """Same boot: the reboot never happened (the agent died first). Drain again; the gates
    are judged again before a second attempt."""
    return draining_restart(replace(s, cycle=State.DRAINING), ev, now, ctx)


def rebooted(s: NodeState, ev: BootDetected, now: datetime, ctx: Context) -> Out:
    s = replace(
        _booted(s, ev.boot_id),
        cycle=State.VERIFYING,
        needed=None,
        attempts=0,
        retry_at=None,
        reason="rebooted; checking health before giving the slot back",
    )
    return s, [RunHealthChecks()]


def reboot_failed(s: NodeState, ev: RebootFailed, now: datetime, ctx: Context) -> Out:
    """The node is drained but may not have rebooted: keep the slot, like a failed check."""
    s = replace(
        s,
        cycle=State.HALTED,
        next_check_at=now + ctx.timings.health_recheck,
        reason=f"the reboot failed: {ev.detail}; slot kept until health passes or an "
        "operator releases it",
    )
    return s, [RecordEvent("reboot_failed", ev.detail)]


def lost_slot_record(s: NodeState, ev: ReleasedByOperator, now: datetime, ctx: Context) -> Out:
    return replace(s, holds_slot=False), [RecordEvent("released_by_operator", ev.detail)]


def touch_tick(s: NodeState, ev: Tick, now: datetime, ctx: Context) -> Out:
    return _touch(s, ctx, now)


# VERIFYING and HALTED


def check_again(s: NodeState, ev: Restarted | BootDetected, now: datetime, ctx: Context) -> Out:
    s = _booted(s, ev.boot_id) if isinstance(ev, BootDetected) else replace(s, boot_id=ev.boot_id)
    return replace(s, next_check_at=None), [RunHealthChecks()]


def healthy(s: NodeState, ev: HealthPassed, now: datetime, ctx: Context) -> Out:
    s = replace(s, last_health=CheckResult(True, ev.detail, now), next_check_at=None)
    if s.holds_slot:
        return replace(s, cycle=State.RELEASING, reason="healthy; giving the slot back"), [
            ReleaseSlot()
        ]
    return _settle(s, ctx, now)


def unhealthy(s: NodeState, ev: HealthFailed, now: datetime, ctx: Context) -> Out:
    s = replace(
        s,
        cycle=State.HALTED,
        last_health=CheckResult(False, ev.detail, now),
        next_check_at=now + ctx.timings.health_recheck,
        reason=f"health checks failed: {ev.detail}; the slot is kept so the rollout stops "
        "here (fix the node, or `stagger unlock --id` it)",
    )
    return s, [RecordEvent("halted", ev.detail)]


def halted_tick(s: NodeState, ev: Tick, now: datetime, ctx: Context) -> Out:
    s, actions = _touch(s, ctx, now)
    if s.next_check_at is not None and now >= s.next_check_at:
        return replace(s, next_check_at=None), [*actions, RunHealthChecks()]
    return s, actions


def operator_released(s: NodeState, ev: ReleasedByOperator, now: datetime, ctx: Context) -> Out:
    """An operator released the hold of a node that was not proven healthy: it is their call;
    the node stops checking and rests."""
    s = replace(s, holds_slot=False, reason="an operator released this node's hold")
    new, actions = _settle(s, ctx, now)
    return new, [RecordEvent("released_by_operator", ev.detail or s.cycle.value), *actions]


# RELEASING and ABORTING


def released(s: NodeState, ev: Released | ReleasedByOperator, now: datetime, ctx: Context) -> Out:
    aborting = s.cycle is State.ABORTING
    s = replace(s, holds_slot=False, last_touch=None, backend_retry_at=None)
    if not aborting:
        s = replace(s, attempts=0, retry_at=None)
    return _settle(s, ctx, now)


def release_tick(s: NodeState, ev: Tick, now: datetime, ctx: Context) -> Out:
    if s.backend_retry_at is None or now < s.backend_retry_at:
        return s, []
    return replace(s, backend_retry_at=None), [ReleaseSlot()]


def release_restart(s: NodeState, ev: Restarted | BootDetected, now: datetime, ctx: Context) -> Out:
    s = _booted(s, ev.boot_id) if isinstance(ev, BootDetected) else replace(s, boot_id=ev.boot_id)
    return replace(s, backend_retry_at=None), [ReleaseSlot()]


# --- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """A handler, the states it may lead to, and in words when it leads to each (for the
    diagram; a target without words is reached whenever the event comes)."""

    handler: Handler
    targets: frozenset[State]
    when: Mapping[State, str] = field(default_factory=dict)


Target = State | tuple[State, str]


def _t(handler: Handler, *targets: Target) -> Transition:
    states = [t if isinstance(t, State) else t[0] for t in targets]
    when: dict[State, str] = {}
    for t in targets:  # the first words given for a target are its own (see _after)
        if not isinstance(t, State):
            when.setdefault(t[0], t[1])
    return Transition(handler, frozenset(states), when)


# Where _settle may lead, and when.
_SETTLE: tuple[Target, ...] = (
    (State.IDLE, "no reboot is needed"),
    (
        State.WAITING,
        "a reboot is needed but may not start yet (window closed, paused, strategy off, "
        "back-off, dry run, or a need the last reboot did not clear)",
    ),
    (State.ACQUIRING, "a reboot may start, and the strategy takes a slot first"),
    (State.DRAINING, "a reboot may start without a slot (the strategy says so)"),
    (State.DISABLED, "the disabled flag is set"),
)
# Where _abort may lead: ABORTING when a slot is held, else wherever _settle goes.
_ABORT: tuple[Target, ...] = ((State.ABORTING, "a slot is held: it goes back first"), *_SETTLE)
# The gates (window, pause, strategy, disabled flag, reboot-loop guard) judged again.
_GO_ON = "the gates still allow the reboot"
_STOP = "the gates no longer allow the reboot; what may have been granted goes back"


def _after(words: str, targets: tuple[Target, ...]) -> tuple[Target, ...]:
    """`targets` with `words` put before each one's own condition."""
    out: list[Target] = []
    for t in targets:
        out.append((t, words) if isinstance(t, State) else (t[0], f"{words}, and {t[1]}"))
    return tuple(out)


def _resting(state: State) -> dict[type, Transition]:
    """IDLE, WAITING and DISABLED: every event that can change the answer is judged again."""
    return {
        Needed: _t(needed_resting, *_SETTLE),
        NotNeeded: _t(not_needed_resting, *_SETTLE),
        Tick: _t(resettle, *_SETTLE),
        PauseChanged: _t(resettle, *_SETTLE),
        Restarted: _t(start_resting, *_SETTLE),
        BootDetected: _t(boot_resting, *_SETTLE),
        BackendError: _t(backend_error_record, state),
    }


def _keep(state: State) -> dict[type, Transition]:
    """Events every busy state takes without moving: needs are recorded, pauses are judged at
    the next gate, backend errors are reported."""
    return {
        Needed: _t(needed_record, state),
        NotNeeded: _t(not_needed_record, state),
        PauseChanged: _t(stay, state),
        BackendError: _t(backend_error_record, state),
    }


TABLE: dict[State, dict[type, Transition]] = {
    State.IDLE: _resting(State.IDLE),
    State.WAITING: _resting(State.WAITING),
    State.DISABLED: _resting(State.DISABLED),
    State.ACQUIRING: {
        **_keep(State.ACQUIRING),
        SlotGranted: _t(granted, (State.DRAINING, _GO_ON), (State.ABORTING, _STOP)),
        SlotDenied: _t(denied, State.WAITING),
        BackendError: _t(backend_error_retry, State.ACQUIRING),
        Tick: _t(acquiring_tick, State.ACQUIRING, (State.ABORTING, f"a retry is due and {_STOP}")),
        Restarted: _t(acquiring_restart, State.ACQUIRING, (State.ABORTING, _STOP)),
        BootDetected: _t(boot_unverified, State.VERIFYING),
    },
    State.DRAINING: {
        **_keep(State.DRAINING),
        HooksPassed: _t(
            hooks_passed, (State.REBOOTING, _GO_ON), *_after("the gates no longer allow it", _ABORT)
        ),
        HooksFailed: _t(hooks_failed, *_ABORT),
        Tick: _t(draining_tick, State.DRAINING),
        Restarted: _t(
            draining_restart,
            (State.DRAINING, f"{_GO_ON}: the hooks run again"),
            *_after("the gates no longer allow it", _ABORT),
        ),
        BootDetected: _t(boot_unverified, State.VERIFYING),
        ReleasedByOperator: _t(lost_slot_draining, *_SETTLE),
    },
    State.REBOOTING: {
        **_keep(State.REBOOTING),
        BootDetected: _t(rebooted, State.VERIFYING),
        Restarted: _t(
            rebooting_restart,
            (State.DRAINING, f"the machine did not reboot and {_GO_ON}: drain again"),
            *_after("the machine did not reboot and the gates no longer allow it", _ABORT),
        ),
        RebootFailed: _t(reboot_failed, State.HALTED),
        Tick: _t(touch_tick, State.REBOOTING),
        ReleasedByOperator: _t(lost_slot_record, State.REBOOTING),
    },
    State.VERIFYING: {
        **_keep(State.VERIFYING),
        HealthPassed: _t(
            healthy, (State.RELEASING, "a slot is held"), *_after("no slot is held", _SETTLE)
        ),
        HealthFailed: _t(unhealthy, State.HALTED),
        Tick: _t(touch_tick, State.VERIFYING),
        Restarted: _t(check_again, State.VERIFYING),
        BootDetected: _t(check_again, State.VERIFYING),
        ReleasedByOperator: _t(operator_released, *_SETTLE),
    },
    State.HALTED: {
        **_keep(State.HALTED),
        HealthPassed: _t(
            healthy, (State.RELEASING, "a slot is held"), *_after("no slot is held", _SETTLE)
        ),
        HealthFailed: _t(unhealthy, State.HALTED),
        Tick: _t(halted_tick, State.HALTED),
        Restarted: _t(check_again, State.HALTED),
        BootDetected: _t(check_again, State.HALTED),
        ReleasedByOperator: _t(operator_released, *_SETTLE),
    },
    State.RELEASING: {
        **_keep(State.RELEASING),
        Released: _t(released, *_SETTLE),
        ReleasedByOperator: _t(released, *_SETTLE),
        BackendError: _t(backend_error_retry, State.RELEASING),
        Tick: _t(release_tick, State.RELEASING),
        Restarted: _t(release_restart, State.RELEASING),
        BootDetected: _t(release_restart, State.RELEASING),
    },
    State.ABORTING: {
        **_keep(State.ABORTING),
        Released: _t(released, *_SETTLE),
        ReleasedByOperator: _t(released, *_SETTLE),
        BackendError: _t(backend_error_retry, State.ABORTING),
        Tick: _t(release_tick, State.ABORTING),
        Restarted: _t(release_restart, State.ABORTING),
        BootDetected: _t(release_restart, State.ABORTING),
    },
}


def accepts(cycle: State, event_type: type) -> bool:
    return event_type in TABLE[cycle]


# --- the entry point ------------------------------------------------------------------------------


def step(
    state: NodeState, event: Event, now: datetime, ctx: Context
) -> tuple[NodeState, list[Action]]:
    """One event in, the new state and the actions to carry out, in order, out."""
    transition = TABLE[state.cycle].get(type(event))
    if transition is None:
        raise TransitionError(
            f"event {type(event).__name__} cannot happen in state {state.cycle.value}: "
            "this is a bug in stagger; please report it with the agent's log"
        )
    new, actions = transition.handler(state, event, now, ctx)
    if new.cycle not in transition.targets:
        raise TransitionError(
            f"{type(event).__name__} in {state.cycle.value} led to {new.cycle.value}, which "
            "the table does not allow: this is a bug in stagger; please report it"
        )
    if new.cycle is not state.cycle:
        new = replace(new, since=now)
    if new != state or any(isinstance(a, EFFECTS) for a in actions):
        actions = [Persist(new), *actions]
    wake = next_wake(new, ctx, now)
    if wake is not None:
        actions.append(WakeAt(wake))
    return new, actions


def next_wake(s: NodeState, ctx: Context, now: datetime) -> datetime | None:
    """When the node wants its next Tick; None: only when something happens."""
    times: list[datetime] = []
    if s.cycle is State.WAITING:
        # A retry_at already past (it came due while the window was closed) must not ask for
        # a wake-up now: that Tick changes nothing and would ask again, a busy loop.
        if s.retry_at is not None and s.retry_at > now:
            times.append(s.retry_at)
        d = gate(s, ctx, now)
        if d.verdict is Verdict.WAIT:
            pause = ctx.pause
            if pause is not None and pause.active(now):
                if pause.until is not None:
                    times.append(pause.until)
            elif ctx.strategy is not Strategy.OFF:
                opens = ctx.schedule.next_open(now)
                if opens is not None:
                    times.append(opens)
    if s.cycle in (State.ACQUIRING, State.RELEASING, State.ABORTING) and s.backend_retry_at:
        times.append(s.backend_retry_at)
    if s.holds_slot and s.cycle in (
        State.DRAINING,
        State.REBOOTING,
        State.VERIFYING,
        State.HALTED,
    ):
        times.append((s.last_touch or now) + ctx.timings.touch_interval)
    if s.cycle is State.HALTED and s.next_check_at is not None:
        times.append(s.next_check_at)
    return min(times) if times else None


# --- the diagram ----------------------------------------------------------------------------------


def _label(event_type: type) -> str:
    name = event_type.__name__
    return "".join(f" {c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def edges() -> list[tuple[State, str, State]]:
    """Every (from, event, to) the table allows, staying put included, in table order."""
    out: list[tuple[State, str, State]] = []
    for state, row in TABLE.items():
        for event_type, transition in row.items():
            for target in sorted(transition.targets, key=list(State).index):
                out.append((state, _label(event_type), target))
    return out


@dataclass(frozen=True)
class Move:
    """A change of state that can really happen: from, on which event, to, and when (the
    table's words; empty when the event alone decides)."""

    source: State
    event: str
    target: State
    when: str


# The explored situations: the machine sees the situation only through gate()'s verdict
# (ACQUIRE, REBOOT, WAIT: a closed window stands for every reason to wait; a pause, strategy
# off and a dry run lead where it leads) and the disabled flag, so one of each is enough.
_EXPLORE_FROM = datetime(2026, 1, 5, tzinfo=UTC)
_NEVER_OPEN = Schedule(
    blackouts=(Blackout(datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)),)
)
_EXPLORE_IN = (
    Context(Strategy.LOCK),
    Context(Strategy.IMMEDIATE),
    Context(Strategy.LOCK, schedule=_NEVER_OPEN),
    Context(Strategy.LOCK, disabled=True),
)
# Each event comes soon after the last one, or after every back-off, retry and recheck is due.
_EXPLORE_AFTER = (timedelta(seconds=1), timedelta(days=30))


def _events_for(s: NodeState) -> list[Event]:
    """One of each event the table lets s.cycle take and the agent can send there (two needs:
    a new one lifts the guard; a boot only after a first start, as start_event says; an
    operator's release only found by the heartbeat of a node that holds a slot)."""
    boot = s.boot_id or "boot-1"
    other = "boot-2" if boot == "boot-1" else "boot-1"
    every: list[Event | None] = [
        Needed("file", "an update"),
        Needed("file", "another update"),
        NotNeeded(),
        NotNeeded(unknown=True),
        Tick(),
        PauseChanged(),
        Restarted(boot),
        BootDetected(other) if s.boot_id is not None else None,
        SlotGranted(),
        SlotDenied("every slot is held"),
        HooksPassed(),
        HooksFailed("a hook failed"),
        RebootFailed("the rebooter failed"),
        HealthPassed(),
        HealthFailed("a check failed"),
        Released(),
        ReleasedByOperator() if s.holds_slot else None,
        BackendError("no answer"),
    ]
    return [e for e in every if e is not None and accepts(s.cycle, type(e))]


def _explored_key(s: NodeState, clock: datetime) -> tuple[Any, ...]:
    """What of a state can change where the next event leads: the need and whether the guard
    holds each explored need; times only as "not set", "due by the next event", "due within
    the explored wait", "later" (counts, ids and sentences lead nowhere else)."""

    def when(t: datetime | None) -> int:
        if t is None:
            return 0
        return 1 + sum(t > clock + after for after in _EXPLORE_AFTER)

    need = s.needed.detail if s.needed else None
    guard = frozenset(n.detail for n in s.rebooted_for)
    times = (s.retry_at, s.backend_retry_at, s.next_check_at)
    return (s.cycle, need, guard, s.holds_slot, s.boot_id is None, *map(when, times))


@cache
def possible_moves(
    situations: tuple[Context, ...] = _EXPLORE_IN,
) -> frozenset[tuple[State, type, State]]:
    """Every (from, event type, to) that `step` really takes from some state a node can reach,
    found by running it: from a fresh node, each event the table accepts, in each situation
    the gates can be in, soon or much later, again from each new state (bounded: the states
    are finitely many once times are seen only as due or not)."""
    found: set[tuple[State, type, State]] = set()
    seen: set[tuple[Any, ...]] = set()
    todo = [(NodeState(), _EXPLORE_FROM)]
    while todo:
        s, clock = todo.pop()
        key = _explored_key(s, clock)
        if key in seen:
            continue
        seen.add(key)
        for event in _events_for(s):
            for after in _EXPLORE_AFTER:
                now = clock + after
                for ctx in situations:
                    new, _ = step(s, event, now, ctx)
                    found.add((s.cycle, type(event), new.cycle))
                    todo.append((new, now))
    return frozenset(found)


def moves() -> list[Move]:
    """The changes of state that can really happen (staying put left out), in table order,
    each with the table's words for when."""
    possible = possible_moves()
    out = []
    for state, row in TABLE.items():
        for event_type, transition in row.items():
            for target in sorted(transition.targets, key=list(State).index):
                if target is not state and (state, event_type, target) in possible:
                    when = transition.when.get(target, "")
                    out.append(Move(state, _label(event_type), target, when))
    return out


def diagram(kind: str = "mermaid", *, moves_only: bool = True) -> str:
    """The table as a mermaid state diagram (for `stagger explain --diagram`: every pair of
    states the table joins, with the events) or as text: the moves that can really happen,
    one line each, `from -> to on events: when` (events that lead there alike share a line).
    `moves_only` leaves out the events that keep the state where it is (mermaid)."""
    if kind == "mermaid":
        pairs: dict[tuple[State, State], list[str]] = {}
        for a, e, b in edges():
            if not (moves_only and a is b):
                pairs.setdefault((a, b), []).append(e)
        lines = ["stateDiagram-v2", "    [*] --> idle"]
        lines += [f"    {a.value} --> {b.value}: {', '.join(es)}" for (a, b), es in pairs.items()]
        return "\n".join(lines) + "\n"
    if kind == "text":
        return _text_diagram(moves())
    raise InvalidInput(f"diagram kind {kind!r} is not known: use 'mermaid' or 'text'")


def _text_diagram(found: list[Move]) -> str:
    alike: dict[tuple[State, State, str], list[str]] = {}
    for m in sorted(
        found, key=lambda m: (list(State).index(m.source), list(State).index(m.target))
    ):
        alike.setdefault((m.source, m.target, m.when), []).append(m.event)
    width = max(len(s.value) for s in State)
    lines = []
    for (a, b, when), events in alike.items():
        line = f"{a.value:<{width}} -> {b.value:<{width}} on {', '.join(events)}"
        lines.append(f"{line}: {when}" if when else line)
    return "\n".join(lines) + "\n"

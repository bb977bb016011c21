"""The questions every decision of the node cycle asks, and the moves they lead to.

- `gate`: may a reboot start now, and does it need a slot? `strategy.decide`'s answer, asked
  again at every gate (before a slot request, on grant, and right before the reboot) and
  never re-decided here.
- The reboot-loop guard: a need that a reboot did not clear (the same detector and detail seen
  again after the machine booted) never starts another cycle; the node waits, saying so, until
  the need changes or goes away (an operator's `stagger need-reboot` is a new detail). A
  detector that cannot answer is not a need that went away. `withheld` decides it.
- `settle`: where a node with nothing in flight goes once the gates are judged; `abort`: the
  way back when a reboot may not go on after all; `next_wake`: when a node wants its next Tick.

Part of the decisions of decide.py (see its header); no I/O, `now` is always an argument.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from stagger.core.cycle.node_state import Need, NodeState, State
from stagger.core.cycle.vocabulary import (
    Action,
    Context,
    RecordEvent,
    ReleaseSlot,
    RequestSlot,
    RunPreRebootHooks,
    Touch,
)
from stagger.core.schedule import Schedule
from stagger.core.semaphore import Pause, Urgent
from stagger.core.strategy import Decision, Situation, Strategy, Verdict, decide

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
    backend_configured: bool = True,
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
            backend_configured=backend_configured,
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
        backend_configured=ctx.backend_configured,
        urgent=ctx.urgent,
    )


Out = tuple[NodeState, list[Action]]


def settle(s: NodeState, ctx: Context, now: datetime) -> Out:
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
    return drain(replace(base, holds_slot=False, reason=d.sentence), ctx, now)


def drain(s: NodeState, ctx: Context, now: datetime) -> Out:
    deadline = ctx.schedule.closes_at(now)
    return replace(s, cycle=State.DRAINING), [RunPreRebootHooks(deadline)]


def abort(s: NodeState, ctx: Context, now: datetime, why: str) -> Out:
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
    new, actions = settle(s, ctx, now)
    return new, [record, *actions]


def touch_if_due(s: NodeState, ctx: Context, now: datetime) -> Out:
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


def booted(s: NodeState, boot_id: str) -> NodeState:
    """The machine booted: the need it had (if any) is one a reboot has now been tried for."""
    s = replace(s, boot_id=boot_id)
    need = s.needed
    if need is None or any(_same(need, done) for done in s.rebooted_for):
        return s
    return replace(s, rebooted_for=(*s.rebooted_for, need)[-REBOOTED_FOR_KEPT:])


# --- when the node wakes --------------------------------------------------------------------------


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

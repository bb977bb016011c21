"""The node cycle's handlers: one function per transition of decide.py's TABLE, named after
what it does (not after the event that calls it), grouped by the state it runs in.

Part of the decisions of decide.py (see its header): no I/O, `now` is always an argument.
`_why_stop` is the one re-check of "may the reboot still start?" that every handler asks on
the way to a reboot (before a slot request, on grant, after a restart mid-drain, and right
before the reboot).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from stagger.core.cycle.gates import (
    DISABLED_SENTENCE,
    Out,
    abort,
    booted,
    drain,
    gate,
    settle,
    touch_if_due,
    uncleared_sentence,
    withheld,
)
from stagger.core.cycle.node_state import CheckResult, Need, NodeState, State
from stagger.core.cycle.vocabulary import (
    BackendError,
    BootDetected,
    Context,
    HealthFailed,
    HealthPassed,
    HooksFailed,
    HooksPassed,
    Needed,
    NotNeeded,
    PauseChanged,
    Reboot,
    RebootFailed,
    RecordEvent,
    Released,
    ReleasedByOperator,
    ReleaseSlot,
    RequestSlot,
    Restarted,
    RunHealthChecks,
    SlotDenied,
    SlotGranted,
    Tick,
)
from stagger.core.strategy import Verdict

Handler = Callable[[NodeState, Any, datetime, Context], Out]


def _why_stop(
    s: NodeState, ctx: Context, now: datetime, *, asking: bool = False, after: str = ""
) -> str | None:
    """Why a reboot on its way may not go on now; None: it may. The disabled flag and a need a
    reboot did not clear stop it whatever the strategy says; else `gate`'s verdict must let
    the node go on from where it is: ask for a slot (`asking`: only ACQUIRE does), or drain
    and reboot (REBOOT, or ACQUIRE with the slot held). `after` names what just happened, to
    put before the strategy's sentence ("the hooks passed, but ...")."""
    if ctx.disabled:
        return DISABLED_SENTENCE
    need = withheld(s)
    if need is not None:
        return uncleared_sentence(s, need)
    d = gate(s, ctx, now)
    if asking:
        go = d.verdict is Verdict.ACQUIRE
    else:
        go = d.verdict is Verdict.REBOOT or (d.verdict is Verdict.ACQUIRE and s.holds_slot)
    if go:
        return None
    return f"{after}, but {d.sentence}" if after else d.sentence


# --- handlers ------------------------------------------------------------------------------------


def _need_on(s: NodeState, ev: Needed, now: datetime) -> NodeState:
    if s.needed is not None and (s.needed.detector, s.needed.detail) == (ev.detector, ev.detail):
        return s
    since = s.needed.since if s.needed is not None else now
    return replace(s, needed=Need(since, ev.detector, ev.detail))


def settle_with_need(s: NodeState, ev: Needed, now: datetime, ctx: Context) -> Out:
    return settle(_need_on(s, ev, now), ctx, now)


def note_need(s: NodeState, ev: Needed, now: datetime, ctx: Context) -> Out:
    return _need_on(s, ev, now), []


def _need_off(s: NodeState, ev: NotNeeded) -> NodeState:
    """The need is gone (the guard is lifted), or unknown (the guard stays: a detector that
    cannot answer for a moment must not open the way to another reboot for the same need)."""
    return replace(s, needed=None, rebooted_for=s.rebooted_for if ev.unknown else ())


def settle_without_need(s: NodeState, ev: NotNeeded, now: datetime, ctx: Context) -> Out:
    return settle(_need_off(s, ev), ctx, now)


def note_need_gone(s: NodeState, ev: NotNeeded, now: datetime, ctx: Context) -> Out:
    return _need_off(s, ev), []


def resettle(s: NodeState, ev: Tick | PauseChanged, now: datetime, ctx: Context) -> Out:
    return settle(s, ctx, now)


def settle_after_restart(s: NodeState, ev: Restarted, now: datetime, ctx: Context) -> Out:
    return settle(replace(s, boot_id=ev.boot_id), ctx, now)


def settle_after_outside_reboot(s: NodeState, ev: BootDetected, now: datetime, ctx: Context) -> Out:
    """Rebooted by something else while not in our cycle: the reboot met the need; the
    detectors say again if one is still wanted."""
    s = booted(s, ev.boot_id)
    return settle(replace(s, needed=None, attempts=0, retry_at=None), ctx, now)


def stay(s: NodeState, ev: Any, now: datetime, ctx: Context) -> Out:
    return s, []


def report_backend_error(s: NodeState, ev: BackendError, now: datetime, ctx: Context) -> Out:
    return s, [RecordEvent("backend_error", ev.detail)]


def retry_after_backend_error(s: NodeState, ev: BackendError, now: datetime, ctx: Context) -> Out:
    """A slot request or release failed: its outcome is unknown, so it is sent again later
    (both are idempotent)."""
    at = ctx.timings.retry_at(now, ctx.beat)
    why = f"the backend failed: {ev.detail}; trying again at {at.isoformat()}"
    return replace(s, backend_retry_at=at, reason=why), [RecordEvent("backend_error", ev.detail)]


# ACQUIRING


def ask_again_after_restart(s: NodeState, ev: Restarted, now: datetime, ctx: Context) -> Out:
    """The request's answer was lost with the process: ask again (acquire is recursive), or
    give back whatever it may have got when the gates now say no."""
    return _ask_again(replace(s, boot_id=ev.boot_id), ctx, now)


def ask_again_when_due(s: NodeState, ev: Tick, now: datetime, ctx: Context) -> Out:
    if s.backend_retry_at is None or now < s.backend_retry_at:
        return s, []
    return _ask_again(s, ctx, now)


def _ask_again(s: NodeState, ctx: Context, now: datetime) -> Out:
    s = replace(s, backend_retry_at=None)
    why = _why_stop(s, ctx, now, asking=True)
    if why is None:
        return s, [RequestSlot(s.needed.detector if s.needed else "")]
    # The earlier request may have been granted: release (a no-op when it was not).
    return replace(s, cycle=State.ABORTING, holds_slot=True, reason=f"aborted: {why}"), [
        ReleaseSlot()
    ]


def verify_after_early_boot(s: NodeState, ev: BootDetected, now: datetime, ctx: Context) -> Out:
    """The machine rebooted while a slot was (maybe) held: prove health before releasing."""
    s = replace(
        booted(s, ev.boot_id),
        cycle=State.VERIFYING,
        needed=None,
        holds_slot=True if s.cycle is State.ACQUIRING else s.holds_slot,
        backend_retry_at=None,
        reason="the machine rebooted; checking health before giving the slot back",
    )
    return s, [RunHealthChecks()]


def drain_with_slot(s: NodeState, ev: SlotGranted, now: datetime, ctx: Context) -> Out:
    s = replace(s, holds_slot=True, last_touch=now, backend_retry_at=None)
    why = _why_stop(s, ctx, now)
    if why is not None:
        return abort(s, ctx, now, why)
    return drain(replace(s, reason="slot held; running the pre-reboot hooks"), ctx, now)


def wait_after_denial(s: NodeState, ev: SlotDenied, now: datetime, ctx: Context) -> Out:
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


def drain_again_after_restart(
    s: NodeState, ev: Restarted | Tick, now: datetime, ctx: Context
) -> Out:
    """The hooks (or the reboot) died with the process: run the hooks again if the gates
    still allow it; they are judged once more when the hooks pass."""
    if isinstance(ev, Restarted):
        s = replace(s, boot_id=ev.boot_id)
    why = _why_stop(s, ctx, now)
    if why is not None:
        return abort(s, ctx, now, why)
    return drain(replace(s, reason="running the pre-reboot hooks again after a restart"), ctx, now)


def heartbeat(s: NodeState, ev: Tick, now: datetime, ctx: Context) -> Out:
    """Time passed while a slot may be held: heartbeat the hold when one is due."""
    return touch_if_due(s, ctx, now)


def reboot_after_hooks(s: NodeState, ev: HooksPassed, now: datetime, ctx: Context) -> Out:
    """The last gate before the reboot: the window and the slot are checked right here."""
    s = replace(s, last_hooks=CheckResult(True, ev.detail, now))
    why = _why_stop(s, ctx, now, after="the hooks passed")
    if why is not None:
        return abort(s, ctx, now, why)
    s = replace(
        s,
        cycle=State.REBOOTING,
        boot_id_at_reboot=s.boot_id,
        last_reboot=now,
        reason="rebooting",
    )
    need = s.needed
    return s, [Reboot((need.detail or need.detector) if need else "")]


def abort_on_failed_hooks(s: NodeState, ev: HooksFailed, now: datetime, ctx: Context) -> Out:
    s = replace(s, last_hooks=CheckResult(False, ev.detail, now))
    return abort(s, ctx, now, f"the pre-reboot hooks failed: {ev.detail}")


def abort_on_operator_release(
    s: NodeState, ev: ReleasedByOperator, now: datetime, ctx: Context
) -> Out:
    """An operator took the slot away mid-drain: no reboot; wait with back-off."""
    s = replace(s, holds_slot=False)
    new, actions = abort(s, ctx, now, "an operator released this node's hold during the drain")
    return new, [RecordEvent("released_by_operator", ev.detail), *actions]


# REBOOTING


def drain_again_without_reboot(s: NodeState, ev: Restarted, now: datetime, ctx: Context) -> Out:
    """Same boot: the reboot never happened (the agent died first). Drain again; the gates
    are judged again before a second attempt."""
    return drain_again_after_restart(replace(s, cycle=State.DRAINING), ev, now, ctx)


def verify_after_boot(s: NodeState, ev: BootDetected, now: datetime, ctx: Context) -> Out:
    s = replace(
        booted(s, ev.boot_id),
        cycle=State.VERIFYING,
        needed=None,
        attempts=0,
        retry_at=None,
        reason="rebooted; checking health before giving the slot back",
    )
    return s, [RunHealthChecks()]


def halt_on_failed_reboot(s: NodeState, ev: RebootFailed, now: datetime, ctx: Context) -> Out:
    """The node is drained but may not have rebooted: keep the slot, like a failed check."""
    s = replace(
        s,
        cycle=State.HALTED,
        next_check_at=now + ctx.timings.health_recheck,
        reason=f"the reboot failed: {ev.detail}; slot kept until health passes or an "
        "operator releases it",
    )
    return s, [RecordEvent("reboot_failed", ev.detail)]


def note_operator_release(s: NodeState, ev: ReleasedByOperator, now: datetime, ctx: Context) -> Out:
    return replace(s, holds_slot=False), [RecordEvent("released_by_operator", ev.detail)]


# VERIFYING and HALTED


def check_health_again(
    s: NodeState, ev: Restarted | BootDetected, now: datetime, ctx: Context
) -> Out:
    s = booted(s, ev.boot_id) if isinstance(ev, BootDetected) else replace(s, boot_id=ev.boot_id)
    return replace(s, next_check_at=None), [RunHealthChecks()]


def release_after_health(s: NodeState, ev: HealthPassed, now: datetime, ctx: Context) -> Out:
    s = replace(s, last_health=CheckResult(True, ev.detail, now), next_check_at=None)
    if s.holds_slot:
        return replace(s, cycle=State.RELEASING, reason="healthy; giving the slot back"), [
            ReleaseSlot()
        ]
    return settle(s, ctx, now)


def halt_on_failed_health(s: NodeState, ev: HealthFailed, now: datetime, ctx: Context) -> Out:
    s = replace(
        s,
        cycle=State.HALTED,
        last_health=CheckResult(False, ev.detail, now),
        next_check_at=now + ctx.timings.health_recheck,
        reason=f"health checks failed: {ev.detail}; the slot is kept so the rollout stops "
        "here (fix the node, or `stagger unlock --id` it)",
    )
    return s, [RecordEvent("halted", ev.detail)]


def heartbeat_and_recheck(s: NodeState, ev: Tick, now: datetime, ctx: Context) -> Out:
    s, actions = touch_if_due(s, ctx, now)
    if s.next_check_at is not None and now >= s.next_check_at:
        return replace(s, next_check_at=None), [*actions, RunHealthChecks()]
    return s, actions


def settle_after_operator_release(
    s: NodeState, ev: ReleasedByOperator, now: datetime, ctx: Context
) -> Out:
    """An operator released the hold of a node that was not proven healthy: it is their call;
    the node stops checking and rests."""
    s = replace(s, holds_slot=False, reason="an operator released this node's hold")
    new, actions = settle(s, ctx, now)
    return new, [RecordEvent("released_by_operator", ev.detail or s.cycle.value), *actions]


# RELEASING and ABORTING


def settle_after_release(
    s: NodeState, ev: Released | ReleasedByOperator, now: datetime, ctx: Context
) -> Out:
    aborting = s.cycle is State.ABORTING
    s = replace(s, holds_slot=False, last_touch=None, backend_retry_at=None)
    if not aborting:
        s = replace(s, attempts=0, retry_at=None)
    return settle(s, ctx, now)


def release_again_when_due(s: NodeState, ev: Tick, now: datetime, ctx: Context) -> Out:
    if s.backend_retry_at is None or now < s.backend_retry_at:
        return s, []
    return replace(s, backend_retry_at=None), [ReleaseSlot()]


def release_again_after_restart(
    s: NodeState, ev: Restarted | BootDetected, now: datetime, ctx: Context
) -> Out:
    s = booted(s, ev.boot_id) if isinstance(ev, BootDetected) else replace(s, boot_id=ev.boot_id)
    return replace(s, backend_retry_at=None), [ReleaseSlot()]

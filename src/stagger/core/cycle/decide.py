"""The node cycle's decisions: the table that joins states, events and handlers, and `step`.

Rules of this file:
- Everything that decides what a node does next lives here, with the two files this one is
  built from: handlers.py (one function per transition) and gates.py (the questions every
  handler asks: the gates, the reboot-loop guard, where a node at rest goes, when it wakes).
  `step(state, event, now, ctx)` is the only entry point; the agent (agent/daemon.py), the
  simulator and the tests drive it and execute the actions it returns. Nothing here does
  I/O, reads the clock or logs.
- `TABLE[state][event type]` lists every transition. An event a state cannot take raises
  TransitionError: a bug, never a silent no-op. Each entry names the states it may lead to,
  and `step` asserts the handler stayed inside them (Zincati's transition asserts); where an
  event may lead to more than one, the entry says in words when it leads to each (for
  `explain --diagram text`, which shows only the moves `possible_moves` sees `step` take).
- Handlers are named after what they do, not after the event that calls them.
- Whether a reboot may start is `strategy.decide`'s answer; the handlers ask it again at every
  gate (before a slot request, on grant, and right before the reboot) through one function,
  `_why_stop` in handlers.py, and never re-decide.
- Invariants (tests/core/test_machine_properties.py): never a Reboot without a held slot when the
  strategy asks for one; never a Reboot outside an open window but an urgent one (never in
  a blackout unless it ignores blackouts, never while paused); never a release after a
  reboot before health passed. The abort paths (hooks failed, window closed or paused before
  the drain finished) release without a reboot and go back to WAITING with back-off.
- Every action with an effect outside the process is preceded by Persist in the same list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from stagger.core.cycle.gates import next_wake
from stagger.core.cycle.handlers import (
    Handler,
    abort_on_failed_hooks,
    abort_on_operator_release,
    ask_again_after_restart,
    ask_again_when_due,
    check_health_again,
    drain_again_after_restart,
    drain_again_without_reboot,
    drain_with_slot,
    halt_on_failed_health,
    halt_on_failed_reboot,
    heartbeat,
    heartbeat_and_recheck,
    note_need,
    note_need_gone,
    note_operator_release,
    reboot_after_hooks,
    release_after_health,
    release_again_after_restart,
    release_again_when_due,
    report_backend_error,
    resettle,
    retry_after_backend_error,
    settle_after_operator_release,
    settle_after_outside_reboot,
    settle_after_release,
    settle_after_restart,
    settle_with_need,
    settle_without_need,
    stay,
    verify_after_boot,
    verify_after_early_boot,
    wait_after_denial,
)
from stagger.core.cycle.node_state import NodeState, State
from stagger.core.cycle.vocabulary import (
    EFFECTS,
    Action,
    BackendError,
    BootDetected,
    Context,
    Event,
    HealthFailed,
    HealthPassed,
    HooksFailed,
    HooksPassed,
    Needed,
    NotNeeded,
    PauseChanged,
    Persist,
    RebootFailed,
    Released,
    ReleasedByOperator,
    Restarted,
    SlotDenied,
    SlotGranted,
    Tick,
    WakeAt,
)
from stagger.core.errors import TransitionError

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


# Where settle may lead, and when.
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
# Where abort may lead: ABORTING when a slot is held, else wherever settle goes.
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
        Needed: _t(settle_with_need, *_SETTLE),
        NotNeeded: _t(settle_without_need, *_SETTLE),
        Tick: _t(resettle, *_SETTLE),
        PauseChanged: _t(resettle, *_SETTLE),
        Restarted: _t(settle_after_restart, *_SETTLE),
        BootDetected: _t(settle_after_outside_reboot, *_SETTLE),
        BackendError: _t(report_backend_error, state),
    }


def _keep(state: State) -> dict[type, Transition]:
    """Events every busy state takes without moving: needs are recorded, pauses are judged at
    the next gate, backend errors are reported."""
    return {
        Needed: _t(note_need, state),
        NotNeeded: _t(note_need_gone, state),
        PauseChanged: _t(stay, state),
        BackendError: _t(report_backend_error, state),
    }


TABLE: dict[State, dict[type, Transition]] = {
    State.IDLE: _resting(State.IDLE),
    State.WAITING: _resting(State.WAITING),
    State.DISABLED: _resting(State.DISABLED),
    State.ACQUIRING: {
        **_keep(State.ACQUIRING),
        SlotGranted: _t(drain_with_slot, (State.DRAINING, _GO_ON), (State.ABORTING, _STOP)),
        SlotDenied: _t(wait_after_denial, State.WAITING),
        BackendError: _t(retry_after_backend_error, State.ACQUIRING),
        Tick: _t(
            ask_again_when_due, State.ACQUIRING, (State.ABORTING, f"a retry is due and {_STOP}")
        ),
        Restarted: _t(ask_again_after_restart, State.ACQUIRING, (State.ABORTING, _STOP)),
        BootDetected: _t(verify_after_early_boot, State.VERIFYING),
    },
    State.DRAINING: {
        **_keep(State.DRAINING),
        HooksPassed: _t(
            reboot_after_hooks,
            (State.REBOOTING, _GO_ON),
            *_after("the gates no longer allow it", _ABORT),
        ),
        HooksFailed: _t(abort_on_failed_hooks, *_ABORT),
        Tick: _t(heartbeat, State.DRAINING),
        Restarted: _t(
            drain_again_after_restart,
            (State.DRAINING, f"{_GO_ON}: the hooks run again"),
            *_after("the gates no longer allow it", _ABORT),
        ),
        BootDetected: _t(verify_after_early_boot, State.VERIFYING),
        ReleasedByOperator: _t(abort_on_operator_release, *_SETTLE),
    },
    State.REBOOTING: {
        **_keep(State.REBOOTING),
        BootDetected: _t(verify_after_boot, State.VERIFYING),
        Restarted: _t(
            drain_again_without_reboot,
            (State.DRAINING, f"the machine did not reboot and {_GO_ON}: drain again"),
            *_after("the machine did not reboot and the gates no longer allow it", _ABORT),
        ),
        RebootFailed: _t(halt_on_failed_reboot, State.HALTED),
        Tick: _t(heartbeat, State.REBOOTING),
        ReleasedByOperator: _t(note_operator_release, State.REBOOTING),
    },
    State.VERIFYING: {
        **_keep(State.VERIFYING),
        HealthPassed: _t(
            release_after_health,
            (State.RELEASING, "a slot is held"),
            *_after("no slot is held", _SETTLE),
        ),
        HealthFailed: _t(halt_on_failed_health, State.HALTED),
        Tick: _t(heartbeat, State.VERIFYING),
        Restarted: _t(check_health_again, State.VERIFYING),
        BootDetected: _t(check_health_again, State.VERIFYING),
        ReleasedByOperator: _t(settle_after_operator_release, *_SETTLE),
    },
    State.HALTED: {
        **_keep(State.HALTED),
        HealthPassed: _t(
            release_after_health,
            (State.RELEASING, "a slot is held"),
            *_after("no slot is held", _SETTLE),
        ),
        HealthFailed: _t(halt_on_failed_health, State.HALTED),
        Tick: _t(heartbeat_and_recheck, State.HALTED),
        Restarted: _t(check_health_again, State.HALTED),
        BootDetected: _t(check_health_again, State.HALTED),
        ReleasedByOperator: _t(settle_after_operator_release, *_SETTLE),
    },
    State.RELEASING: {
        **_keep(State.RELEASING),
        Released: _t(settle_after_release, *_SETTLE),
        ReleasedByOperator: _t(settle_after_release, *_SETTLE),
        BackendError: _t(retry_after_backend_error, State.RELEASING),
        Tick: _t(release_again_when_due, State.RELEASING),
        Restarted: _t(release_again_after_restart, State.RELEASING),
        BootDetected: _t(release_again_after_restart, State.RELEASING),
    },
    State.ABORTING: {
        **_keep(State.ABORTING),
        Released: _t(settle_after_release, *_SETTLE),
        ReleasedByOperator: _t(settle_after_release, *_SETTLE),
        BackendError: _t(retry_after_backend_error, State.ABORTING),
        Tick: _t(release_again_when_due, State.ABORTING),
        Restarted: _t(release_again_after_restart, State.ABORTING),
        BootDetected: _t(release_again_after_restart, State.ABORTING),
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

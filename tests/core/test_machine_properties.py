"""The node cycle's invariants over random event sequences (hypothesis).

Each run picks a strategy and then feeds the machine events its current state accepts, with a
world that changes under it at every step: the schedule opens and closes, pauses come and go,
the disabled flag appears, time jumps, the agent restarts or the machine reboots at any point.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import event as note_event
from hypothesis import given, settings
from hypothesis import strategies as st

from stagger.core.cycle.decide import TABLE, step
from stagger.core.cycle.diagram import possible_moves
from stagger.core.cycle.node_state import NodeState, State
from stagger.core.cycle.vocabulary import (
    EFFECTS,
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
    Reboot,
    RebootFailed,
    Released,
    ReleasedByOperator,
    ReleaseSlot,
    Restarted,
    SlotDenied,
    SlotGranted,
    Tick,
    Timings,
    WakeAt,
    start_event,
)
from stagger.core.schedule import Schedule
from stagger.core.semaphore import Pause, Urgent
from stagger.core.strategy import Strategy
from stagger.core.windows import Blackout, Window

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PAUSE = Pause("freeze", "operator:ann", START)
TIMINGS = Timings(
    touch_interval=timedelta(seconds=60),
    retry_interval=timedelta(seconds=5),
    backoff_base=timedelta(seconds=10),
    backoff_max=timedelta(minutes=5),
    health_recheck=timedelta(seconds=20),
)


UNVERIFIED_AFTER_BOOT = {
    State.ACQUIRING,
    State.DRAINING,
    State.REBOOTING,
    State.VERIFYING,
    State.HALTED,
}


def schedule_at(now: datetime, is_open: bool, closes_in: int, *, blackout: bool = True) -> Schedule:
    """A schedule that is open at `now` (closing `closes_in` minutes later) or closed: by a
    blackout, or (`blackout=False`) because its one daily window is hours away."""
    if is_open:
        begin = now + timedelta(minutes=closes_in)
        return Schedule(blackouts=(Blackout(begin, begin + timedelta(hours=1), "later"),))
    if not blackout:
        later = (now + timedelta(hours=6)).time()
        return Schedule(windows=(Window(frozenset(range(7)), later, timedelta(hours=1)),))
    return Schedule(blackouts=(Blackout(now - timedelta(minutes=1), now + timedelta(hours=1)),))


URGENT = Urgent("kernel CVE", "operator:ann", START)
URGENT_ANYWAY = Urgent("kernel CVE", "operator:ann", START, ignore_blackouts=True)


def candidates(state: NodeState, boot: int) -> list[Event]:
    """Events the state accepts, as the world would send them."""
    events: list[Event] = [
        Needed("file", "pkg"),
        Needed("file", "pkg-2"),  # a new detail: a need no reboot was tried for yet
        NotNeeded("file"),
        NotNeeded("file", "exit 127", unknown=True),  # cannot tell: the need did not go away
        Tick(),
        PauseChanged(),
        Restarted(f"boot-{boot}"),
        BootDetected(f"boot-{boot + 1}"),
        SlotGranted(),
        SlotDenied("full"),
        HooksPassed(),
        HooksFailed("drain failed"),
        RebootFailed("logind refused"),
        HealthPassed(),
        HealthFailed("port closed"),
        Released(),
        BackendError("timeout"),
    ]
    if state.holds_slot:
        events.append(ReleasedByOperator())
    return [e for e in events if type(e) in TABLE[state.cycle]]


def needs_slot(strategy: Strategy, reachable: bool) -> bool:
    return strategy is Strategy.LOCK or (strategy is Strategy.BEST_EFFORT and reachable)


CYCLE_CASES = {
    "strategy": st.sampled_from(list(Strategy)),
    "reachable": st.booleans(),
    "data": st.data(),
}
# The events of one reboot and its failures, without the world changing around it: short
# sequences of these reach the cases a long random walk rarely does (CI's derandomized profile
# never reached a refused reboot retried after health passed with the full alphabet).
REBOOT_PATH = (
    Needed,
    SlotGranted,
    SlotDenied,
    HooksPassed,
    HooksFailed,
    RebootFailed,
    HealthPassed,
    HealthFailed,
    Released,
    BootDetected,
)


@settings(max_examples=400, deadline=None)
@given(**CYCLE_CASES)
def test_the_cycle_invariants_hold_over_random_event_sequences(
    strategy: Strategy, reachable: bool, data: st.DataObject
) -> None:
    check_random_cycle(strategy, reachable, data)


@settings(max_examples=400, deadline=None)
@given(**CYCLE_CASES)
def test_the_cycle_invariants_hold_along_the_reboot_path(
    strategy: Strategy, reachable: bool, data: st.DataObject
) -> None:
    check_random_cycle(strategy, reachable, data, calm=True)


def check_random_cycle(
    strategy: Strategy, reachable: bool, data: st.DataObject, *, calm: bool = False
) -> None:
    """Feed random accepted events and check every invariant after each step. `calm`: an
    always-open window, no pause, not disabled, and only REBOOT_PATH events, in short runs."""
    state = NodeState()
    now = START
    boot = 0
    # True from a reboot (asked for, or seen) with a slot until health passes.
    rebooted_unverified = False
    reboot_pending = False  # a Reboot was asked for and no start has been seen since
    # (detector, detail) of each need the machine booted with since a need last went away:
    # a reboot did not clear it, so none may be asked for again (the reboot-loop guard).
    booted_with: set[tuple[str, str]] = set()
    for _ in range(data.draw(st.integers(3, 12) if calm else st.integers(10, 60), label="length")):
        if calm:
            ctx = Context(
                strategy=strategy,
                schedule=schedule_at(now, True, 120),
                backend_reachable=reachable,
                timings=TIMINGS,
            )
            options = [e for e in candidates(state, boot) if isinstance(e, REBOOT_PATH)]
            if not options:
                return
        else:
            is_open = data.draw(st.booleans(), label="open")
            closes = data.draw(st.integers(1, 120), label="closes")
            by_blackout = data.draw(st.booleans(), label="closed by a blackout")
            ctx = Context(
                strategy=strategy,
                schedule=schedule_at(now, is_open, closes, blackout=by_blackout),
                pause=PAUSE if data.draw(st.integers(0, 5), label="pause") == 0 else None,
                urgent=data.draw(st.sampled_from([None, URGENT, URGENT_ANYWAY]), label="urgent"),
                backend_reachable=reachable,
                disabled=data.draw(st.integers(0, 8), label="disabled") == 0,
                timings=TIMINGS,
            )
            options = candidates(state, boot)
        event = data.draw(st.sampled_from(options), label="event")
        if isinstance(event, Restarted | BootDetected):
            event = start_event(state, event.boot_id)
        before = state
        state, actions = step(state, event, now, ctx)

        if isinstance(event, BootDetected):
            boot += 1
            reboot_pending = False
            if before.needed is not None:
                booted_with.add((before.needed.detector, before.needed.detail))
            # A reboot in RELEASING (health passed) or ABORTING (already giving the slot back,
            # no reboot of ours) does not need proof of health.
            if before.cycle in UNVERIFIED_AFTER_BOOT and (
                before.holds_slot or before.cycle is State.ACQUIRING
            ):
                rebooted_unverified = True
        if isinstance(event, NotNeeded) and not event.unknown:
            booted_with.clear()
        if isinstance(event, Restarted):
            reboot_pending = False
            if before.cycle is State.REBOOTING:
                # Same boot id: the reboot never happened, so there is nothing to verify; the
                # gates are judged again and may abort (window closed, paused).
                rebooted_unverified = False
        if isinstance(event, HealthPassed | ReleasedByOperator):
            rebooted_unverified = False  # proven healthy, or the operator's call
        if isinstance(event, RebootFailed):
            # A refused reboot request is not a reboot: once health passes, the node may ask
            # again (under a slot it acquires again, where the strategy takes one).
            reboot_pending = False

        for i, action in enumerate(actions):
            if isinstance(action, EFFECTS):
                assert any(isinstance(a, Persist) for a in actions[:i]), (
                    f"{action} not preceded by Persist"
                )
            if isinstance(action, Persist):
                assert action.state == state
            if isinstance(action, Reboot):
                if not ctx.schedule.is_open(now):
                    # Only an urgent reboot skips the window; a blackout only when it says so.
                    assert ctx.urgent is not None, "a reboot outside an open window"
                    in_blackout = ctx.schedule.blackout_at(now) is not None
                    assert ctx.urgent.ignore_blackouts or not in_blackout, "a reboot in a blackout"
                    note_event("urgent reboot outside the window")
                assert ctx.pause is None, "a reboot while paused"
                assert not ctx.disabled, "a reboot while disabled"
                if needs_slot(strategy, reachable):
                    assert state.holds_slot, "a reboot without a held slot"
                assert strategy is not Strategy.OFF
                assert not reboot_pending, "a second reboot before the first was seen"
                assert state.needed is not None
                need = (state.needed.detector, state.needed.detail)
                assert need not in booted_with, "a second reboot for a need a reboot left"
                reboot_pending = True
                note_event("rebooted")
                if state.holds_slot:
                    rebooted_unverified = True
            if isinstance(action, ReleaseSlot):
                note_event(f"released from {before.cycle.value}")
                assert not rebooted_unverified, "a release after a reboot before health passed"
        if state.cycle in (State.VERIFYING, State.HALTED) and before.cycle is State.REBOOTING:
            assert state.holds_slot == before.holds_slot
        if isinstance(event, HealthFailed) and before.holds_slot:
            assert state.cycle is State.HALTED, "a failing node left the rollout"
            assert state.holds_slot, "a failing node gave its slot up"
        now += timedelta(seconds=data.draw(st.integers(0, 600), label="elapsed"))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_need_survives_any_restart_until_a_reboot_or_a_detector_clears_it(
    data: st.DataObject,
) -> None:
    state, _ = step(NodeState(), Needed("file", "pkg"), START, Context(Strategy.LOCK))
    ctx = Context(Strategy.LOCK, timings=TIMINGS)
    now = START
    for _ in range(data.draw(st.integers(1, 30))):
        options = [e for e in candidates(state, 0) if not isinstance(e, NotNeeded | BootDetected)]
        event = data.draw(st.sampled_from(options))
        rebooting = state.cycle is State.REBOOTING
        if isinstance(event, Restarted):
            event = start_event(state, "boot-0")
        state, _ = step(state, event, now, ctx)
        if not rebooting and state.cycle not in (State.VERIFYING, State.HALTED):
            assert state.needed is not None
        now += timedelta(seconds=data.draw(st.integers(0, 120)))


def _replay(strategy: Strategy, events: list[Event]) -> list[tuple[State, bool, list[str]]]:
    """Feed `events` to a fresh node in an always-open window (the backend unreachable, so
    best-effort reboots without a slot); each step's cycle, slot and actions."""
    ctx = Context(
        strategy=strategy,
        schedule=schedule_at(START, True, 120),
        backend_reachable=False,
        timings=TIMINGS,
    )
    state, now, seen = NodeState(), START, []
    for event in events:
        assert type(event) in TABLE[state.cycle], f"{type(event).__name__} in {state.cycle}"
        state, actions = step(state, event, now, ctx)
        seen.append((state.cycle, state.holds_slot, [type(a).__name__ for a in actions]))
        now += timedelta(seconds=30)
    return seen


def test_a_refused_reboot_is_retried_only_after_health_passes_and_under_a_new_slot() -> None:
    """The case the property test found once (REBOOTING -> RebootFailed -> HALTED ->
    HealthPassed -> DRAINING -> Reboot, no boot between). A refused reboot request is not a
    reboot: the node keeps its slot and stays HALTED until health passes; then, still needing
    the reboot, it asks again. With `lock` it first gives the slot back and takes a new one, so
    the retry is counted against `max` like any other reboot."""
    failed = [Needed("file", "pkg"), SlotGranted(), HooksPassed(), RebootFailed("refused")]
    seen = _replay(Strategy.LOCK, [*failed, HealthPassed(), Released(), SlotGranted()])
    assert seen[3][:2] == (State.HALTED, True), "a refused reboot keeps the slot"
    assert seen[4] == (State.RELEASING, True, ["Persist", "ReleaseSlot"])
    assert seen[5][:2] == (State.ACQUIRING, False), "the retry asks for a new slot"
    assert seen[6][:2] == (State.DRAINING, True)
    for strategy in (Strategy.IMMEDIATE, Strategy.BEST_EFFORT):
        seen = _replay(strategy, [Needed("file", "pkg"), HooksPassed(), RebootFailed("refused")])
        assert seen[-1][0] is State.HALTED
        assert "Reboot" not in seen[-1][2]
        retry = _replay(
            strategy,
            [Needed("file", "pkg"), HooksPassed(), RebootFailed("refused"), HealthPassed()],
        )
        assert retry[-1] == (State.DRAINING, False, ["Persist", "RunPreRebootHooks"])


@settings(max_examples=300, deadline=None)
@given(strategy=st.sampled_from(list(Strategy)), reachable=st.booleans(), data=st.data())
def test_every_move_a_random_run_takes_is_one_the_diagram_knows(
    strategy: Strategy, reachable: bool, data: st.DataObject
) -> None:
    """possible_moves (what `explain --diagram text` shows) explores a few situations; no run
    in a world that changes at every step takes a move it did not find."""
    possible = possible_moves()
    state = NodeState()
    now = START
    boot = 0
    for _ in range(data.draw(st.integers(10, 60), label="length")):
        ctx = Context(
            strategy=strategy,
            schedule=schedule_at(now, data.draw(st.booleans()), data.draw(st.integers(1, 120))),
            pause=PAUSE if data.draw(st.integers(0, 5)) == 0 else None,
            backend_reachable=reachable,
            disabled=data.draw(st.integers(0, 8)) == 0,
            dry_run=data.draw(st.integers(0, 8)) == 0,
            timings=TIMINGS,
        )
        event = data.draw(st.sampled_from(candidates(state, boot)), label="event")
        if isinstance(event, Restarted | BootDetected):
            event = start_event(state, event.boot_id)
            boot += isinstance(event, BootDetected)
        before = state
        state, _ = step(state, event, now, ctx)
        assert (before.cycle, type(event), state.cycle) in possible, (before, event, state)
        now += timedelta(seconds=data.draw(st.integers(0, 600), label="elapsed"))


def _urgent_run(ctx: Context) -> list[tuple[State, list[str]]]:
    """A lock node needing a reboot, granted a slot and passing its hooks, under `ctx`."""
    state, now, seen = NodeState(), START, []
    for event in (Needed("manual", "kernel CVE"), SlotGranted(), HooksPassed()):
        if type(event) not in TABLE[state.cycle]:
            break
        state, actions = step(state, event, now, ctx)
        kinds = [type(a).__name__ for a in actions if not isinstance(a, WakeAt)]
        seen.append((state.cycle, kinds))
        now += timedelta(seconds=30)
    return seen


def test_an_urgent_reboot_skips_the_window_but_takes_a_slot_and_drains() -> None:
    closed = schedule_at(START, False, 0, blackout=False)
    assert not closed.is_open(START)
    waits = _urgent_run(Context(Strategy.LOCK, schedule=closed, timings=TIMINGS))
    assert [cycle for cycle, _ in waits] == [State.WAITING]
    urgent = _urgent_run(Context(Strategy.LOCK, schedule=closed, urgent=URGENT, timings=TIMINGS))
    assert urgent == [
        (State.ACQUIRING, ["Persist", "RequestSlot"]),
        (State.DRAINING, ["Persist", "RunPreRebootHooks"]),
        (State.REBOOTING, ["Persist", "Reboot"]),
    ]
    state, _ = step(
        NodeState(),
        Needed("manual", "x"),
        START,
        Context(Strategy.LOCK, schedule=closed, urgent=URGENT),
    )
    assert "urgent reboot asked by operator:ann: kernel CVE" in state.reason


def test_an_urgent_reboot_waits_out_a_blackout_unless_told_and_always_a_pause() -> None:
    blackout = schedule_at(START, False, 0)
    in_blackout = _urgent_run(
        Context(Strategy.LOCK, schedule=blackout, urgent=URGENT, timings=TIMINGS)
    )
    assert [cycle for cycle, _ in in_blackout] == [State.WAITING]
    anyway = _urgent_run(
        Context(Strategy.LOCK, schedule=blackout, urgent=URGENT_ANYWAY, timings=TIMINGS)
    )
    assert anyway[-1] == (State.REBOOTING, ["Persist", "Reboot"])
    closed = schedule_at(START, False, 0, blackout=False)
    for schedule in (closed, blackout):
        paused = _urgent_run(
            Context(
                Strategy.LOCK, schedule=schedule, pause=PAUSE, urgent=URGENT_ANYWAY, timings=TIMINGS
            )
        )
        assert [cycle for cycle, _ in paused] == [State.WAITING]

"""The node cycle, one transition per test: core/cycle/ is called directly (it does no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagger.core.cycle.decide import TABLE, step
from stagger.core.cycle.diagram import diagram, moves, possible_moves
from stagger.core.cycle.gates import REBOOTED_FOR_KEPT
from stagger.core.cycle.node_state import CheckResult, Need, NodeState, State
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
    Reboot,
    RebootFailed,
    RecordEvent,
    Released,
    ReleasedByOperator,
    ReleaseSlot,
    RequestSlot,
    Restarted,
    RunHealthChecks,
    RunPreRebootHooks,
    SlotDenied,
    SlotGranted,
    Tick,
    Timings,
    Touch,
    WakeAt,
    beat_of,
    start_event,
)
from stagger.core.errors import InvalidInput, TransitionError
from stagger.core.schedule import Schedule
from stagger.core.semaphore import Pause
from stagger.core.strategy import Strategy
from stagger.core.updates import reboot_pending
from stagger.core.windows import Blackout, Window

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
MIN = timedelta(minutes=1)
OPEN = Schedule()  # no windows: always open
CLOSED = Schedule(blackouts=(Blackout(NOW - timedelta(hours=1), NOW + timedelta(hours=1), "x"),))
# Open now, closing in 30 minutes (a blackout begins then).
CLOSING = Schedule(blackouts=(Blackout(NOW + 30 * MIN, NOW + timedelta(hours=2), "freeze"),))
PAUSE = Pause("maintenance", "operator:ann", NOW - MIN)
NEED = Need(NOW - timedelta(hours=1), "file", "linux-image")


def ctx(strategy: Strategy = Strategy.LOCK, schedule: Schedule = OPEN, **kw: object) -> Context:
    return Context(strategy=strategy, schedule=schedule, **kw)  # type: ignore[arg-type]


def node(cycle: State, **kw: object) -> NodeState:
    base = NodeState(cycle=cycle, since=NOW - timedelta(hours=2), boot_id="boot-a")
    return replace(base, **kw)  # type: ignore[arg-type]


def holding(cycle: State, **kw: object) -> NodeState:
    return node(cycle, **{"needed": NEED, "holds_slot": True, "last_touch": NOW, **kw})


def of(actions: list[Action], kind: type) -> list[Action]:
    return [a for a in actions if isinstance(a, kind)]


def effects(actions: list[Action]) -> list[Action]:
    """The actions that reach outside the process, without the bookkeeping ones."""
    return [a for a in actions if isinstance(a, EFFECTS)]


# --- IDLE -----------------------------------------------------------------------------------------


def test_needed_with_the_window_open_asks_for_a_slot_in_the_same_step() -> None:
    new, actions = step(node(State.IDLE), Needed("file", "linux-image"), NOW, ctx())
    assert new.cycle is State.ACQUIRING
    assert effects(actions) == [RequestSlot("file")]
    assert new.needed == Need(NOW, "file", "linux-image")


def test_the_state_is_persisted_before_the_slot_request() -> None:
    new, actions = step(node(State.IDLE), Needed("file"), NOW, ctx())
    assert actions.index(Persist(new)) < actions.index(RequestSlot("file"))


def test_needed_with_the_window_closed_waits_and_wakes_when_it_opens() -> None:
    new, actions = step(node(State.IDLE), Needed("file"), NOW, ctx(schedule=CLOSED))
    assert new.cycle is State.WAITING
    assert effects(actions) == []
    assert actions[-1] == WakeAt(NOW + timedelta(hours=1))
    assert "waiting for the schedule" in new.reason


def test_needed_while_paused_waits_and_says_who_paused() -> None:
    new, actions = step(node(State.IDLE), Needed("file"), NOW, ctx(pause=PAUSE))
    assert new.cycle is State.WAITING
    assert effects(actions) == []
    assert "operator:ann" in new.reason


def test_a_pause_with_an_end_wakes_the_node_when_it_ends() -> None:
    pause = replace(PAUSE, until=NOW + 10 * MIN)
    _, actions = step(node(State.IDLE), Needed("file"), NOW, ctx(pause=pause))
    assert actions[-1] == WakeAt(NOW + 10 * MIN)


def test_needed_with_strategy_off_waits_for_nothing() -> None:
    new, actions = step(node(State.IDLE), Needed("file"), NOW, ctx(Strategy.OFF))
    assert new.cycle is State.WAITING
    assert not of(actions, WakeAt)
    assert "'off'" in new.reason


def test_needed_under_immediate_drains_without_a_slot() -> None:
    new, actions = step(node(State.IDLE), Needed("file"), NOW, ctx(Strategy.IMMEDIATE, CLOSING))
    assert new.cycle is State.DRAINING
    assert not new.holds_slot
    assert effects(actions) == [RunPreRebootHooks(NOW + 30 * MIN)]


def test_needed_under_best_effort_with_an_unreachable_backend_drains_without_a_slot() -> None:
    c = ctx(Strategy.BEST_EFFORT, backend_reachable=False)
    new, actions = step(node(State.IDLE), Needed("file"), NOW, c)
    assert new.cycle is State.DRAINING
    assert of(actions, RequestSlot) == []


def test_needed_under_best_effort_with_a_reachable_backend_asks_for_a_slot() -> None:
    new, _ = step(node(State.IDLE), Needed("file"), NOW, ctx(Strategy.BEST_EFFORT))
    assert new.cycle is State.ACQUIRING


def test_needed_with_the_disabled_flag_rests_in_disabled_and_keeps_the_need() -> None:
    new, actions = step(node(State.IDLE), Needed("file"), NOW, ctx(disabled=True))
    assert new.cycle is State.DISABLED
    assert new.needed is not None
    assert effects(actions) == []


def test_a_dry_run_decides_records_and_does_nothing() -> None:
    new, actions = step(node(State.IDLE), Needed("file"), NOW, ctx(dry_run=True))
    assert new.cycle is State.WAITING
    assert effects(actions) == []
    assert of(actions, RecordEvent)[0].kind == "dry_run"  # type: ignore[union-attr]
    assert new.reason.startswith("dry run:")


def test_not_needed_in_idle_changes_nothing_and_persists_nothing() -> None:
    start = node(State.IDLE)
    new, actions = step(start, NotNeeded("file"), NOW, ctx())
    assert new == start
    assert actions == []


def test_a_tick_in_idle_changes_nothing() -> None:
    start = node(State.IDLE)
    assert step(start, Tick(), NOW, ctx()) == (start, [])


def test_a_backend_error_in_idle_is_recorded_without_moving() -> None:
    new, actions = step(node(State.IDLE), BackendError("etcd down"), NOW, ctx())
    assert new.cycle is State.IDLE
    assert actions == [RecordEvent("backend_error", "etcd down")]


def test_a_restart_records_the_boot_id() -> None:
    new, _ = step(NodeState(), Restarted("boot-b"), NOW, ctx())
    assert new.boot_id == "boot-b"
    assert new.cycle is State.IDLE


def test_the_since_of_a_need_is_kept_when_the_same_detector_says_it_again() -> None:
    start = node(State.WAITING, needed=NEED)
    new, _ = step(start, Needed("file", "linux-image"), NOW, ctx(schedule=CLOSED))
    assert new.needed == NEED


# --- WAITING --------------------------------------------------------------------------------------


def test_a_tick_when_the_window_has_opened_asks_for_a_slot() -> None:
    new, actions = step(node(State.WAITING, needed=NEED), Tick(), NOW, ctx())
    assert new.cycle is State.ACQUIRING
    assert effects(actions) == [RequestSlot("file")]


def test_a_tick_before_the_back_off_ends_keeps_waiting_until_then() -> None:
    start = node(State.WAITING, needed=NEED, attempts=2, retry_at=NOW + 5 * MIN)
    new, actions = step(start, Tick(), NOW, ctx())
    assert new.cycle is State.WAITING
    assert effects(actions) == []
    assert actions[-1] == WakeAt(NOW + 5 * MIN)
    assert "backing off after 2" in new.reason


def test_a_tick_after_the_back_off_ends_asks_for_a_slot() -> None:
    start = node(State.WAITING, needed=NEED, attempts=2, retry_at=NOW - MIN)
    new, _actions = step(start, Tick(), NOW, ctx())
    assert new.cycle is State.ACQUIRING
    assert new.retry_at is None


def test_not_needed_while_waiting_goes_idle() -> None:
    new, _ = step(node(State.WAITING, needed=NEED), NotNeeded("file"), NOW, ctx(schedule=CLOSED))
    assert new.cycle is State.IDLE
    assert new.needed is None


def test_a_lifted_pause_lets_a_waiting_node_ask_for_a_slot() -> None:
    new, _actions = step(node(State.WAITING, needed=NEED), PauseChanged(), NOW, ctx())
    assert new.cycle is State.ACQUIRING


def test_an_expired_pause_in_the_context_does_not_hold_a_node_back() -> None:
    old = replace(PAUSE, until=NOW - MIN)
    new, _ = step(node(State.WAITING, needed=NEED), Tick(), NOW, ctx(pause=old))
    assert new.cycle is State.ACQUIRING


def test_a_reboot_by_something_else_while_waiting_meets_the_need() -> None:
    new, _ = step(node(State.WAITING, needed=NEED), BootDetected("boot-b"), NOW, ctx(CLOSED))
    assert new.cycle is State.IDLE
    assert new.needed is None
    assert new.boot_id == "boot-b"


# --- DISABLED -------------------------------------------------------------------------------------


def test_removing_the_disabled_flag_lets_a_needed_node_go_on() -> None:
    new, _actions = step(node(State.DISABLED, needed=NEED), Tick(), NOW, ctx())
    assert new.cycle is State.ACQUIRING


def test_a_disabled_node_stays_disabled_while_the_flag_exists() -> None:
    new, actions = step(node(State.DISABLED, needed=NEED), Tick(), NOW, ctx(disabled=True))
    assert new.cycle is State.DISABLED
    assert effects(actions) == []


# --- ACQUIRING ------------------------------------------------------------------------------------


def test_a_granted_slot_starts_the_pre_reboot_hooks_with_the_windows_end_as_deadline() -> None:
    start = node(State.ACQUIRING, needed=NEED)
    new, actions = step(start, SlotGranted(), NOW, ctx(schedule=CLOSING))
    assert new.cycle is State.DRAINING
    assert new.holds_slot
    assert effects(actions) == [RunPreRebootHooks(NOW + 30 * MIN)]


def test_a_slot_granted_after_the_window_closed_is_given_back_with_back_off() -> None:
    start = node(State.ACQUIRING, needed=NEED)
    new, actions = step(start, SlotGranted(), NOW, ctx(schedule=CLOSED))
    assert new.cycle is State.ABORTING
    assert effects(actions) == [ReleaseSlot()]
    assert new.attempts == 1
    assert new.retry_at == NOW + MIN


def test_a_denied_slot_waits_and_asks_again_after_the_retry_interval() -> None:
    start = node(State.ACQUIRING, needed=NEED)
    new, actions = step(start, SlotDenied("all 1 slot(s) are held by: b"), NOW, ctx())
    assert new.cycle is State.WAITING
    assert not new.holds_slot
    assert new.retry_at == NOW + timedelta(seconds=30)
    assert actions[-1] == WakeAt(NOW + timedelta(seconds=30))
    assert "held by: b" in new.reason


def test_a_backend_error_on_the_request_asks_again_after_the_retry_interval() -> None:
    start = node(State.ACQUIRING, needed=NEED)
    new, actions = step(start, BackendError("timeout"), NOW, ctx())
    assert new.cycle is State.ACQUIRING
    assert new.backend_retry_at == NOW + timedelta(seconds=30)
    assert effects(actions) == []
    _later, again = step(new, Tick(), NOW + timedelta(seconds=30), ctx())
    assert effects(again) == [RequestSlot("file")]


def test_a_tick_before_the_retry_is_due_sends_nothing() -> None:
    start = node(State.ACQUIRING, needed=NEED, backend_retry_at=NOW + MIN)
    assert effects(step(start, Tick(), NOW, ctx())[1]) == []


def test_a_request_that_keeps_failing_until_the_window_closes_gives_back_what_it_may_hold() -> None:
    start = node(State.ACQUIRING, needed=NEED, backend_retry_at=NOW - MIN)
    new, actions = step(start, Tick(), NOW, ctx(schedule=CLOSED))
    assert new.cycle is State.ABORTING
    assert effects(actions) == [ReleaseSlot()]


def test_a_restart_while_acquiring_asks_again() -> None:
    new, actions = step(node(State.ACQUIRING, needed=NEED), Restarted("boot-a"), NOW, ctx())
    assert new.cycle is State.ACQUIRING
    assert effects(actions) == [RequestSlot("file")]


def test_a_restart_while_acquiring_when_paused_gives_back_what_it_may_hold() -> None:
    start = node(State.ACQUIRING, needed=NEED)
    new, actions = step(start, Restarted("boot-a"), NOW, ctx(pause=PAUSE))
    assert new.cycle is State.ABORTING
    assert effects(actions) == [ReleaseSlot()]


def test_a_reboot_while_acquiring_proves_health_before_giving_anything_back() -> None:
    new, actions = step(node(State.ACQUIRING, needed=NEED), BootDetected("boot-b"), NOW, ctx())
    assert new.cycle is State.VERIFYING
    assert new.holds_slot
    assert effects(actions) == [RunHealthChecks()]


# --- DRAINING -------------------------------------------------------------------------------------


def test_passing_hooks_with_the_window_open_reboot_after_persisting() -> None:
    new, actions = step(holding(State.DRAINING), HooksPassed("ok"), NOW, ctx())
    assert new.cycle is State.REBOOTING
    assert new.boot_id_at_reboot == "boot-a"
    assert new.last_reboot == NOW
    assert new.last_hooks == CheckResult(True, "ok", NOW)
    assert effects(actions) == [Reboot("linux-image")]
    assert actions.index(Persist(new)) < actions.index(Reboot("linux-image"))


def test_passing_hooks_after_the_window_closed_abort_and_release() -> None:
    new, actions = step(holding(State.DRAINING), HooksPassed(), NOW, ctx(schedule=CLOSED))
    assert new.cycle is State.ABORTING
    assert effects(actions) == [ReleaseSlot()]
    assert of(actions, Reboot) == []
    assert "the hooks passed, but" in new.reason


def test_passing_hooks_while_paused_abort_and_release() -> None:
    new, actions = step(holding(State.DRAINING), HooksPassed(), NOW, ctx(pause=PAUSE))
    assert new.cycle is State.ABORTING
    assert of(actions, Reboot) == []


def test_passing_hooks_after_the_disabled_flag_appeared_abort() -> None:
    new, actions = step(holding(State.DRAINING), HooksPassed(), NOW, ctx(disabled=True))
    assert new.cycle is State.ABORTING
    assert of(actions, Reboot) == []


def test_passing_hooks_without_a_slot_under_lock_never_reboot() -> None:
    start = node(State.DRAINING, needed=NEED, holds_slot=False)
    new, actions = step(start, HooksPassed(), NOW, ctx())
    assert of(actions, Reboot) == []
    assert new.cycle is not State.REBOOTING


def test_passing_hooks_when_the_need_went_away_abort() -> None:
    start, _ = step(holding(State.DRAINING), NotNeeded("file"), NOW, ctx())
    assert start.cycle is State.DRAINING
    new, actions = step(start, HooksPassed(), NOW, ctx())
    assert new.cycle is State.ABORTING
    assert of(actions, Reboot) == []


def test_passing_hooks_under_immediate_reboot_without_a_slot() -> None:
    start = node(State.DRAINING, needed=NEED)
    new, actions = step(start, HooksPassed(), NOW, ctx(Strategy.IMMEDIATE))
    assert new.cycle is State.REBOOTING
    assert of(actions, Reboot)


def test_failing_hooks_release_the_slot_and_back_off() -> None:
    new, actions = step(holding(State.DRAINING), HooksFailed("drain timed out"), NOW, ctx())
    assert new.cycle is State.ABORTING
    assert effects(actions) == [ReleaseSlot()]
    assert new.last_hooks == CheckResult(False, "drain timed out", NOW)
    assert new.attempts == 1
    assert RecordEvent("aborted", "the pre-reboot hooks failed: drain timed out") in actions


def test_failing_hooks_without_a_slot_wait_with_back_off() -> None:
    start = node(State.DRAINING, needed=NEED, attempts=2)
    new, actions = step(start, HooksFailed("x"), NOW, ctx(Strategy.IMMEDIATE))
    assert new.cycle is State.WAITING
    assert new.retry_at == NOW + 4 * MIN
    assert effects(actions) == []


def test_a_tick_while_draining_heartbeats_once_the_interval_passed() -> None:
    new, actions = step(holding(State.DRAINING), Tick(), NOW + MIN, ctx())
    assert effects(actions) == [Touch()]
    assert new.last_touch == NOW + MIN


def test_a_tick_while_draining_sends_no_heartbeat_before_the_interval() -> None:
    _, actions = step(holding(State.DRAINING), Tick(), NOW + 59 * timedelta(seconds=1), ctx())
    assert effects(actions) == []


def test_an_operator_release_during_the_drain_stops_it_without_a_release_or_reboot() -> None:
    new, actions = step(holding(State.DRAINING), ReleasedByOperator(), NOW, ctx())
    assert new.cycle is State.WAITING
    assert not new.holds_slot
    assert effects(actions) == []
    assert of(actions, RecordEvent)[0].kind == "released_by_operator"  # type: ignore[union-attr]


def test_a_restart_while_draining_runs_the_hooks_again() -> None:
    new, actions = step(holding(State.DRAINING), Restarted("boot-a"), NOW, ctx())
    assert new.cycle is State.DRAINING
    assert effects(actions) == [RunPreRebootHooks(None)]


def test_a_restart_while_draining_after_the_window_closed_releases() -> None:
    new, actions = step(holding(State.DRAINING), Restarted("boot-a"), NOW, ctx(schedule=CLOSED))
    assert new.cycle is State.ABORTING
    assert effects(actions) == [ReleaseSlot()]


def test_a_reboot_during_the_drain_proves_health_before_releasing() -> None:
    new, actions = step(holding(State.DRAINING), BootDetected("boot-b"), NOW, ctx())
    assert new.cycle is State.VERIFYING
    assert effects(actions) == [RunHealthChecks()]


# --- REBOOTING ------------------------------------------------------------------------------------


def test_a_new_boot_id_after_the_reboot_starts_the_health_checks() -> None:
    start = holding(State.REBOOTING, boot_id_at_reboot="boot-a", attempts=1)
    new, actions = step(start, BootDetected("boot-b"), NOW, ctx())
    assert new.cycle is State.VERIFYING
    assert new.holds_slot
    assert new.boot_id == "boot-b"
    assert new.needed is None
    assert new.attempts == 0
    assert effects(actions) == [RunHealthChecks()]


def test_the_same_boot_id_after_a_restart_means_no_reboot_happened_so_it_drains_again() -> None:
    new, actions = step(holding(State.REBOOTING), Restarted("boot-a"), NOW, ctx())
    assert new.cycle is State.DRAINING
    assert of(actions, Reboot) == []
    assert effects(actions) == [RunPreRebootHooks(None)]


def test_a_failed_reboot_halts_and_keeps_the_slot() -> None:
    new, actions = step(holding(State.REBOOTING), RebootFailed("logind refused"), NOW, ctx())
    assert new.cycle is State.HALTED
    assert new.holds_slot
    assert of(actions, ReleaseSlot) == []
    assert RecordEvent("reboot_failed", "logind refused") in actions


def test_an_operator_release_while_rebooting_is_recorded() -> None:
    new, _actions = step(holding(State.REBOOTING), ReleasedByOperator(), NOW, ctx())
    assert new.cycle is State.REBOOTING
    assert not new.holds_slot


# --- VERIFYING ------------------------------------------------------------------------------------


def test_passing_health_releases_the_slot() -> None:
    new, actions = step(holding(State.VERIFYING, needed=None), HealthPassed(), NOW, ctx())
    assert new.cycle is State.RELEASING
    assert effects(actions) == [ReleaseSlot()]
    assert new.last_health == CheckResult(True, "", NOW)


def test_passing_health_without_a_slot_rests() -> None:
    start = node(State.VERIFYING)
    new, actions = step(start, HealthPassed(), NOW, ctx(Strategy.IMMEDIATE))
    assert new.cycle is State.IDLE
    assert effects(actions) == []


def test_failing_health_halts_and_keeps_the_slot() -> None:
    new, actions = step(holding(State.VERIFYING), HealthFailed("port 80 closed"), NOW, ctx())
    assert new.cycle is State.HALTED
    assert new.holds_slot
    assert of(actions, ReleaseSlot) == []
    assert RecordEvent("halted", "port 80 closed") in actions
    assert new.next_check_at == NOW + MIN


def test_a_restart_while_verifying_checks_health_again() -> None:
    new, actions = step(holding(State.VERIFYING), Restarted("boot-b"), NOW, ctx())
    assert new.cycle is State.VERIFYING
    assert effects(actions) == [RunHealthChecks()]


def test_an_operator_release_while_verifying_stops_the_checks() -> None:
    new, actions = step(holding(State.VERIFYING, needed=None), ReleasedByOperator(), NOW, ctx())
    assert new.cycle is State.IDLE
    assert effects(actions) == []


def test_a_tick_while_verifying_heartbeats() -> None:
    _, actions = step(holding(State.VERIFYING), Tick(), NOW + MIN, ctx())
    assert effects(actions) == [Touch()]


# --- HALTED ---------------------------------------------------------------------------------------


def test_a_halted_node_checks_health_again_when_due() -> None:
    start = holding(State.HALTED, next_check_at=NOW)
    new, actions = step(start, Tick(), NOW, ctx())
    assert effects(actions) == [RunHealthChecks()]
    assert new.next_check_at is None


def test_a_halted_node_does_not_check_before_it_is_due() -> None:
    start = holding(State.HALTED, next_check_at=NOW + MIN)
    _, actions = step(start, Tick(), NOW, ctx())
    assert effects(actions) == []
    assert actions[-1] == WakeAt(NOW + MIN)


def test_a_halted_node_whose_health_passes_later_releases() -> None:
    new, actions = step(holding(State.HALTED), HealthPassed(), NOW, ctx())
    assert new.cycle is State.RELEASING
    assert effects(actions) == [ReleaseSlot()]


def test_a_halted_node_whose_health_fails_again_stays_halted() -> None:
    new, _actions = step(holding(State.HALTED), HealthFailed("still broken"), NOW, ctx())
    assert new.cycle is State.HALTED
    assert new.holds_slot
    assert new.next_check_at == NOW + MIN


def test_a_halted_node_released_by_an_operator_rests_and_says_so() -> None:
    new, actions = step(holding(State.HALTED, needed=None), ReleasedByOperator(), NOW, ctx())
    assert new.cycle is State.IDLE
    assert not new.holds_slot
    assert of(actions, ReleaseSlot) == []
    assert of(actions, RecordEvent)[0].kind == "released_by_operator"  # type: ignore[union-attr]


def test_a_restarted_halted_node_checks_health_again() -> None:
    new, actions = step(holding(State.HALTED), BootDetected("boot-c"), NOW, ctx())
    assert new.cycle is State.HALTED
    assert effects(actions) == [RunHealthChecks()]


# --- RELEASING and ABORTING -----------------------------------------------------------------------


def test_a_released_slot_ends_the_cycle_in_idle() -> None:
    start = holding(State.RELEASING, needed=None, attempts=3)
    new, _actions = step(start, Released(), NOW, ctx())
    assert new.cycle is State.IDLE
    assert not new.holds_slot
    assert new.attempts == 0


def test_a_failed_release_is_sent_again_after_the_retry_interval() -> None:
    new, _ = step(holding(State.RELEASING), BackendError("down"), NOW, ctx())
    assert new.cycle is State.RELEASING
    _, early = step(new, Tick(), NOW, ctx())
    assert effects(early) == []
    _, due = step(new, Tick(), NOW + timedelta(seconds=30), ctx())
    assert effects(due) == [ReleaseSlot()]


def test_a_restart_while_releasing_sends_the_release_again() -> None:
    new, actions = step(holding(State.RELEASING), Restarted("boot-b"), NOW, ctx())
    assert new.cycle is State.RELEASING
    assert effects(actions) == [ReleaseSlot()]


def test_a_release_after_an_abort_waits_out_the_back_off() -> None:
    start = holding(State.ABORTING, attempts=1, retry_at=NOW + MIN)
    new, actions = step(start, Released(), NOW, ctx())
    assert new.cycle is State.WAITING
    assert new.retry_at == NOW + MIN
    assert actions[-1] == WakeAt(NOW + MIN)


def test_an_operator_release_while_aborting_counts_as_released() -> None:
    start = holding(State.ABORTING, attempts=1, retry_at=NOW + MIN)
    new, _ = step(start, ReleasedByOperator(), NOW, ctx())
    assert new.cycle is State.WAITING
    assert not new.holds_slot


# --- the retry beat -------------------------------------------------------------------------------

RETRY = Timings().retry_interval


@given(
    now=st.datetimes(datetime(2020, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)),
    beat=st.floats(0, 1, exclude_max=True),
)
def test_a_retry_comes_between_half_and_one_and_a_half_intervals_on_the_nodes_beat(
    now: datetime, beat: float
) -> None:
    at = Timings().retry_at(now, beat)
    assert RETRY / 2 <= at - now < RETRY * 3 / 2
    again = Timings().retry_at(at, beat)
    assert again - at == RETRY, "a node refused again asks one interval later, on its beat"


def test_nodes_refused_at_the_same_instant_ask_again_at_their_own_instants() -> None:
    beats = [beat_of(f"node-{i}") for i in range(1, 11)]
    starts = {Timings().retry_at(NOW, b) for b in beats}
    assert len(starts) == 10


def test_a_denied_node_asks_again_on_the_beat_its_context_gives() -> None:
    # NOW is on the grid (a whole number of 30 s since the epoch): beat 0.75 is 22.5 s past it.
    start = node(State.ACQUIRING, needed=NEED)
    new, actions = step(start, SlotDenied("full"), NOW, ctx(beat=0.75))
    assert new.retry_at == NOW + RETRY * 3 / 4
    assert actions[-1] == WakeAt(NOW + RETRY * 3 / 4)
    # Beat 0.25 (7.5 s past the grid) comes too soon after the denial: the next one, 37.5 s.
    later, _ = step(start, SlotDenied("full"), NOW, ctx(beat=0.25))
    assert later.retry_at == NOW + RETRY * 5 / 4


def test_a_nodes_beat_comes_from_its_id_and_is_spread_over_the_fleet() -> None:
    assert beat_of("node-1") == beat_of("node-1") != beat_of("node-2")
    beats = [beat_of(f"web-{i}") for i in range(1000)]
    assert all(0 <= b < 1 for b in beats)
    tenths = [sum(1 for b in beats if k / 10 <= b < (k + 1) / 10) for k in range(10)]
    assert min(tenths) > 50, tenths  # ~100 each: no clump, no empty stretch


# --- the reboot-loop guard ------------------------------------------------------------------------

SAME = Needed(NEED.detector, NEED.detail)
REBOOTED_AT = NOW - 10 * MIN


def rebooted_node(*after: Event) -> tuple[NodeState, list[Action]]:
    """A node that rebooted for NEED (BootDetected), then took `after`, one minute apart."""
    state = holding(State.REBOOTING, last_reboot=REBOOTED_AT, boot_id_at_reboot="boot-a")
    state, actions = step(state, BootDetected("boot-b"), NOW, ctx())
    for i, event in enumerate(after, 1):
        state, actions = step(state, event, NOW + i * MIN, ctx())
    return state, actions


HEALTHY_AND_RELEASED = (HealthPassed(), Released())

# What comes after the reboot → where the node ends. WAITING here is the guard: the same need
# is not rebooted for again.
GUARD_CASES = [
    ("the same need after health passed", (*HEALTHY_AND_RELEASED, SAME), State.WAITING),
    ("the same need seen while verifying", (SAME, *HEALTHY_AND_RELEASED), State.WAITING),
    ("the same need, then a restart", (*HEALTHY_AND_RELEASED, SAME, Restarted("boot-b")),
     State.WAITING),
    ("the same need, then time passes", (*HEALTHY_AND_RELEASED, SAME, Tick()), State.WAITING),
    ("the same need, a detector unknown, the same need",
     (*HEALTHY_AND_RELEASED, SAME, NotNeeded("file", "exit 127", unknown=True), SAME),
     State.WAITING),
    ("a new detail", (*HEALTHY_AND_RELEASED, SAME, Needed("file", "linux-image-2")),
     State.ACQUIRING),
    ("another detector", (*HEALTHY_AND_RELEASED, SAME, Needed("rpm-ostree", "linux-image")),
     State.ACQUIRING),
    ("an operator asks again (need-reboot adds the manual detector)",
     (*HEALTHY_AND_RELEASED, SAME, Needed("file,manual", "file: linux-image; manual: asked")),
     State.ACQUIRING),
    ("the need went away and came back", (*HEALTHY_AND_RELEASED, SAME, NotNeeded("file"), SAME),
     State.ACQUIRING),
    ("no need after the reboot", (*HEALTHY_AND_RELEASED, NotNeeded("file")), State.IDLE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("after", "ends"), [c[1:] for c in GUARD_CASES], ids=[c[0] for c in GUARD_CASES]
)
def test_a_need_the_reboot_did_not_clear_starts_no_other_cycle(
    after: tuple[Event, ...], ends: State
) -> None:
    new, actions = rebooted_node(*after)
    assert new.cycle is ends
    assert bool(of(actions, RequestSlot)) is (ends is State.ACQUIRING)
    if ends is State.WAITING:
        assert effects(actions) == []
        assert not any(isinstance(a, WakeAt) for a in actions), "a guarded node needs no Tick"


def test_the_guard_says_which_reboot_did_not_clear_which_need_and_how_to_go_on() -> None:
    new, actions = rebooted_node(*HEALTHY_AND_RELEASED, SAME)
    assert new.reason.startswith(f"the reboot at {REBOOTED_AT.isoformat()} did not clear the need")
    assert "did not clear the need (linux-image);" in new.reason
    assert "`stagger need-reboot`" in new.reason
    assert RecordEvent("reboot_did_not_clear", new.reason) in actions


def test_the_guard_is_recorded_once_not_at_every_tick_or_restart() -> None:
    guarded, _ = rebooted_node(*HEALTHY_AND_RELEASED, SAME)
    for event in (Tick(), Restarted("boot-b"), PauseChanged()):
        _, actions = step(guarded, event, NOW + timedelta(hours=1), ctx())
        assert of(actions, RecordEvent) == []


def test_a_need_that_flips_back_mid_cycle_to_an_uncleared_one_is_not_rebooted_for() -> None:
    acquiring, _ = rebooted_node(*HEALTHY_AND_RELEASED, SAME, Needed("file", "linux-image-2"))
    assert acquiring.cycle is State.ACQUIRING
    back, _ = step(acquiring, SAME, NOW + timedelta(hours=1), ctx())
    new, actions = step(back, SlotGranted(), NOW + timedelta(hours=1), ctx())
    assert new.cycle is State.ABORTING
    assert of(actions, RunPreRebootHooks) == []
    assert "did not clear the need" in new.reason


def test_a_reboot_by_something_else_while_waiting_also_counts() -> None:
    waiting = node(State.WAITING, needed=NEED, retry_at=NOW + MIN)
    booted, _ = step(waiting, BootDetected("boot-b"), NOW, ctx())
    new, _ = step(booted, SAME, NOW + MIN, ctx())
    assert new.cycle is State.WAITING
    assert "a reboot did not clear the need" in new.reason


def test_a_failed_reboot_is_not_a_reboot_that_did_not_clear_the_need() -> None:
    """RebootFailed: no new boot was seen, so once health passes the need is tried again."""
    state = holding(State.REBOOTING)
    for event in (RebootFailed("logind refused"), HealthPassed(), Released()):
        state, actions = step(state, event, NOW, ctx())
    assert state.cycle is State.ACQUIRING
    assert RequestSlot(NEED.detector) in actions


def test_the_needs_rebooted_for_survive_the_state_file() -> None:
    guarded, _ = rebooted_node(*HEALTHY_AND_RELEASED, SAME)
    assert guarded.rebooted_for == (NEED,)
    assert NodeState.from_dict(guarded.to_dict()) == guarded
    older = {k: v for k, v in guarded.to_dict().items() if k != "rebooted_for"}
    assert NodeState.from_dict(older).rebooted_for == ()


def test_the_needs_rebooted_for_are_bounded() -> None:
    state = node(State.IDLE)
    for i in range(REBOOTED_FOR_KEPT + 3):
        state, _ = step(state, Needed("file", f"pkg-{i}"), NOW, ctx(schedule=CLOSED))
        state, _ = step(state, BootDetected(f"boot-{i}"), NOW, ctx(schedule=CLOSED))
    assert len(state.rebooted_for) == REBOOTED_FOR_KEPT
    assert state.rebooted_for[-1].detail == f"pkg-{REBOOTED_FOR_KEPT + 2}"


def test_updates_keep_flowing_while_a_need_is_withheld() -> None:
    """The next update may be what clears the need (a new staged deployment, a fixed package)."""
    guarded, _ = rebooted_node(*HEALTHY_AND_RELEASED, SAME)
    assert reboot_pending(guarded) is None
    assert reboot_pending(node(State.WAITING, needed=NEED)) is not None


# --- the table as a whole -------------------------------------------------------------------------

ALL_EVENTS = [
    Needed("file"),
    NotNeeded("file"),
    Tick(),
    PauseChanged(),
    Restarted("boot-a"),
    BootDetected("boot-b"),
    SlotGranted(),
    SlotDenied("full"),
    HooksPassed(),
    HooksFailed("x"),
    RebootFailed("x"),
    HealthPassed(),
    HealthFailed("x"),
    Released(),
    ReleasedByOperator(),
    BackendError("x"),
]
IMPOSSIBLE = [(s, e) for s in State for e in ALL_EVENTS if type(e) not in TABLE[s]]


@pytest.mark.parametrize(("cycle", "event"), IMPOSSIBLE, ids=lambda v: str(v))
def test_an_event_a_state_cannot_take_raises(cycle: State, event: object) -> None:
    with pytest.raises(TransitionError, match="cannot happen in state"):
        step(holding(cycle), event, NOW, ctx())  # type: ignore[arg-type]


def test_the_table_names_every_state() -> None:
    assert set(TABLE) == set(State)


def test_every_table_entry_ends_in_a_state_it_declares() -> None:
    """Each entry run once from a plain state: step asserts the target is declared."""
    for cycle, row in TABLE.items():
        for event_type in row:
            event = next(e for e in ALL_EVENTS if type(e) is event_type)
            step(holding(cycle), event, NOW, ctx())


def test_the_first_start_is_a_restart() -> None:
    assert start_event(NodeState(), "boot-a") == Restarted("boot-a")


def test_a_start_in_the_same_boot_is_a_restart() -> None:
    assert start_event(node(State.REBOOTING), "boot-a") == Restarted("boot-a")


def test_a_start_in_a_new_boot_is_a_boot() -> None:
    assert start_event(node(State.REBOOTING), "boot-b") == BootDetected("boot-b")


def test_the_node_state_survives_a_round_trip_through_plain_json_types() -> None:
    import json

    state = holding(
        State.HALTED,
        last_health=CheckResult(False, "x", NOW),
        last_hooks=CheckResult(True, "", NOW),
        retry_at=NOW,
        next_check_at=NOW,
        last_reboot=NOW,
        boot_id_at_reboot="boot-z",
    )
    assert NodeState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_the_node_state_ignores_keys_from_a_newer_agent() -> None:
    doc = {**node(State.IDLE).to_dict(), "future_key": 1}
    assert NodeState.from_dict(doc) == node(State.IDLE)


def test_the_back_off_doubles_and_is_capped() -> None:
    t = Timings(backoff_base=MIN, backoff_max=5 * MIN)
    assert [t.backoff(n) for n in (1, 2, 3, 4, 40)] == [MIN, 2 * MIN, 4 * MIN, 5 * MIN, 5 * MIN]


def test_the_mermaid_diagram_draws_the_moves_that_can_really_happen() -> None:
    text = diagram("mermaid")
    assert text.startswith("stateDiagram-v2")
    for m in moves():
        line = next(x for x in text.splitlines() if f" {m.source.value} --> {m.target.value}:" in x)
        assert m.event in line
    # The table allows idle -> draining on a tick, but only a need can really start a drain.
    assert "    idle --> draining: needed\n" in text


def test_the_text_diagram_lists_the_reboot_edge_with_its_condition() -> None:
    assert "draining  -> rebooting on hooks passed: the gates still allow the reboot\n" in (
        diagram("text")
    )


def text_moves() -> list[tuple[State, list[str], State, str]]:
    """The text diagram's lines as (from, events, to, when)."""
    out = []
    for line in diagram("text").splitlines():
        head, _, when = line.partition(": ")
        a, arrow, b, on, events = head.split(maxsplit=4)
        assert (arrow, on) == ("->", "on"), line
        out.append((State(a), events.split(", "), State(b), when))
    return out


def test_the_text_diagram_shows_only_moves_the_machine_really_takes() -> None:
    # moves() keeps of the table only what possible_moves() saw `step` do
    possible = {(m.source, m.event, m.target) for m in moves()}
    assert len(possible) < sum(len(t.targets) for row in TABLE.values() for t in row.values())
    for a, events, b, _ in text_moves():
        assert a is not b
        for event in events:
            assert (a, event, b) in possible, (a, event, b)
    idle_to_draining = [events for a, events, b, _ in text_moves() if (a, b) == (
        State.IDLE, State.DRAINING)]  # fmt: skip
    assert idle_to_draining == [["needed"]]  # not on a tick or a restart: no need, no reboot


def test_the_text_diagram_says_when_an_event_can_lead_to_more_than_one_state() -> None:
    targets: dict[tuple[State, str], set[State]] = {}
    for a, events, b, _ in text_moves():
        for e in events:
            targets.setdefault((a, e), set()).add(b)
    for a, events, b, when in text_moves():
        if any(len(targets[(a, e)]) > 1 for e in events):
            assert when, (a, events, b)


def test_the_explored_situations_find_every_move_a_wider_set_finds() -> None:
    """One situation per verdict of the gates is enough: pauses, strategy off, best-effort
    without a backend and dry runs lead nowhere else."""
    paused = Pause("freeze", "operator:ann", NOW - timedelta(days=400))
    wider = (
        Context(Strategy.LOCK),
        Context(Strategy.IMMEDIATE),
        Context(Strategy.BEST_EFFORT),
        Context(Strategy.BEST_EFFORT, backend_reachable=False),
        Context(Strategy.LOCK, schedule=Schedule((Window.parse(["Tue"], "04:00", "1h"),))),
        Context(Strategy.LOCK, pause=paused),
        Context(Strategy.OFF),
        Context(Strategy.LOCK, disabled=True),
        Context(Strategy.IMMEDIATE, disabled=True),
        Context(Strategy.LOCK, dry_run=True),
    )
    assert possible_moves(wider) == possible_moves()


def test_an_unknown_diagram_kind_is_refused() -> None:
    with pytest.raises(InvalidInput):
        diagram("dot")


def test_a_window_that_opens_later_wakes_the_waiting_node_at_its_start() -> None:
    weekly = Schedule((Window.parse(["Tue"], "04:00", "1h"),))
    _, actions = step(node(State.IDLE), Needed("file"), NOW, ctx(schedule=weekly))
    assert actions[-1] == WakeAt(datetime(2026, 3, 3, 4, 0, tzinfo=UTC))


def test_a_back_off_that_ended_while_the_window_was_closed_wakes_at_the_opening_not_now() -> None:
    start = node(State.WAITING, needed=NEED, attempts=1, retry_at=NOW - MIN)
    new, actions = step(start, Tick(), NOW, ctx(schedule=CLOSED))
    assert new.cycle is State.WAITING
    assert actions[-1] == WakeAt(NOW + timedelta(hours=1))

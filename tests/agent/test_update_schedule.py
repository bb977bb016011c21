"""The update schedule (core/updates.py), pure: when the agent asks its updater for an update.

Random draws come from seeded `random.Random` sources, so every example can be replayed."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagger.core.cycle.node_state import Need, NodeState, State
from stagger.core.errors import InvalidInput
from stagger.core.schedule import Schedule
from stagger.core.updates import (
    MAX_JITTER,
    Outcome,
    UpdateAttempt,
    UpdatePolicy,
    UpdatesState,
    UpdateVerdict,
    decide,
    first_attempt,
    jittered,
    plan_next,
    reboot_pending,
    record,
)
from stagger.core.windows import Window

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
ON = UpdatePolicy(updater="command", interval=HOUR, jitter=0.1)
SETTINGS = settings(max_examples=200, deadline=None)

seeds = st.integers(0, 2**32 - 1)
intervals = st.integers(1, 7 * 24 * 3600).map(lambda s: timedelta(seconds=s))
jitters = st.floats(0.0, MAX_JITTER, allow_nan=False)
instants = st.integers(0, 365 * 24 * 60).map(lambda m: NOW + timedelta(minutes=m))


def attempt(at: datetime, outcome: Outcome = Outcome.OK, seconds: float = 0.0) -> UpdateAttempt:
    return UpdateAttempt(at, outcome, "detail", seconds)


# --- jitter -------------------------------------------------------------------------------------


@SETTINGS
@given(seed=seeds, interval=intervals, jitter=jitters)
def test_each_next_attempt_lies_within_the_interval_plus_or_minus_the_jitter(
    seed: int, interval: timedelta, jitter: float
) -> None:
    rng = random.Random(seed)
    policy = UpdatePolicy(updater="command", interval=interval, jitter=jitter)
    last = attempt(NOW, seconds=rng.uniform(0, 600))
    for _ in range(20):
        nxt = plan_next(last, policy, rng.random())
        gap = (nxt - last.ended).total_seconds()
        assert interval.total_seconds() * (1 - jitter) - 1e-6 <= gap
        assert gap <= interval.total_seconds() * (1 + jitter) + 1e-6


@SETTINGS
@given(seed=seeds, interval=intervals, jitter=jitters)
def test_the_first_attempt_comes_within_jitter_times_interval_of_the_start(
    seed: int, interval: timedelta, jitter: float
) -> None:
    policy = UpdatePolicy(updater="command", interval=interval, jitter=jitter)
    first = first_attempt(NOW, policy, random.Random(seed).random())
    assert NOW <= first <= NOW + interval * jitter


@settings(max_examples=50, deadline=None)
@given(seed=seeds)
def test_a_fleet_with_jitter_spreads_its_attempts(seed: int) -> None:
    rng = random.Random(seed)
    nexts = {plan_next(attempt(NOW), ON, rng.random()) for _ in range(100)}
    assert len(nexts) > 90  # a hundred nodes do not all come back at the same second
    assert max(nexts) - min(nexts) > timedelta(minutes=6)  # they use most of the ±6 min


def test_no_jitter_means_exactly_one_interval() -> None:
    policy = UpdatePolicy(updater="command", interval=HOUR, jitter=0.0)
    assert plan_next(attempt(NOW, seconds=30), policy, 0.99) == NOW + timedelta(seconds=30) + HOUR


def test_the_draws_extremes_are_the_bounds() -> None:
    assert jittered(HOUR, 0.1, 0.0) == timedelta(minutes=54)
    assert jittered(HOUR, 0.1, 0.5) == HOUR


def test_a_draw_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(InvalidInput):
        jittered(HOUR, 0.1, 1.0)


@pytest.mark.parametrize("jitter", [-0.1, 0.51])
def test_a_jitter_beyond_half_the_interval_is_refused(jitter: float) -> None:
    with pytest.raises(InvalidInput, match="jitter"):
        UpdatePolicy(updater="command", jitter=jitter)


def test_a_zero_interval_is_refused() -> None:
    with pytest.raises(InvalidInput, match="interval"):
        UpdatePolicy(updater="command", interval=timedelta(0))


# --- the decision -------------------------------------------------------------------------------


def test_a_due_attempt_is_made() -> None:
    state = UpdatesState(attempt(NOW - 2 * HOUR), next_attempt=NOW - timedelta(minutes=5))
    d = decide(ON, state, NOW, 0.5, None)
    assert d.verdict is UpdateVerdict.ATTEMPT
    assert d.at == NOW


def test_an_attempt_not_yet_due_waits_until_its_time() -> None:
    due = NOW + timedelta(minutes=20)
    d = decide(ON, UpdatesState(attempt(NOW - timedelta(minutes=40)), due), NOW, 0.5, None)
    assert (d.verdict, d.at, d.due) == (UpdateVerdict.WAIT, due, due)
    assert "due at" in d.reason


def test_a_node_without_a_record_tries_within_the_jitter_of_now() -> None:
    d = decide(ON, UpdatesState(), NOW, 0.5, None)
    assert d.verdict is UpdateVerdict.WAIT
    assert d.due == NOW + timedelta(minutes=3)
    assert decide(ON, UpdatesState(), NOW, 0.0, None).verdict is UpdateVerdict.ATTEMPT


def test_a_plan_from_a_longer_interval_is_pulled_in_to_the_current_one() -> None:
    state = UpdatesState(attempt(NOW - HOUR), next_attempt=NOW + timedelta(days=1))
    d = decide(ON, state, NOW, 0.5, None)
    assert d.due == NOW - HOUR + HOUR * 1.1


def test_no_attempt_while_a_reboot_is_pending_even_when_due_or_asked() -> None:
    state = UpdatesState(attempt(NOW - 2 * HOUR), next_attempt=NOW - HOUR)
    for asked in (False, True):
        d = decide(ON, state, NOW, 0.5, "a reboot is needed (file)", asked=asked)
        assert d.verdict is UpdateVerdict.BLOCKED
        assert d.at is None
        assert "a reboot is needed (file)" in d.reason


def test_disabled_updates_are_never_attempted_even_when_asked() -> None:
    policy = UpdatePolicy(updater="command", enabled=False)
    for asked in (False, True):
        d = decide(policy, UpdatesState(), NOW, 0.0, None, asked=asked)
        assert d.verdict is UpdateVerdict.OFF
        assert "enabled = false" in d.reason


def test_updater_none_leaves_updates_to_the_host() -> None:
    d = decide(UpdatePolicy(), UpdatesState(), NOW, 0.0, None)
    assert d.verdict is UpdateVerdict.OFF
    assert "host's own timer" in d.reason


def test_update_now_skips_the_interval_and_the_windows() -> None:
    closed = UpdatePolicy(
        updater="command", windows=Schedule((Window.parse(["sun"], "03:00", "1h"),))
    )
    state = UpdatesState(attempt(NOW), next_attempt=NOW + HOUR)
    assert decide(closed, state, NOW, 0.5, None).verdict is UpdateVerdict.WAIT
    assert decide(closed, state, NOW, 0.5, None, asked=True).verdict is UpdateVerdict.ATTEMPT


def test_a_due_attempt_outside_the_update_windows_waits_for_the_next_one() -> None:
    sunday = Window.parse(["sun"], "03:00", "1h")
    policy = UpdatePolicy(updater="command", windows=Schedule((sunday,)))
    d = decide(policy, UpdatesState(attempt(NOW - 2 * HOUR), NOW - HOUR), NOW, 0.5, None)
    assert d.verdict is UpdateVerdict.WAIT
    assert d.at == datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
    assert "update windows" in d.reason


def test_a_due_attempt_inside_an_update_window_is_made() -> None:
    policy = UpdatePolicy(
        updater="command", windows=Schedule((Window.parse(["mon"], "11:00", "2h"),))
    )
    d = decide(policy, UpdatesState(attempt(NOW - 2 * HOUR), NOW - HOUR), NOW, 0.5, None)
    assert d.verdict is UpdateVerdict.ATTEMPT


@SETTINGS
@given(
    seed=seeds,
    now=instants,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    hour=st.integers(0, 23),
    minutes=st.integers(1, 6 * 60),
    gap=st.integers(-3 * 3600, 3 * 3600),
)
def test_an_attempt_is_made_only_when_due_and_inside_an_update_window(
    seed: int, now: datetime, days: frozenset[int], hour: int, minutes: int, gap: int
) -> None:
    window = Window(days, datetime(2026, 1, 1, hour).time(), timedelta(minutes=minutes))
    policy = UpdatePolicy(
        updater="command", interval=timedelta(days=1), windows=Schedule((window,))
    )
    due = now + timedelta(seconds=gap)
    state = UpdatesState(attempt(due - policy.interval), due)
    d = decide(policy, state, now, random.Random(seed).random(), None)
    expected = due <= now and policy.windows.is_open(now)
    assert (d.verdict is UpdateVerdict.ATTEMPT) == expected
    if d.verdict is UpdateVerdict.WAIT and d.at is not None:
        assert d.at > now
        assert d.at >= due
        assert policy.windows.is_open(d.at)


# --- the record ---------------------------------------------------------------------------------


def test_a_failed_attempt_is_retried_at_the_next_interval_and_counted() -> None:
    failed = UpdateAttempt(NOW, Outcome.FAILED, "exit 100", 30.0)
    state = record(UpdatesState(), failed, ON, 0.5)
    assert state.last == failed
    assert state.next_attempt == NOW + timedelta(seconds=30) + HOUR
    assert state.failures == 1
    again = record(state, UpdateAttempt(state.next_attempt, Outcome.FAILED, "x"), ON, 0.5)
    assert again.failures == 2
    ok = record(again, UpdateAttempt(NOW, Outcome.OK, "x"), ON, 0.5)
    assert ok.failures == 0


def test_the_record_survives_a_round_trip_through_json_types() -> None:
    state = record(UpdatesState(), UpdateAttempt(NOW, Outcome.SKIPPED, "busy", 1.5), ON, 0.3)
    assert UpdatesState.from_dict(state.to_dict()) == state
    assert UpdatesState.from_dict(UpdatesState().to_dict()) == UpdatesState()


def test_a_long_detail_is_cut_in_the_record() -> None:
    state = record(UpdatesState(), UpdateAttempt(NOW, Outcome.FAILED, "x" * 5000), ON, 0.3)
    assert state.last is not None
    assert len(state.last.detail) == 500


# --- pending reboots ----------------------------------------------------------------------------


def test_an_idle_node_has_no_reboot_pending() -> None:
    assert reboot_pending(NodeState()) is None


@pytest.mark.parametrize("cycle", [s for s in State if s not in (State.IDLE, State.DISABLED)])
def test_every_state_of_the_cycle_is_a_pending_reboot(cycle: State) -> None:
    assert reboot_pending(NodeState(cycle=cycle)) is not None


def test_a_need_is_a_pending_reboot_even_on_a_disabled_node() -> None:
    need = Need(NOW, "update_engine", "UPDATED_NEED_REBOOT")
    assert "update_engine" in (reboot_pending(NodeState(State.DISABLED, needed=need)) or "")
    assert reboot_pending(NodeState(State.DISABLED)) is None

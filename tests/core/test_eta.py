"""core/eta.py as a specification: the estimate is a pure function of the work left, the
slots, the pace, the bakes and the measured cycles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stagger.core.eta import (
    StagePlan,
    cycle_times,
    estimate,
    group_eta,
    rollout_eta,
    typical_cycle,
)
from stagger.core.rollout_gate import Rollout, Stage, StageState
from stagger.core.rollout_status import RolloutStatus, StageStatus, StageTotals
from stagger.core.semaphore import Action, Event, Semaphore, acquire, release, set_pace

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def cycle_events(*minutes: int) -> list[Event]:
    out = []
    for i, m in enumerate(minutes):
        start = T0 + i * 100 * M
        out.append(Event(start, "web", Action.ACQUIRED, f"n{i}", f"n{i}"))
        out.append(Event(start + m * M, "web", Action.RELEASED, f"n{i}", f"n{i}"))
    return out


def test_the_cycle_is_the_median_of_grant_to_release_per_node() -> None:
    events = cycle_events(5, 7, 30)
    assert cycle_times(events) == [5 * M, 7 * M, 30 * M]
    assert typical_cycle(events) == 7 * M
    assert typical_cycle([]) is None


def test_pending_nodes_go_through_the_slots_one_cycle_each() -> None:
    (end,) = estimate([StagePlan(pending=10, slots=3)], 5 * M, T0)
    assert end == T0 + 4 * 5 * M  # ceil(10 / 3) rounds of 5 minutes


def test_holders_finish_first_and_a_pace_spaces_the_slots() -> None:
    plan = StagePlan(pending=2, slots=1, holding_since=(T0 - 2 * M,), pace=10 * M)
    (end,) = estimate([plan], 5 * M, T0)
    # the holder ends at +3m; each next node waits the pace, then takes 5m
    assert end == T0 + 3 * M + 2 * (10 * M + 5 * M)


def test_stages_run_in_order_each_followed_by_its_bake() -> None:
    stages = [StagePlan(1, 1, bake=30 * M), StagePlan(4, 2, bake=0 * M)]
    first, second = estimate(stages, 5 * M, T0)
    assert first == T0 + 5 * M + 30 * M
    assert second == first + 2 * 5 * M


def test_no_slot_means_no_estimate() -> None:
    assert estimate([StagePlan(3, 0), StagePlan(1, 1)], 5 * M, T0) == [None, None]


def test_a_group_estimate_uses_its_queue_holders_and_pace() -> None:
    sem = set_pace(Semaphore("web", max=1), 10 * M, T0, by="operator:x").semaphore
    for node in ("a", "b", "c"):
        sem = acquire(sem, node, T0).semaphore
    eta = group_eta(sem, T0, cycle_events(5), paused=False)
    assert (eta.pending, eta.in_progress, eta.cycle) == (2, 1, 5 * M)
    assert eta.completes_at == T0 + 5 * M + 2 * (10 * M + 5 * M)
    assert group_eta(sem, T0, [], paused=False).why == "no cycle measured yet"
    assert group_eta(sem, T0, cycle_events(5), paused=True).completes_at is None
    done = release(sem, "a", T0, by="a").semaphore
    assert group_eta(done, T0, [], paused=False).pending == 2


def _rollout_status(*stages: tuple[Stage, StageState, int, datetime | None]) -> RolloutStatus:
    plan = Rollout(tuple(s for s, *_ in stages), started_at=T0, by="operator:x")
    return RolloutStatus(
        plan,
        T0,
        tuple(
            StageStatus(i, s, state, (), (), (), T0, bake, (), StageTotals(pending=n))
            for i, (s, state, n, bake) in enumerate(stages)
        ),
    )


def test_the_rollouts_eta_runs_its_stages_in_order_with_their_bakes() -> None:
    """Stage 1: 4 nodes on 2 slots, 10 min cycles → 20 min, then a 30 min bake; stage 2:
    3 nodes on 1 slot → 30 min. Done at T0 + 80 min."""
    canary = Stage(("canary",), bake=30 * M)
    web = Stage(("web",))
    status = _rollout_status((canary, StageState.OPEN, 4, None), (web, StageState.WAITING, 3, None))
    groups = {"canary": Semaphore("canary", max=2), "web": Semaphore("web", max=1)}
    assert rollout_eta(status, groups, cycle_events(10, 10, 10), T0) == T0 + 80 * M


def test_a_baking_stage_starts_the_next_at_its_bakes_end_and_a_halted_one_has_no_eta() -> None:
    canary, web = Stage(("canary",), bake=30 * M), Stage(("web",))
    groups = {"web": Semaphore("web", max=1)}
    baking = _rollout_status(
        (canary, StageState.BAKING, 0, T0 + 25 * M), (web, StageState.WAITING, 2, None)
    )
    assert rollout_eta(baking, groups, cycle_events(10), T0) == T0 + 45 * M
    halted = _rollout_status(
        (canary, StageState.HALTED, 1, None), (web, StageState.WAITING, 2, None)
    )
    assert rollout_eta(halted, groups, cycle_events(10), T0) is None
    assert rollout_eta(baking, groups, [], T0) is None  # no cycle measured yet

"""A rollout through each real store (SQLite file, real etcd), as an agent sees it: the
gate is judged inside every acquire, stage ends are written by the store (after a release,
a halted report, or a waiting ask), and the budget pauses the rollout or a group.

Each test uses a backend with a test clock (`clocked`), so bakes and close_after pass by
moving the clock, never by sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from stagger.backends.factory import open_backend
from stagger.backends.semaphore_store import SemaphoreStore
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Budget, Stage, StageState
from stagger.core.semaphore import Action, Denied, DenyReason, Granted

OP = "operator:alice"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(any_backend_url: str, clock: Clock) -> AsyncIterator[SemaphoreStore]:
    b = open_backend(any_backend_url, clock=clock, default_max=5)
    assert isinstance(b, SemaphoreStore)
    yield b
    await b.close()


CANARY_WEB = (Stage(("canary",), bake=timedelta(minutes=30)), Stage(("web",)))


async def test_a_later_stage_waits_until_the_earlier_one_is_done_and_baked(
    store: SemaphoreStore, clock: Clock
) -> None:
    await store.set_rollout(CANARY_WEB, None, by=OP)
    assert isinstance(await store.acquire("canary", "c1"), Granted)
    waiting = await store.acquire("web", "w1")
    assert isinstance(waiting, Denied)
    assert waiting.reason is DenyReason.ROLLOUT_WAITING
    assert waiting.stage == "stage 1 (canary)"
    assert waiting.bake_ends is None

    clock.now = T0 + timedelta(minutes=5)
    await store.release("canary", "c1")
    baking = await store.acquire("web", "w1")
    assert isinstance(baking, Denied)
    assert baking.reason is DenyReason.ROLLOUT_WAITING
    assert baking.bake_ends == T0 + timedelta(minutes=35)

    clock.now = T0 + timedelta(minutes=35)
    assert isinstance(await store.acquire("web", "w1"), Granted)
    history = await store.history(None)
    assert any(e.action is Action.STAGE_DONE for e in history)


async def test_a_stage_with_no_known_node_is_done_at_once(store: SemaphoreStore) -> None:
    await store.set_rollout(CANARY_WEB, None, by=OP)
    assert isinstance(await store.acquire("web", "w1"), Granted)


async def test_groups_in_no_stage_are_not_held_back(store: SemaphoreStore) -> None:
    await store.set_rollout(CANARY_WEB, None, by=OP)
    assert isinstance(await store.acquire("canary", "c1"), Granted)
    assert isinstance(await store.acquire("db", "d1"), Granted)


async def test_an_agent_that_reports_a_need_keeps_its_stage_open_until_it_needs_none(
    store: SemaphoreStore, clock: Clock
) -> None:
    await store.report(NodeReport("c1", "canary", State.WAITING, needed_since=T0))
    await store.set_rollout(CANARY_WEB, None, by=OP)
    denied = await store.acquire("web", "w1")
    assert isinstance(denied, Denied)
    assert denied.reason is DenyReason.ROLLOUT_WAITING
    # c1's update was withdrawn: it needs no reboot, so nothing bakes and web may go
    await store.report(NodeReport("c1", "canary", State.IDLE))
    assert isinstance(await store.acquire("web", "w1"), Granted)


async def test_close_after_ends_a_stage_and_lists_the_silent_nodes_left_behind(
    store: SemaphoreStore, clock: Clock
) -> None:
    stages = (Stage(("canary",), close_after=timedelta(seconds=90)), Stage(("web",)))
    await store.report(NodeReport("c1", "canary", State.WAITING, needed_since=T0))
    await store.set_rollout(stages, None, by=OP)
    assert isinstance(await store.acquire("web", "w1"), Denied)
    clock.now = T0 + timedelta(seconds=90)
    assert isinstance(await store.acquire("web", "w1"), Granted)
    status = await store.rollout_status()
    assert status is not None
    assert status.stages[0].state is StageState.DONE
    assert status.stages[0].left_behind == ("c1",)
    # the store writes the stage's end with a warning naming who was left behind
    assert await store.advance_rollout()
    closed = [e for e in await store.history(None) if e.action is Action.STAGE_DONE]
    assert "left behind: c1" in closed[0].detail


async def test_after_a_complete_rollout_a_new_ask_begins_the_next_one(
    store: SemaphoreStore, clock: Clock
) -> None:
    stages = (Stage(("canary",)), Stage(("web",)))
    await store.set_rollout(stages, None, by=OP)
    assert isinstance(await store.acquire("web", "w1"), Granted)
    await store.release("web", "w1")
    status = await store.rollout_status()
    assert status is not None
    assert status.complete
    first = status.rollout.generation
    clock.now = T0 + timedelta(hours=1)
    # a canary node asks: a new rollout, in which it is the first stage's
    assert isinstance(await store.acquire("canary", "c1"), Granted)
    assert isinstance(await store.acquire("web", "w2"), Denied)
    status = await store.rollout_status()
    assert status is not None
    assert status.rollout.generation == first + 1
    assert status.stages[0].pending == ("c1",)


async def test_halted_nodes_reaching_max_failures_pause_the_rollout_until_resumed(
    store: SemaphoreStore,
) -> None:
    stages = (Stage(("canary",)), Stage(("web",)))
    await store.set_rollout(stages, Budget(count=1), by=OP)
    assert isinstance(await store.acquire("canary", "c1"), Granted)
    await store.report(NodeReport("c1", "canary", State.HALTED))
    denied = await store.acquire("canary", "c2")
    assert isinstance(denied, Denied)
    assert denied.reason is DenyReason.PAUSED
    assert denied.pause is not None
    assert "c1" in denied.pause.reason
    history = await store.history(None)
    assert any(e.action is Action.ROLLOUT_HALTED for e in history)
    await store.resume(None, by=OP)
    assert isinstance(await store.acquire("canary", "c2"), Granted)


async def test_a_group_budget_pauses_the_group_naming_its_halted_nodes(
    store: SemaphoreStore,
) -> None:
    await store.set_max_failures("web", Budget(count=2), by=OP)
    for node in ("w1", "w2", "w3"):
        assert isinstance(await store.acquire("web", node), Granted)
    await store.report(NodeReport("w1", "web", State.HALTED))
    assert isinstance(await store.acquire("web", "w4"), Granted)
    await store.report(NodeReport("w2", "web", State.HALTED))
    denied = await store.acquire("web", "w5")
    assert isinstance(denied, Denied)
    assert denied.reason is DenyReason.PAUSED
    assert denied.pause is not None
    assert "w1, w2" in denied.pause.reason
    # other groups go on
    assert isinstance(await store.acquire("db", "d1"), Granted)


async def test_a_percentage_budget_counts_the_rollouts_nodes(store: SemaphoreStore) -> None:
    for i in range(10):
        await store.report(NodeReport(f"c{i}", "canary", State.WAITING, needed_since=T0))
    await store.set_rollout((Stage(("canary",)),), Budget(percent=20), by=OP)
    await store.report(NodeReport("c0", "canary", State.HALTED))
    assert isinstance(await store.acquire("canary", "c5"), Granted)
    await store.report(NodeReport("c1", "canary", State.HALTED))
    denied = await store.acquire("canary", "c6")
    assert isinstance(denied, Denied)
    assert denied.reason is DenyReason.PAUSED


async def test_clearing_the_rollout_lets_every_group_grant(store: SemaphoreStore) -> None:
    await store.set_rollout(CANARY_WEB, None, by=OP)
    assert isinstance(await store.acquire("canary", "c1"), Granted)
    assert isinstance(await store.acquire("web", "w1"), Denied)
    cleared = await store.clear_rollout(by=OP)
    assert cleared is not None
    assert isinstance(await store.acquire("web", "w1"), Granted)
    assert await store.clear_rollout(by=OP) is None


async def test_a_silent_client_that_finished_in_the_last_rollout_holds_the_next_stage_open(
    store: SemaphoreStore, clock: Clock
) -> None:
    stages = (Stage(("canary",)), Stage(("web",)))
    await store.set_rollout(stages, None, by=OP)
    assert isinstance(await store.acquire("canary", "c1"), Granted)
    await store.release("canary", "c1")
    # a FleetLock client reports nothing: the next rollout knows it from its last cycle
    clock.now = T0 + timedelta(days=1)
    await store.set_rollout(stages, None, by=OP)
    status = await store.rollout_status()
    assert status is not None
    assert status.stages[0].pending == ("c1",)
    assert isinstance(await store.acquire("web", "w1"), Denied)
    assert isinstance(await store.acquire("canary", "c1"), Granted)
    await store.release("canary", "c1")
    assert isinstance(await store.acquire("web", "w1"), Granted)

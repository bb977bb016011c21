"""Percent max, pacing and the fair queue through each real store (a temp SQLite file, a real
etcd): what core/turns.py decides must survive the store's encoding and its guarded writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend
from stagger.core.semaphore import QUEUE_LIMIT, Denied, DenyReason, Granted

OP = "operator:alice"
S = timedelta(seconds=1)


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def clocked(any_backend_url: str, clock: ManualClock) -> AsyncIterator[Backend]:
    b = open_backend(any_backend_url, clock=clock)
    yield b
    await b.close()


async def test_a_pace_keeps_a_freed_slot_until_it_ends(
    clocked: Backend, clock: ManualClock
) -> None:
    await clocked.set_max("web", 1, by=OP)
    assert await clocked.set_pace("web", 10 * S, by=OP) == 10 * S
    assert isinstance(await clocked.acquire("web", "a"), Granted)
    await clocked.release("web", "a")
    clock.now += 3 * S
    denied = await clocked.acquire("web", "b")
    assert isinstance(denied, Denied)
    assert (denied.reason, denied.until) == (DenyReason.PACING, clock.now + 7 * S)
    clock.now += 7 * S
    assert isinstance(await clocked.acquire("web", "b"), Granted)


async def test_the_first_to_ask_gets_the_freed_slot(clocked: Backend, clock: ManualClock) -> None:
    await clocked.set_max("web", 1, by=OP)
    assert isinstance(await clocked.acquire("web", "holder"), Granted)
    for place, node in enumerate(("late-1", "late-2"), start=1):
        clock.now += S
        denied = await clocked.acquire("web", node)
        assert isinstance(denied, Denied)
        assert denied.position == place
    await clocked.release("web", "holder")
    clock.now += S
    second = await clocked.acquire("web", "late-2")
    assert isinstance(second, Denied)
    assert (second.reason, second.position) == (DenyReason.QUEUED, 2)
    assert isinstance(await clocked.acquire("web", "late-1"), Granted)
    (status,) = (await clocked.status("web")).groups
    assert [w.id for w in status.semaphore.queue(status.now)] == ["late-2"]


async def test_a_percentage_max_counts_the_nodes_that_asked(
    clocked: Backend, clock: ManualClock
) -> None:
    assert await clocked.set_max("web", 50, by=OP, percent=True) == 50
    assert isinstance(await clocked.acquire("web", "a"), Granted)
    for node in ("b", "c", "d"):
        assert isinstance(await clocked.acquire("web", node), Denied)
    (status,) = (await clocked.status("web")).groups
    sem = status.semaphore
    assert (sem.max_percent, len(sem.known(status.now)), sem.slots(status.now)) == (50, 4, 2)
    assert isinstance(await clocked.acquire("web", "b"), Granted), "b asked first"
    assert isinstance(await clocked.acquire("web", "c"), Denied), "2 of 4: both held"


async def test_a_node_the_full_queue_has_no_place_for_is_denied_without_a_write(
    clocked: Backend, clock: ManualClock
) -> None:
    await clocked.set_max("web", 1, by=OP)
    assert isinstance(await clocked.acquire("web", "holder"), Granted)
    waiters = [f"w{i:04d}" for i in range(QUEUE_LIMIT)]
    for start in range(0, QUEUE_LIMIT, 50):  # each joins the queue: one write each
        await asyncio.gather(*(clocked.acquire("web", w) for w in waiters[start : start + 50]))
    before = await clocked.revision()
    late = await clocked.acquire("web", "late")
    assert isinstance(late, Denied)
    assert (late.reason, late.position, late.queue_full) == (DenyReason.FULL, None, QUEUE_LIMIT)
    assert f"the queue is full ({QUEUE_LIMIT} nodes wait)" in late.sentence()
    assert await clocked.revision() == before, "a node beyond the queue writes nothing"
    (status,) = (await clocked.status("web")).groups
    queue = status.semaphore.queue(status.now)
    assert len(queue) == QUEUE_LIMIT
    assert "late" not in {w.id for w in queue}
    first = queue[0].id
    await clocked.release("web", "holder")
    clock.now += S
    assert isinstance(await clocked.acquire("web", first), Granted)
    joined = await clocked.acquire("web", "late")
    assert isinstance(joined, Denied)
    assert (joined.position, joined.queue_full) == (QUEUE_LIMIT, 0), "a place freed: it joins"
    (status,) = (await clocked.status("web")).groups
    assert status.semaphore.seen.keys() == status.semaphore.waiting.keys(), (
        "a count max remembers only its waiters"
    )

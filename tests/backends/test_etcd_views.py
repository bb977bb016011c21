"""The etcd backend remembers the newest view of each group it has seen (from a read or its
own write) and starts a change from it, so a change right after a read is ONE transaction.
A remembered view may be stale (another client wrote since): then it may only cost a retry,
never a wrong answer. Each test makes a view stale through a second backend object (another
server, another node) and checks the answer, on a real etcd; the round trips are counted by
etcd itself (its gRPC metrics)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from etcd_support import (
    EtcdCluster,
    audited_contention,
    kv_calls,
    raw_client,
    store_revision,
)
from stagger.backends.etcd import EtcdBackend
from stagger.core.semaphore import Denied, DenyReason, Granted, NotHeld, Released

OP = "operator:alice"


async def test_a_change_right_after_a_read_of_the_group_is_one_transaction(
    etcd_pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, _ = etcd_pair
    await here.set_max("web", 2, by=OP)
    await here.status("web")
    before = kv_calls(etcd_server)
    assert isinstance(await here.acquire("web", "node-a"), Granted)
    assert kv_calls(etcd_server) - before == 1


async def test_a_change_right_after_a_change_is_one_transaction(
    etcd_pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, _ = etcd_pair
    await here.set_max("web", 2, by=OP)
    await here.acquire("web", "node-a")
    before = kv_calls(etcd_server)
    assert isinstance(await here.release("web", "node-a"), Released)
    assert kv_calls(etcd_server) - before == 1


async def test_a_stale_view_never_grants_a_slot_another_client_took(
    etcd_pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, there = etcd_pair
    await here.set_max("web", 1, by=OP)
    await here.status("web")  # remembers: one free slot
    await there.acquire("web", "node-x")
    before = kv_calls(etcd_server)
    outcome = await here.acquire("web", "node-y")
    assert isinstance(outcome, Denied)
    assert outcome.holders == ("node-x",)
    # The guarded write lost, and its failure branch carried the fresh group: no extra read;
    # the one more call is node-y's place in the queue, written with its denial.
    assert here.conflicts == 1
    assert kv_calls(etcd_server) - before == 2


async def test_a_stale_view_never_denies_a_slot_another_client_freed(
    etcd_pair: tuple[EtcdBackend, EtcdBackend],
) -> None:
    here, there = etcd_pair
    await here.set_max("web", 1, by=OP)
    await there.acquire("web", "node-x")
    await here.status("web")  # remembers: full
    await there.release("web", "node-x")
    assert isinstance(await here.acquire("web", "node-y"), Granted)


async def test_a_stale_view_never_misses_a_fleet_pause_set_elsewhere(
    etcd_pair: tuple[EtcdBackend, EtcdBackend],
) -> None:
    here, there = etcd_pair
    await here.set_max("web", 2, by=OP)
    await here.status("web")  # remembers: no pause
    await there.pause(None, by=OP, reason="freeze")
    outcome = await here.acquire("web", "node-y")
    assert isinstance(outcome, Denied)
    assert outcome.reason is DenyReason.PAUSED


async def test_a_stale_view_never_answers_not_held_for_a_hold_taken_since(
    etcd_pair: tuple[EtcdBackend, EtcdBackend],
) -> None:
    here, there = etcd_pair
    await here.set_max("web", 2, by=OP)
    await here.status("web")  # remembers: node-x holds nothing
    await there.acquire("web", "node-x")
    assert isinstance(await here.release("web", "node-x"), Released)
    (status,) = (await there.status("web")).groups
    assert status.holds == []


async def test_a_stale_view_never_answers_already_held_for_a_hold_released_since(
    etcd_pair: tuple[EtcdBackend, EtcdBackend],
) -> None:
    here, there = etcd_pair
    await here.set_max("web", 1, by=OP)
    await here.acquire("web", "node-x")  # remembers: node-x holds
    await there.release("web", "node-x")
    granted = await here.acquire("web", "node-x")
    assert isinstance(granted, Granted)
    assert not granted.already_held, "the hold was taken anew, and written"
    (status,) = (await there.status("web")).groups
    assert [h.id for h in status.holds] == ["node-x"]


async def test_a_stale_view_never_denies_a_slot_whose_lease_etcd_ended(
    etcd_pair: tuple[EtcdBackend, EtcdBackend],
) -> None:
    here, there = etcd_pair
    await here.set_max("web", 1, by=OP)
    await here.configure("web", by=OP, hold_ttl=timedelta(seconds=1))
    await here.acquire("web", "node-x")  # remembers node-x's lease; the group key never moves
    for _ in range(100):  # bounded: 10 s; etcd ends a 1 s lease within about 2 s
        (status,) = (await there.status("web")).groups
        if not status.holds:
            break
        await asyncio.sleep(0.1)
    assert isinstance(await here.acquire("web", "node-y"), Granted)


async def test_a_no_op_decided_from_a_remembered_view_still_writes_nothing(
    etcd_pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, _ = etcd_pair
    await here.set_max("web", 1, by=OP)
    await here.acquire("web", "node-x")  # remembers: full, node-x holds
    await here.acquire("web", "node-y")  # denied: takes its place in the queue (a write)
    async with raw_client(etcd_server.members[0]) as raw:
        start = await store_revision(raw)
        assert isinstance(await here.release("web", "node-z"), NotHeld)
        assert isinstance(await here.acquire("web", "node-y"), Denied)
        granted = await here.acquire("web", "node-x")
        assert isinstance(granted, Granted)
        assert granted.already_held
        assert await store_revision(raw) == start


async def test_acquires_racing_through_one_backend_take_turns_instead_of_losing_races(
    etcd_pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, _ = etcd_pair
    await here.set_max("web", 1, by=OP)
    await here.status("web")
    before = kv_calls(etcd_server)
    outcomes = await asyncio.gather(*(here.acquire("web", f"node-{i}") for i in range(8)))
    assert sum(isinstance(o, Granted) for o in outcomes) == 1
    assert sum(isinstance(o, Denied) for o in outcomes) == 7
    assert here.conflicts == 0
    # All eight queued before the first was sent: one batch, one guarded transaction. Its
    # guard confirms at the commit (after all of them asked) the view the seven denials
    # were decided on (tests/backends/test_etcd_group_commit.py has more).
    assert kv_calls(etcd_server) - before == 1


async def test_many_clients_sharing_one_backend_never_exceed_max(
    etcd_server: EtcdCluster,
) -> None:
    # Eight clients through one backend object (one server), two through another.
    tally, audit, recorded = await audited_contention(
        etcd_server, max_=3, shared_clients=8, other_clients=2, total=1000
    )
    assert audit.most_holds == 3, "the group really filled up"
    assert tally.denials > 0
    # The set-max, then one event per grant and per release: nothing lost, nothing extra.
    # A committed value may carry several of them (one server writes its queue together).
    assert recorded == 1 + 2 * tally.grants
    assert audit.values <= 1 + 2 * tally.grants
    assert audit.values <= 1 + 2 * tally.grants

"""Group commit on etcd: the changes to one group that queue behind one in flight through the
same backend object are applied in order, each on the value the one before left, and written
in ONE guarded transaction. Every caller must get the outcome it would have had alone, max
must hold at every committed value, and a lost guard must re-apply the whole batch. Real etcd;
round trips counted by etcd itself (its gRPC metrics)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcd_support import (
    EtcdCluster,
    audited_contention,
    kv_calls,
)
from stagger.backends.etcd import EtcdBackend
from stagger.backends.etcd.group_commit import MAX_BATCH
from stagger.core.semaphore import Denied, DenyReason, Granted, NotHeld, Released

OP = "operator:alice"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def fresh_url(etcd: EtcdCluster) -> str:
    return f"{etcd.url}?prefix=test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
async def pair(etcd_server: EtcdCluster) -> AsyncIterator[tuple[EtcdBackend, EtcdBackend]]:
    """Two backend objects on one prefix: `here` batches, `there` writes behind its back."""
    url = fresh_url(etcd_server)
    here, there = EtcdBackend.from_url(url), EtcdBackend.from_url(url)
    yield here, there
    await here.close()
    await there.close()


# --- each caller gets the outcome it would get alone --------------------------------------

Call = Callable[[EtcdBackend], Awaitable[Any]]
NODES = ["node-a", "node-b", "node-c", "node-d"]


def calls() -> st.SearchStrategy[tuple[str, Call]]:
    node = st.sampled_from(NODES)
    return st.one_of(
        node.map(lambda n: (f"acquire {n}", lambda b: b.acquire("web", n))),
        node.map(lambda n: (f"release {n}", lambda b: b.release("web", n))),
        node.map(lambda n: (f"unlock {n}", lambda b: b.release("web", n, by=OP))),
        st.integers(0, 3).map(lambda m: (f"set-max {m}", lambda b: b.set_max("web", m, by=OP))),
        st.just(("pause", lambda b: b.pause("web", by=OP, reason="freeze"))),
        st.just(("resume", lambda b: b.resume("web", by=OP))),
    )


async def alone_and_batched(
    url_alone: str, url_batched: str, start: list[Call], queued: list[Call]
) -> None:
    # One clock for both, so holds and events compare exactly.
    alone = EtcdBackend.from_url(url_alone, clock=lambda: NOW)
    batched = EtcdBackend.from_url(url_batched, clock=lambda: NOW)
    try:
        for call in start:
            await call(alone)
            await call(batched)
        await batched.status("web")  # a remembered view older than every queued call
        expected = [await call(alone) for call in queued]
        got = await asyncio.gather(*(call(batched) for call in queued))
        assert got == expected
        assert await batched.status("web") == await alone.status("web")
        assert await batched.history("web") == await alone.history("web")
    finally:
        await alone.close()
        await batched.close()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.lists(calls(), max_size=4),
    queued=st.lists(calls(), min_size=2, max_size=10),
)
def test_each_queued_caller_gets_the_outcome_it_would_get_alone(
    etcd_server: EtcdCluster,
    start: list[tuple[str, Call]],
    queued: list[tuple[str, Call]],
) -> None:
    asyncio.run(
        alone_and_batched(
            fresh_url(etcd_server),
            fresh_url(etcd_server),
            [call for _, call in start],
            [call for _, call in queued],
        )
    )


# --- one transaction ----------------------------------------------------------------------


async def test_changes_queued_together_are_one_etcd_transaction(
    pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, _ = pair
    await here.set_max("web", 3, by=OP)
    for n in ("node-a", "node-b", "node-c"):
        await here.acquire("web", n)
    await here.status("web")
    before = kv_calls(etcd_server)
    outcomes = await asyncio.gather(
        here.release("web", "node-a"),
        here.acquire("web", "node-d"),
        here.acquire("web", "node-e"),
        here.release("web", "node-b"),
        here.release("web", "node-z"),
        here.acquire("web", "node-e"),
    )
    assert kv_calls(etcd_server) - before == 1
    released_a, granted_d, denied_e, released_b, not_held, granted_e = outcomes
    assert isinstance(released_a, Released)
    assert isinstance(granted_d, Granted)
    assert isinstance(denied_e, Denied)
    assert denied_e.holders == ("node-b", "node-c", "node-d")
    assert isinstance(released_b, Released)
    assert isinstance(not_held, NotHeld)
    assert isinstance(granted_e, Granted)
    assert not granted_e.already_held
    (status,) = (await here.status("web")).groups
    assert sorted(h.id for h in status.holds) == ["node-c", "node-d", "node-e"]


async def test_a_batch_is_capped_so_a_transaction_stays_within_etcds_limit(
    pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, _ = pair
    await here.set_max("web", MAX_BATCH + 8, by=OP)
    await here.status("web")
    before = kv_calls(etcd_server)
    outcomes = await asyncio.gather(
        *(here.acquire("web", f"node-{i}") for i in range(MAX_BATCH + 8))
    )
    assert all(isinstance(o, Granted) for o in outcomes)
    assert kv_calls(etcd_server) - before == 2  # MAX_BATCH, then the 8 after them


async def test_changes_that_write_nothing_do_not_count_against_the_cap(
    pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, _ = pair
    await here.set_max("web", 1, by=OP)
    await here.acquire("web", "node-x")
    askers = [f"node-{i}" for i in range(MAX_BATCH + 8)]
    await asyncio.gather(*(here.acquire("web", n) for n in askers))  # they join the queue
    before = kv_calls(etcd_server)
    outcomes = await asyncio.gather(*(here.acquire("web", n) for n in askers))
    assert all(isinstance(o, Denied) for o in outcomes)
    assert kv_calls(etcd_server) - before == 1  # one read, sent after all of them asked


async def test_a_batch_of_only_denials_from_an_older_view_reads_before_answering(
    pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, there = pair
    await here.set_max("web", 1, by=OP)
    await here.acquire("web", "node-x")  # here remembers: full, node-x holds
    await there.release("web", "node-x")  # ...which is no longer true
    outcomes = await asyncio.gather(*(here.acquire("web", f"node-{i}") for i in range(3)))
    # Nothing to write on the remembered view, and it is older than the calls: a read (sent
    # after all three asked) decides, and shows the free slot.
    assert [type(o) for o in outcomes] == [Granted, Denied, Denied]


# --- a lost guard ---------------------------------------------------------------------------


async def test_a_lost_guard_re_applies_the_whole_batch_on_the_fresh_view(
    pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, there = pair
    await here.set_max("web", 2, by=OP)
    await here.status("web")  # here remembers: two free slots
    await there.acquire("web", "node-x")
    before = kv_calls(etcd_server)
    y, z, x = await asyncio.gather(
        here.acquire("web", "node-y"),
        here.acquire("web", "node-z"),
        here.release("web", "node-x", by=OP),
    )
    # On the stale view: y and z granted, x not held. The guard lost; on the view its failure
    # branch returned (node-x holds) the batch runs again, in order, and is written at once.
    assert here.conflicts == 1
    assert kv_calls(etcd_server) - before == 2
    assert isinstance(y, Granted)
    assert isinstance(z, Denied)
    assert z.reason is DenyReason.FULL
    assert z.holders == ("node-x", "node-y")
    assert isinstance(x, Released)
    (status,) = (await there.status("web")).groups
    assert [h.id for h in status.holds] == ["node-y"]


# --- max under a watch audit ------------------------------------------------------------------


async def test_batches_from_many_clients_never_exceed_max_at_any_committed_value(
    etcd_server: EtcdCluster,
) -> None:
    tally, audit, recorded = await audited_contention(
        etcd_server, max_=2, shared_clients=10, other_clients=2, total=600
    )
    assert audit.most_holds == 2, "the group really filled up"
    assert recorded == 1 + 2 * tally.grants, "one event per change, none lost"
    assert audit.values < 1 + 2 * tally.grants, "changes really were committed together"


async def test_the_backend_says_it_is_changing_a_group_only_while_a_change_is_queued_or_in_flight(
    pair: tuple[EtcdBackend, EtcdBackend],
) -> None:
    here, _ = pair
    await here.set_max("web", 1, by=OP)
    assert not here.changing("web")
    acquiring = asyncio.create_task(here.acquire("web", "node-a"))
    await asyncio.sleep(0)  # the call has queued its change
    assert here.changing("web")
    assert not here.changing("db")
    assert isinstance(await acquiring, Granted)
    assert not here.changing("web")

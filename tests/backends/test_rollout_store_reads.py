"""The reads a rollout is judged from (SemaphoreStore.group_nodes: the reports that need a
reboot, the idle nodes named, the count of the rest), on each real store, judge as every report
does (core/rollout.py; the same fleet and records as tests/core/test_rollout_reads.py), and
stay true across writes, moves between groups and states, forgets and a store written before
them (docs/backends.md)."""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clock_support import ManualClock
from etcd_support import EtcdCluster, raw_client
from rollout_reads_support import (
    GROUPS,
    OTHER,
    T0,
    case,
    cut_from,
    fleet,
    judgments,
    listed,
    named,
)
from stagger.backends.etcd import EtcdBackend
from stagger.backends.factory import open_backend
from stagger.backends.semaphore_store import SemaphoreStore
from stagger.backends.sqlite import SqliteBackend
from stagger.core import rollout_reads as reads
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport


@pytest.fixture
async def store(any_backend_url: str, clock: ManualClock) -> AsyncIterator[SemaphoreStore]:
    clock.now = T0  # the fleet of rollout_reads_support is dated from T0
    b = open_backend(any_backend_url, clock=clock)
    assert isinstance(b, SemaphoreStore)
    yield b
    await b.close()


async def write(store: SemaphoreStore, clock: ManualClock, reports: list[NodeReport]) -> None:
    for x in reports:
        assert x.updated_at is not None
        clock.now = x.updated_at  # the store stamps its own time: make it the report's
        await store.report(x)


async def test_the_store_reads_judge_the_rollout_as_every_report_does(
    store: SemaphoreStore, clock: ManualClock
) -> None:
    rng = random.Random(7)
    reports = fleet(rng)
    await write(store, clock, reports)
    every = await store.nodes()
    assert sorted(every, key=lambda x: x.id) == sorted(reports, key=lambda x: x.id)
    everyone = await store.group_nodes(dict.fromkeys(GROUPS))
    for seed in range(60):
        c = case(random.Random(seed), reports)
        assert judgments(c, await store.group_nodes(named(c))) == judgments(c, every)
        assert judgments(c, everyone) == judgments(c, every)
        assert listed(c, everyone) == listed(c, every)
        staged = await store.group_nodes(reads.staged_reads(c.rollout, c.groups))
        cut_from(listed(c, every), listed(c, staged, 3), 3)


async def test_the_reads_follow_a_node_through_states_groups_and_forget(
    store: SemaphoreStore,
) -> None:
    async def read() -> dict[str, tuple[set[str], set[str], int]]:
        found = await store.group_nodes(dict.fromkeys((*GROUPS, OTHER, "empty")))
        return {g: ({x.id for x in n.busy}, set(n.resting), n.at_rest) for g, n in found.items()}

    await store.report(NodeReport("n1", "web", State.IDLE))
    await store.report(NodeReport("n2", "web", State.WAITING))
    assert (await read())["web"] == ({"n2"}, {"n1"}, 1)
    await store.report(NodeReport("n1", "web", State.IDLE, needed_since=T0))
    await store.report(NodeReport("n2", "web", State.IDLE))
    assert (await read())["web"] == ({"n1"}, {"n2"}, 1)
    await store.report(NodeReport("n1", "api", State.HALTED))
    seen = await read()
    assert (seen["web"], seen["api"]) == ((set(), {"n2"}, 1), ({"n1"}, set(), 0))
    await store.forget("n1", by="operator:a")
    await store.forget("n2", by="operator:a")
    assert all(v == (set(), set(), 0) for v in (await read()).values())
    assert (await store.group_nodes({"web": {"n1", "n9"}}))["web"] == reads.GroupNodes()


async def test_a_version_2_sqlite_store_gets_the_needs_column_when_opened(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    b = SqliteBackend(path, create=True)
    await b.report(NodeReport("w1", "web", State.REBOOTING))
    await b.report(NodeReport("w2", "web", State.IDLE, needed_since=T0))
    await b.report(NodeReport("w3", "web", State.IDLE))
    await b.close()
    conn = sqlite3.connect(path)  # as a stagger before the needs column left it
    conn.execute("DROP INDEX nodes_needing")
    conn.execute("ALTER TABLE nodes DROP COLUMN needs")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    b = SqliteBackend(path)
    try:
        web = (await b.group_nodes({"web": None}))["web"]
        assert ({x.id for x in web.busy}, web.resting, web.at_rest) == ({"w1", "w2"}, {"w3"}, 1)
    finally:
        await b.close()


async def test_an_etcd_index_without_the_needs_keys_is_completed_when_first_read(
    etcd_server: EtcdCluster,
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}/"
    b = open_backend(f"{etcd_server.url}?prefix={prefix}")
    assert isinstance(b, EtcdBackend)
    try:
        await b.report(NodeReport("w1", "web", State.HALTED))
        await b.report(NodeReport("w2", "web", State.IDLE))
    finally:
        await b.close()
    async with raw_client(etcd_server.members[0]) as etcd:  # as the index's version 1 left it
        await etcd.delete_prefix(f"{prefix}node-needs/".encode())
        await etcd.put(f"{prefix}node-index".encode(), b"1")
    b = open_backend(f"{etcd_server.url}?prefix={prefix}")
    assert isinstance(b, EtcdBackend)
    try:
        web = (await b.group_nodes({"web": None}))["web"]
        assert ([x.id for x in web.busy], web.resting, web.at_rest) == (["w1"], {"w2"}, 1)
    finally:
        await b.close()

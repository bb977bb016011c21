"""The node counts a server keeps from a watch of etcd (backends/etcd/node_counts.py): equal to
etcd's own count after any sequence of reports, moves and forgets, and again after whatever
makes the watch start over (a compaction past the revision it counted at, etcd restarted, a
stream gone silent). Real etcd (tests/etcd_support.py); every wait is a bounded loop."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aetcd import rpc

from etcd_support import EtcdCluster, raw_client, store_revision, wait_healthy
from stagger.backends.etcd import EtcdBackend
from stagger.backends.etcd.client import put
from stagger.backends.etcd.node_counts import ByGroup, WatchedCounts
from stagger.core.cycle.node_state import State
from stagger.core.listing import NodeCounts
from stagger.core.node_report import NodeReport

GROUPS = ("web", "db", "web-2")
STATES = tuple(State)
FAST = (0.02, 0.2)  # the watch's pauses before trying again, short for the tests


def open_store(cluster: EtcdCluster) -> EtcdBackend:
    b = EtcdBackend.from_url(f"{cluster.url}?prefix=test-{uuid.uuid4().hex[:12]}/&timeout=2")
    b._watched.retry = FAST
    return b


@pytest.fixture
async def etcd(etcd_server: EtcdCluster) -> AsyncIterator[EtcdBackend]:
    b = open_store(etcd_server)
    yield b
    await b.close()


def silent_before() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


async def settled(b: EtcdBackend) -> NodeCounts:
    """Wait (bounded: 10 s) until the watched counts are in sync and equal a direct count."""
    watched, direct, in_sync = None, None, False
    for _ in range(1000):
        watched, in_sync = await b.watched_counts(silent_before())
        direct = await b.node_counts(silent_before())
        if in_sync and watched == direct:
            return watched
        await asyncio.sleep(0.01)
    assert in_sync, "the watch came into sync"
    assert watched == direct
    raise AssertionError("unreachable")


async def random_writes(b: EtcdBackend, rng: random.Random, n: int) -> None:
    """Reports (a new node, a move to another group or state, the same again) and forgets."""
    ids = [f"n{i}" for i in range(12)]
    for _ in range(n):
        node = rng.choice(ids)
        if rng.random() < 0.15:
            await b.forget(node, by="operator:test")
        else:
            await b.report(NodeReport(node, rng.choice(GROUPS), rng.choice(STATES)))


async def test_watched_counts_follow_random_reports_moves_and_forgets(etcd: EtcdBackend) -> None:
    rng = random.Random(20261203)
    await random_writes(etcd, rng, 40)  # counted by the first read, before the watch
    etcd.watch_counts()
    first = await settled(etcd)
    assert first.by_group, "the first count saw the reports"
    for _ in range(3):
        await random_writes(etcd, rng, 50)  # kept from the watch's events
        await settled(etcd)
    assert etcd._watched.fresh_reads == 1, "every change came from the watch, not a new count"


async def test_a_state_this_version_does_not_know_is_left_out_as_directly(
    etcd: EtcdBackend,
) -> None:
    etcd.watch_counts()
    await settled(etcd)
    # The copy of a report in a state a newer stagger knows: neither count shows it.
    key = etcd._nodes.keys.by_state("rebooting-elsewhere", "web", "x")
    await etcd._client.txn(rpc.TxnRequest(success=[put(key, b"{}")]))
    await etcd.report(NodeReport("y", "web", State.IDLE))
    found = await settled(etcd)
    assert found.by_group == {"web": {"idle": 1}}


async def test_a_compaction_while_watching_keeps_the_counts(etcd_member: EtcdCluster) -> None:
    b = open_store(etcd_member)
    try:
        rng = random.Random(7)
        b.watch_counts()
        await random_writes(b, rng, 30)
        await settled(b)
        async with raw_client(etcd_member.members[0]) as raw:
            await raw.compact(await store_revision(raw), physical=True)
        await random_writes(b, rng, 30)
        await settled(b)
        assert b._watched.fresh_reads == 1, "a watch in sync is not cancelled by a compaction"
    finally:
        await b.close()


async def test_a_compaction_past_the_counted_revision_counts_again(
    etcd_member: EtcdCluster,
) -> None:
    b = open_store(etcd_member)
    try:
        rng = random.Random(11)
        await random_writes(b, rng, 20)
        old, at = await b._nodes.state_counts()  # a count the store moves past
        await random_writes(b, rng, 20)
        async with raw_client(etcd_member.members[0]) as raw:
            await raw.compact(await store_revision(raw), physical=True)
        reads: list[int] = []

        async def stale_first() -> tuple[ByGroup, int]:
            reads.append(1)
            return (old, at) if len(reads) == 1 else await b._nodes.state_counts()

        w = WatchedCounts(b._client, b._nodes.keys, stale_first, retry=FAST)
        b._watched = w
        w.start()
        await settled(b)
        assert w.fresh_reads == 2, "the compacted watch was started over from a fresh count"
    finally:
        await b.close()


async def test_the_counts_recover_after_etcd_restarts(etcd_member: EtcdCluster) -> None:
    member = etcd_member.members[0]
    b = open_store(etcd_member)
    try:
        rng = random.Random(3)
        b.watch_counts()
        await random_writes(b, rng, 20)
        await settled(b)
        member.kill()
        for _ in range(500):
            if b._watched.counts() is None:
                break
            await asyncio.sleep(0.01)
        assert b._watched.counts() is None, "a broken watch is not trusted"
        member.start()
        wait_healthy([member])
        await random_writes(b, rng, 20)
        await settled(b)
        assert b._watched.fresh_reads >= 2
    finally:
        await b.close()


async def test_a_silent_stream_is_given_up_and_a_live_one_kept(etcd_member: EtcdCluster) -> None:
    member = etcd_member.members[0]
    b = open_store(etcd_member)
    b._watched.heartbeat = 0.25
    try:
        b.watch_counts()
        await b.report(NodeReport("a", "web", State.IDLE))
        await settled(b)
        await asyncio.sleep(1.5)  # six heartbeats without a write: progress answers keep it
        assert b._watched.counts() == {"web": {"idle": 1}}
        assert b._watched.fresh_reads == 1
        assert member.proc is not None
        member.proc.send_signal(signal.SIGSTOP)  # etcd frozen: the connection stays, silent
        try:
            for _ in range(500):
                if b._watched.counts() is None:
                    break
                await asyncio.sleep(0.01)
            assert b._watched.counts() is None, "a stream that stopped answering is not trusted"
        finally:
            member.proc.send_signal(signal.SIGCONT)
        await b.report(NodeReport("b", "db", State.WAITING))
        await settled(b)
        assert b._watched.fresh_reads >= 2
    finally:
        await b.close()


async def test_the_counts_recover_when_the_leader_they_watch_dies(
    etcd_cluster: EtcdCluster,
) -> None:
    """The watch is on the leader (the first endpoint); killing it breaks the stream, and the
    watch starts over on a survivor, after the election."""
    async with raw_client(etcd_cluster.members[0]) as raw:
        leader_name = (await raw.status()).leader.name
    members = sorted(etcd_cluster.members, key=lambda m: m.name != leader_name)
    endpoints = ",".join(f"127.0.0.1:{m.client_port}" for m in members)
    b = EtcdBackend.from_url(f"etcd://{endpoints}?prefix=test-{uuid.uuid4().hex[:12]}/")
    b._watched.retry = FAST
    try:
        rng = random.Random(5)
        b.watch_counts()
        await random_writes(b, rng, 20)
        await settled(b)
        members[0].kill()
        await random_writes(b, rng, 20)
        await settled(b)
        assert b._watched.fresh_reads >= 2, "the watch started over on another member"
    finally:
        await b.close()

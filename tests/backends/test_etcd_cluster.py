"""A 3-member etcd cluster loses its leader in the middle of a contention run: the clients
fail over to the survivors and finish, none of them sees an error, and every value the
cluster committed (audited through a watch on a surviving member) kept at most max holds."""

from __future__ import annotations

import asyncio
import uuid

from etcd_support import (
    Audit,
    EtcdCluster,
    EtcdMember,
    Tally,
    caught_up,
    contend,
    observe,
    raw_client,
    store_revision,
)
from stagger.backends.etcd import EtcdBackend

CLIENTS = 8
MAX = 3
TOTAL_OPS = 1200
KILL_AFTER_OPS = 300


async def leader_of(cluster: EtcdCluster) -> EtcdMember:
    async with raw_client(cluster.members[0]) as raw:
        status = await raw.status()
    return next(m for m in cluster.members if m.name == status.leader.name)


async def test_killing_the_leader_mid_run_loses_no_write_and_keeps_the_invariant(
    etcd_cluster: EtcdCluster,
) -> None:
    url = f"{etcd_cluster.url}?prefix=test-{uuid.uuid4().hex[:12]}/"
    setup = EtcdBackend.from_url(url)
    await setup.set_max("web", MAX, by="operator:test")
    key = setup.layout.group_key("web")
    await setup.close()
    async with raw_client(etcd_cluster.members[0]) as raw:
        start = await store_revision(raw)

    tally = Tally()
    killed: list[EtcdMember] = []

    async def kill_the_leader_midway() -> None:
        for _ in range(6000):  # bounded; the run itself is bounded by wait_for below
            if tally.ops >= KILL_AFTER_OPS:
                break
            await asyncio.sleep(0.01)
        leader = await leader_of(etcd_cluster)
        leader.kill()  # SIGKILL
        killed.append(leader)

    backends = [EtcdBackend.from_url(url) for _ in range(CLIENTS)]
    try:
        clients = [contend(b, f"node-{i}", tally, TOTAL_OPS) for i, b in enumerate(backends)]
        # Bounded: the run must end well within a minute despite the election.
        await asyncio.wait_for(asyncio.gather(kill_the_leader_midway(), *clients), timeout=60)
    finally:
        for b in backends:
            await b.close()
    assert killed, "the leader was killed during the run"
    assert killed[0].proc is not None
    assert killed[0].proc.poll() is not None, "it stayed dead"
    assert tally.ops >= TOTAL_OPS

    survivor = next(m for m in etcd_cluster.members if m is not killed[0])
    audit = Audit()
    async with raw_client(survivor) as raw:
        final = await raw.get(key)
        assert final is not None
        watch = await raw.watch(key, start_revision=start)
        observer = asyncio.create_task(observe(watch, audit, MAX))
        try:
            await caught_up(observer, audit, final.mod_revision)
        finally:
            observer.cancel()
            await watch.cancel()
    assert audit.most_holds == MAX
    # The set-max, then exactly one committed value per grant and per release the clients
    # were told of: no write lost in the failover and none applied twice.
    assert audit.values == 1 + 2 * tally.grants

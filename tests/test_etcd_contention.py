"""Contention on etcd: many separate clients fight over one group with max 3, while an
independent observer watches every committed value of the group key and checks that no
value ever had more than max holds. No client may see an error: a lost compare-and-swap is
retried inside the backend."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import aetcd

from etcd_support import EtcdCluster, EtcdMember, raw_client, store_revision
from stagger.backends.codec import decode_semaphore
from stagger.backends.etcd import EtcdBackend
from stagger.core.semaphore import Denied, DenyReason, Granted, Released

CLIENTS = 8
MAX = 3
TOTAL_OPS = 2000


@dataclass
class Tally:
    ops: int = 0
    grants: int = 0
    denials: int = 0


async def contend(backend: EtcdBackend, node_id: str, tally: Tally, total: int) -> None:
    """Acquire, and release what was granted, until the clients together did `total` ops."""
    while tally.ops < total:
        outcome = await backend.acquire("web", node_id)
        tally.ops += 1
        if isinstance(outcome, Denied):
            assert outcome.reason is DenyReason.FULL
            tally.denials += 1
            await asyncio.sleep(0)
            continue
        assert isinstance(outcome, Granted)
        tally.grants += 1
        released = await backend.release("web", node_id)
        assert isinstance(released, Released), "only this client releases its own hold"
        tally.ops += 1


@dataclass
class Audit:
    values: int = 0
    most_holds: int = 0
    last_revision: int = 0


async def observe(watch: aetcd.Watch, audit: Audit, until: asyncio.Event, max_: int) -> None:
    """Check every committed value of the group key, in order, until told to stop."""
    async for event in watch:
        sem = decode_semaphore(event.kv.value, "watched value")
        assert len(sem.holds) <= max_, f"revision {event.kv.mod_revision}: {sorted(sem.holds)}"
        audit.values += 1
        audit.most_holds = max(audit.most_holds, len(sem.holds))
        audit.last_revision = event.kv.mod_revision
        if until.is_set():
            return


async def run_contention(
    url: str, member: EtcdMember, *, clients: int = CLIENTS, total: int = TOTAL_OPS
) -> tuple[Tally, Audit, list[EtcdBackend]]:
    """`clients` separate backends contend on group `web` (max 3) while a raw aetcd watch on
    `member` audits every committed value. Returns once the watch has seen the final one."""
    setup = EtcdBackend.from_url(url)
    await setup.set_max("web", MAX, by="operator:test")
    key = setup.group_key("web")
    await setup.close()
    tally, audit, done = Tally(), Audit(), asyncio.Event()
    backends = [EtcdBackend.from_url(url) for _ in range(clients)]
    async with raw_client(member) as raw:
        start = await store_revision(raw)
        watch = await raw.watch(key, start_revision=start)
        observer = asyncio.create_task(observe(watch, audit, done, MAX))
        try:
            await asyncio.gather(
                *(contend(b, f"node-{i}", tally, total) for i, b in enumerate(backends))
            )
            final = await raw.get(key)
            assert final is not None
            done.set()
            # Bounded: the watch delivers every revision up to the final one, then we stop.
            for _ in range(300):
                if audit.last_revision >= final.mod_revision or observer.done():
                    break
                await asyncio.sleep(0.05)
            if observer.done():
                observer.result()  # the observer's own failure (a value over max) comes first
            assert audit.last_revision == final.mod_revision, "the observer saw every value"
        finally:
            observer.cancel()
            await watch.cancel()
            for b in backends:
                await b.close()
    return tally, audit, backends


async def test_eight_clients_never_exceed_max_and_never_see_a_conflict(
    etcd_server: EtcdCluster,
) -> None:
    url = f"{etcd_server.url}?prefix=test-{uuid.uuid4().hex[:12]}/"
    tally, audit, backends = await run_contention(url, etcd_server.members[0])
    assert tally.ops >= TOTAL_OPS
    assert audit.most_holds == MAX, "the group really filled up"
    assert tally.denials > 0, "clients really were turned away"
    assert sum(b.conflicts for b in backends) > 0, "compare-and-swaps really were lost"
    # The set-max, then one committed value per grant and per release: nothing unaccounted.
    assert audit.values == 1 + 2 * tally.grants

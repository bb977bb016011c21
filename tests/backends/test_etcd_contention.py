"""Contention on etcd: many separate clients fight over one group with max 3, while an
independent observer watches every committed value of the group key and checks that no
value ever had more than max holds. No client may see an error: a lost compare-and-swap is
retried inside the backend."""

from __future__ import annotations

import asyncio
import uuid

from etcd_support import (
    Audit,
    EtcdCluster,
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
TOTAL_OPS = 2000


async def test_eight_clients_never_exceed_max_and_never_see_a_conflict(
    etcd_server: EtcdCluster,
) -> None:
    url = f"{etcd_server.url}?prefix=test-{uuid.uuid4().hex[:12]}/"
    setup = EtcdBackend.from_url(url)
    await setup.set_max("web", MAX, by="operator:test")
    key = setup.layout.group_key("web")
    await setup.close()
    tally, audit = Tally(), Audit()
    backends = [EtcdBackend.from_url(url) for _ in range(CLIENTS)]
    async with raw_client(etcd_server.members[0]) as raw:
        # From the revision of the set-max on: the watch misses no value written after it.
        watch = await raw.watch(key, start_revision=await store_revision(raw))
        observer = asyncio.create_task(observe(watch, audit, MAX))
        try:
            await asyncio.gather(
                *(contend(b, f"node-{i}", tally, TOTAL_OPS) for i, b in enumerate(backends))
            )
            final = await raw.get(key)
            assert final is not None
            await caught_up(observer, audit, final.mod_revision)
        finally:
            observer.cancel()
            await watch.cancel()
            for b in backends:
                await b.close()
    assert tally.ops >= TOTAL_OPS
    assert audit.most_holds == MAX, "the group really filled up"
    assert tally.denials > 0, "clients really were turned away"
    assert sum(b.conflicts for b in backends) > 0, "compare-and-swaps really were lost"
    # The set-max, then one committed value per grant and per release: nothing unaccounted.
    assert audit.values == 1 + 2 * tally.grants

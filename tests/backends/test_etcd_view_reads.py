"""A view read of one group on etcd does not send the group's record and the fleet's again
while they are unchanged (backends/etcd/view_reads.py), and still sees every write another
client made before it: checked on a real etcd, the bytes counted by etcd itself."""

from __future__ import annotations

import random
import re
import urllib.request
from datetime import UTC, datetime, timedelta

from etcd_support import EtcdCluster
from stagger.backends.etcd import EtcdBackend
from stagger.core.semaphore import Denied, Granted

OP = "operator:alice"


def sent_bytes(cluster: EtcdCluster) -> int:
    """The bytes etcd has sent to its clients (its own gRPC metric)."""
    with urllib.request.urlopen(cluster.members[0].client_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.search(r"^etcd_network_client_grpc_sent_bytes_total (\S+)$", text, re.M)
    assert found is not None, "etcd no longer reports etcd_network_client_grpc_sent_bytes_total"
    return int(float(found.group(1)))


async def test_an_unchanged_group_is_not_sent_again(
    etcd_pair: tuple[EtcdBackend, EtcdBackend], etcd_server: EtcdCluster
) -> None:
    here, there = etcd_pair
    await there.set_max("web", 1, by=OP)
    await there.acquire("web", "holder")
    for i in range(300):  # a queue of 300: a record of ~20 KB
        assert isinstance(await there.acquire("web", f"waiter-{i:03d}-{'x' * 24}"), Denied)
    before = sent_bytes(etcd_server)
    first = await here.status("web")
    full = sent_bytes(etcd_server) - before
    before = sent_bytes(etcd_server)
    again = await here.status("web")
    short = sent_bytes(etcd_server) - before
    assert full > 15_000
    assert short < 2_000
    assert again.groups[0].semaphore == first.groups[0].semaphore
    assert len(again.groups[0].semaphore.waiting) == 300


async def test_each_read_sees_what_another_client_wrote_before_it(
    etcd_pair: tuple[EtcdBackend, EtcdBackend],
) -> None:
    """A seeded walk of writes by `there` (to the group, its holds and the fleet record),
    each followed by a read by `here`, which must equal a full read by a fresh object."""
    here, there = etcd_pair
    rng = random.Random(7)
    until = datetime.now(UTC) + timedelta(hours=1)
    await there.set_max("web", 2, by=OP)
    for step in range(60):
        action = rng.choice(["acquire", "release", "max", "pause", "resume", "none"])
        node = f"node-{rng.randrange(5)}"
        if action == "acquire":
            await there.acquire("web", node)
        elif action == "release":
            await there.release("web", node)
        elif action == "max":
            await there.set_max("web", rng.randrange(1, 4), by=OP)
        elif action == "pause":
            await there.pause(None, by=OP, reason=f"step {step}", until=until)
        elif action == "resume":
            await there.resume(None, by=OP)
        seen = (await here.status("web")).groups[0]
        fresh = EtcdBackend.from_url(here.url)
        try:
            truth = (await fresh.status("web")).groups[0]
        finally:
            await fresh.close()
        assert seen.semaphore == truth.semaphore, f"step {step} ({action})"
        assert seen.fleet_pause == truth.fleet_pause, f"step {step} ({action})"


async def test_a_group_written_for_the_first_time_is_seen(
    etcd_pair: tuple[EtcdBackend, EtcdBackend],
) -> None:
    here, there = etcd_pair
    assert not (await here.status("new")).groups[0].semaphore.stored
    assert not (await here.status("new")).groups[0].semaphore.stored  # the absent record, known
    await there.set_max("new", 3, by=OP)
    assert (await here.status("new")).groups[0].semaphore.max == 3
    assert isinstance(await there.acquire("new", "a"), Granted)
    assert [h.id for h in (await here.status("new")).groups[0].holds] == ["a"]

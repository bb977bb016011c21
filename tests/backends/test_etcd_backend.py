"""What the etcd backend promises beyond the shared contract: the documented key layout,
failover between endpoints, a clear error when nothing answers, hold expiry by etcd leases
(etcd's clock, never the reader's), no write for a denial or a no-op, bounded history.
Everything runs against a real etcd (tests/etcd_support.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from etcd_support import EtcdCluster, dead_port, raw_client, store_revision
from stagger.backends.codec import decode_event, decode_semaphore
from stagger.backends.etcd import EtcdBackend
from stagger.backends.etcd import client as client_module
from stagger.backends.etcd.client import Endpoint
from stagger.backends.etcd.url import parse_etcd_url
from stagger.backends.factory import open_backend
from stagger.core.cycle.node_state import State
from stagger.core.errors import BackendUnavailable, ConfigError
from stagger.core.node_report import NodeReport
from stagger.core.secrets import mask_url as redact_url
from stagger.core.semaphore import Action, Denied, Granted, NotHeld

OP = "operator:alice"


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
async def etcd(etcd_server: EtcdCluster, prefix: str) -> AsyncIterator[EtcdBackend]:
    b = EtcdBackend.from_url(f"{etcd_server.url}?prefix={prefix}")
    yield b
    await b.close()


async def wait_for_holders(b: EtcdBackend, group: str, want: list[str]) -> list[str]:
    """Poll status until the holders are `want` (bounded: 10 s), and return the last seen."""
    seen: list[str] = []
    for _ in range(100):
        (status,) = (await b.status(group)).groups
        seen = [h.id for h in status.holds]
        if seen == want:
            break
        await asyncio.sleep(0.1)
    return seen


# --- the key layout -------------------------------------------------------------------------


async def test_a_group_is_stored_as_codec_json_under_prefix_groups(
    etcd: EtcdBackend, etcd_server: EtcdCluster, prefix: str
) -> None:
    await etcd.set_max("web", 2, by=OP)
    await etcd.acquire("web", "node-a")
    async with raw_client(etcd_server.members[0]) as raw:
        got = await raw.get(f"{prefix}groups/web".encode())
    assert got is not None
    sem = decode_semaphore(got.value, "test")
    assert (sem.group, sem.max, list(sem.holds)) == ("web", 2, ["node-a"])


async def test_events_are_numbered_per_group_with_the_last_number_in_prefix_seq(
    etcd: EtcdBackend, etcd_server: EtcdCluster, prefix: str
) -> None:
    await etcd.set_max("web", 2, by=OP)
    await etcd.acquire("web", "node-a")
    await etcd.release("web", "node-a")
    async with raw_client(etcd_server.members[0]) as raw:
        events = await raw.get_prefix(f"{prefix}events/web/".encode())
        seq = await raw.get(f"{prefix}seq/web".encode())
    keys = [kv.key.decode() for kv in events]
    assert keys == [f"{prefix}events/web/{n:020d}" for n in (1, 2, 3)]
    actions = [decode_event(kv.value).action for kv in events]
    assert actions == [Action.MAX_CHANGED, Action.ACQUIRED, Action.RELEASED]
    assert seq is not None
    assert seq.value == b"3"


async def test_the_fleet_pause_is_the_group_named_star(
    etcd: EtcdBackend, etcd_server: EtcdCluster, prefix: str
) -> None:
    await etcd.pause(None, by=OP, reason="kernel regression")
    async with raw_client(etcd_server.members[0]) as raw:
        got = await raw.get(f"{prefix}groups/*".encode())
    assert got is not None
    fleet = decode_semaphore(got.value, "test")
    assert fleet.pause is not None
    assert fleet.pause.reason == "kernel regression"
    assert [s.group for s in (await etcd.status()).groups] == []


async def test_a_hold_of_a_group_with_hold_ttl_has_a_lease_key_bound_to_an_etcd_lease(
    etcd: EtcdBackend, etcd_server: EtcdCluster, prefix: str
) -> None:
    await etcd.configure("web", by=OP, hold_ttl=timedelta(minutes=10))
    await etcd.acquire("web", "node-a")
    async with raw_client(etcd_server.members[0]) as raw:
        got = await raw.get(f"{prefix}leases/web/node-a".encode())
        assert got is not None
        assert got.lease != 0
        assert json.loads(got.value) == {"ttl": 600}
        info = await raw.get_lease_info(got.lease)
    assert 590 <= info.TTL <= 600


async def test_a_release_deletes_the_lease_key(
    etcd: EtcdBackend, etcd_server: EtcdCluster, prefix: str
) -> None:
    await etcd.configure("web", by=OP, hold_ttl=timedelta(minutes=10))
    await etcd.acquire("web", "node-a")
    await etcd.release("web", "node-a")
    async with raw_client(etcd_server.members[0]) as raw:
        assert await raw.get(f"{prefix}leases/web/node-a".encode()) is None


async def test_holds_without_hold_ttl_get_no_lease_key(
    etcd: EtcdBackend, etcd_server: EtcdCluster, prefix: str
) -> None:
    await etcd.acquire("web", "node-a")
    async with raw_client(etcd_server.members[0]) as raw:
        assert not await raw.get_prefix(f"{prefix}leases/".encode())


# --- hold_ttl: etcd's clock -----------------------------------------------------------------


async def test_a_hold_is_dropped_when_etcd_expires_its_lease(etcd: EtcdBackend) -> None:
    await etcd.configure("web", by=OP, hold_ttl=timedelta(seconds=1))
    assert isinstance(await etcd.acquire("web", "node-a"), Granted)
    assert await wait_for_holders(etcd, "web", []) == []
    assert isinstance(await etcd.acquire("web", "node-b"), Granted)
    actions = [(e.action, e.id) for e in await etcd.history("web", limit=2)]
    assert actions == [(Action.ACQUIRED, "node-b"), (Action.EXPIRED, "node-a")]


async def test_touch_refreshes_the_lease_so_the_hold_outlives_its_ttl(etcd: EtcdBackend) -> None:
    await etcd.configure("web", by=OP, hold_ttl=timedelta(seconds=2))
    await etcd.acquire("web", "node-a")
    for _ in range(8):  # 4 s of heartbeats, twice the ttl
        assert await etcd.touch("web", "node-a") is not None
        await asyncio.sleep(0.5)
    assert await wait_for_holders(etcd, "web", ["node-a"]) == ["node-a"]


async def test_a_readers_clock_never_expires_a_hold(
    etcd_server: EtcdCluster, prefix: str, etcd: EtcdBackend
) -> None:
    await etcd.configure("web", by=OP, hold_ttl=timedelta(minutes=10))
    await etcd.acquire("web", "node-a")
    future = datetime.now(UTC) + timedelta(days=365)
    late = EtcdBackend.from_url(f"{etcd_server.url}?prefix={prefix}", clock=lambda: future)
    try:
        denied = await late.acquire("web", "node-b")
        (status,) = (await late.status("web")).groups
    finally:
        await late.close()
    assert isinstance(denied, Denied)
    assert denied.holders == ("node-a",)
    assert [h.id for h in status.holds] == ["node-a"]
    assert status.holds[0].expires_at is None, "etcd's lease decides, not a stored time"


# --- writes nothing when nothing changes ------------------------------------------------------


async def test_a_denial_writes_nothing(etcd: EtcdBackend, etcd_server: EtcdCluster) -> None:
    """A denied node's first ask puts it in the group's queue (one write); asking again, as a
    polling node does, writes nothing."""
    await etcd.acquire("web", "node-a")
    assert isinstance(await etcd.acquire("web", "node-b"), Denied)  # joins the queue
    async with raw_client(etcd_server.members[0]) as raw:
        before = await store_revision(raw)
        assert isinstance(await etcd.acquire("web", "node-b"), Denied)
        assert await store_revision(raw) == before


async def test_releasing_what_is_not_held_writes_nothing(
    etcd: EtcdBackend, etcd_server: EtcdCluster
) -> None:
    await etcd.acquire("web", "node-a")
    async with raw_client(etcd_server.members[0]) as raw:
        before = await store_revision(raw)
        assert isinstance(await etcd.release("web", "node-b"), NotHeld)
        assert await store_revision(raw) == before


async def test_a_recursive_acquire_writes_nothing(
    etcd: EtcdBackend, etcd_server: EtcdCluster
) -> None:
    await etcd.acquire("web", "node-a")
    async with raw_client(etcd_server.members[0]) as raw:
        before = await store_revision(raw)
        granted = await etcd.acquire("web", "node-a")
        assert isinstance(granted, Granted)
        assert granted.already_held
        assert await store_revision(raw) == before


# --- bounded history ------------------------------------------------------------------------


async def test_every_report_is_read_in_ranges_of_one_snapshot(
    etcd: EtcdBackend, etcd_server: EtcdCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole fleet's reports pass grpc's 4 MiB answer limit in one range (~14,000 nodes), so
    they are read a chunk at a time, all at the first chunk's revision: a report written
    between two chunks is not half-seen."""
    ids = [f"n{i}" for i in range(7)]
    for node in ids:
        await etcd.report(NodeReport(node, "web", State.IDLE))
    monkeypatch.setattr(client_module, "RANGE_CHUNK", 2)
    ranges = 0
    real_range = etcd._client.range

    async def range_then_write(request: Any) -> Any:
        nonlocal ranges
        if request.limit != 2:  # not a chunk (the report's own reads)
            return await real_range(request)
        ranges += 1
        resp = await real_range(request)
        if ranges == 1:  # between the first chunk and the next: a new node reports
            await etcd.report(NodeReport("n99", "web", State.IDLE))
        return resp

    monkeypatch.setattr(etcd._client, "range", range_then_write)
    found = await etcd.read_nodes()
    assert [r.id for r in found.reports] == ids
    assert ranges == 4  # 2 + 2 + 2 + 1
    monkeypatch.undo()
    assert "n99" in [r.id for r in (await etcd.read_nodes()).reports]


async def test_a_rollouts_read_of_a_group_is_the_same_in_ranges_of_a_few_keys(
    etcd: EtcdBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every node of a big group needs a reboot, its reports pass grpc's 4 MiB answer
    limit in one range: they are read a chunk at a time, and the answer does not change."""
    for i in range(5):
        await etcd.report(NodeReport(f"w{i}", "web", State.WAITING))
    for i in range(3):
        await etcd.report(NodeReport(f"i{i}", "web", State.IDLE))
    named = {"web": None}
    whole = await etcd.group_nodes(named)
    monkeypatch.setattr(client_module, "RANGE_CHUNK", 2)
    chunks = 0
    real_range = etcd._client.range

    async def counting(request: Any) -> Any:
        nonlocal chunks
        chunks += request.limit == 2
        return await real_range(request)

    monkeypatch.setattr(etcd._client, "range", counting)
    chunked = await etcd.group_nodes(named)
    assert chunked == whole
    assert chunks == 3 + 2  # 5 reports needing a reboot, then 3 idle keys
    assert sorted(r.id for r in whole["web"].busy) == [f"w{i}" for i in range(5)]
    assert (whole["web"].resting, whole["web"].at_rest) == ({"i0", "i1", "i2"}, 3)


async def test_history_keeps_the_newest_events_per_group_in_the_same_transaction(
    etcd_server: EtcdCluster, prefix: str
) -> None:
    b = EtcdBackend.from_url(f"{etcd_server.url}?prefix={prefix}", history_limit=5)
    try:
        for n in range(2, 10):  # eight events: max 1 -> 2 ... 8 -> 9
            await b.set_max("web", n, by=OP)
        history = await b.history("web", limit=100)
    finally:
        await b.close()
    assert [e.detail for e in history] == [f"{n - 1} -> {n}" for n in (9, 8, 7, 6, 5)]
    async with raw_client(etcd_server.members[0]) as raw:
        kept = await raw.get_prefix(f"{prefix}events/web/".encode())
    assert [kv.key.decode()[-2:] for kv in kept] == ["04", "05", "06", "07", "08"]


# --- endpoints, failover and errors -----------------------------------------------------------


async def test_a_dead_first_endpoint_fails_over_to_the_next(
    etcd_server: EtcdCluster, prefix: str
) -> None:
    url = f"etcd://127.0.0.1:{dead_port()},{etcd_server.endpoints}/?prefix={prefix}"
    b = open_backend(url)
    try:
        assert isinstance(await b.acquire("web", "node-a"), Granted)
        await b.ping()
    finally:
        await b.close()


async def test_nothing_answering_is_backend_unavailable_naming_the_endpoints() -> None:
    ports = dead_port(), dead_port()
    url = f"etcd://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}?timeout=0.5"
    b = open_backend(url, username="stagger", password="s3cret-pw")
    try:
        with pytest.raises(BackendUnavailable) as err:
            await b.acquire("web", "node-a")
    finally:
        await b.close()
    message = err.value.message
    assert f"127.0.0.1:{ports[0]}, 127.0.0.1:{ports[1]} did not answer within 0.5 s" in message
    assert "etcdctl" in message
    assert "s3cret-pw" not in message


async def test_ping_raises_backend_unavailable_when_etcd_is_down() -> None:
    b = open_backend(f"etcd://127.0.0.1:{dead_port()}?timeout=0.3")
    try:
        with pytest.raises(BackendUnavailable):
            await b.ping()
    finally:
        await b.close()


# --- the URL ------------------------------------------------------------------------------


def test_a_url_names_several_endpoints_with_the_default_port() -> None:
    parsed = parse_etcd_url("etcd://10.0.0.1:2380,etcd-2,[::1]:2381/")
    assert parsed.endpoints == (
        Endpoint("10.0.0.1", 2380),
        Endpoint("etcd-2", 2379),
        Endpoint("::1", 2381),
    )
    assert not parsed.tls


def test_url_query_options_are_read_and_https_turns_tls_on() -> None:
    parsed = parse_etcd_url("etcd+https://h1:2379/?prefix=fleet/&ca=/etc/ca.pem&user=stagger")
    assert parsed.tls
    assert parsed.options == {"prefix": "fleet/", "ca_cert": "/etc/ca.pem", "username": "stagger"}


def test_a_password_never_shows_in_the_backend_url() -> None:
    url = "etcd://stagger:hunter2@h1:2379,h2:2379/?prefix=p/&password=hunter2"
    assert "hunter2" not in redact_url(url)
    assert "hunter2" not in EtcdBackend.from_url(url).url


@pytest.mark.parametrize(
    "url",
    [
        "etcd://",
        "etcd://h1:notaport",
        "etcd://h1:2379/some/path",
        "etcd://h1:2379/?colour=blue",
        "etcd://h1:2379/?timeout=soon",
        "etcd://h1:2379/?history_limit=0",
    ],
)
def test_a_malformed_etcd_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        EtcdBackend.from_url(url)


def test_a_client_key_without_a_certificate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="without a client certificate"):
        EtcdBackend.from_url("etcd://h1:2379", key="/dev/null")


async def test_setting_a_hold_ttl_gives_existing_holds_leases_and_keeps_them(
    etcd: EtcdBackend, etcd_server: EtcdCluster, prefix: str
) -> None:
    await etcd.acquire("web", "node-a")
    await etcd.configure("web", by=OP, hold_ttl=timedelta(minutes=5))
    async with raw_client(etcd_server.members[0]) as raw:
        got = await raw.get(f"{prefix}leases/web/node-a".encode())
    assert got is not None
    assert got.lease != 0
    assert [h.id for h in (await etcd.status("web")).groups[0].holds] == ["node-a"]

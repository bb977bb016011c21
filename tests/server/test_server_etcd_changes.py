"""A FleetLock change through `stagger server` on etcd costs one etcd transaction when the
backend's remembered view says it is due (the server skips its batched read), and a view
made stale by another server still gets the right answer. Real servers, a real etcd; the
round trips are counted by etcd itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conftest import backend_url
from etcd_support import EtcdCluster, kv_calls
from server_support import PROTO, RunningServer, body, running
from stagger.server.settings import ServerSettings


@pytest.fixture
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two servers on one etcd prefix, each with its own backend (and so its own views)."""
    url = backend_url("etcd", request, tmp_path_factory.mktemp("changes"))
    settings = ServerSettings(backend_url=url)
    with (
        running(settings) as a,
        running(settings) as b,
        client_of(a) as ca,
        client_of(b) as cb,
    ):
        assert ca.put("/v1/groups/web/max", json={"max": 1}).status_code == 200
        yield ca, cb


def client_of(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10)


def post(client: httpx.Client, path: str, node_id: str) -> int:
    return client.post(path, json=body(node_id, "web"), headers=PROTO).status_code


def holders(client: httpx.Client) -> list[str]:
    return [h["id"] for h in client.get("/v1/groups/web").json()["holds"]]


def test_releasing_a_hold_granted_through_the_server_is_one_etcd_transaction(
    servers: tuple[httpx.Client, httpx.Client], etcd_server: EtcdCluster
) -> None:
    a, _ = servers
    assert post(a, "/v1/pre-reboot", "node-a") == 200
    before = kv_calls(etcd_server)
    assert post(a, "/v1/steady-state", "node-a") == 200
    assert kv_calls(etcd_server) - before == 1
    assert holders(a) == []


def test_a_lock_after_another_server_took_the_last_slot_is_denied(
    servers: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = servers
    assert post(a, "/v1/pre-reboot", "node-x") == 200
    assert post(a, "/v1/steady-state", "node-x") == 200  # a remembers: one free slot
    assert post(b, "/v1/pre-reboot", "node-y") == 200
    assert post(a, "/v1/pre-reboot", "node-z") == 423
    assert holders(b) == ["node-y"]


def test_a_release_after_another_server_released_the_hold_is_a_success_that_writes_nothing(
    servers: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = servers
    assert post(a, "/v1/pre-reboot", "node-x") == 200  # a remembers: node-x holds
    assert post(b, "/v1/steady-state", "node-x") == 200
    history = b.get("/v1/groups/web/history").json()
    assert post(a, "/v1/steady-state", "node-x") == 200
    assert b.get("/v1/groups/web/history").json() == history
    assert holders(a) == []


def test_a_denial_for_a_pause_ends_when_the_pause_does_though_the_group_is_unchanged(
    servers: tuple[httpx.Client, httpx.Client],
) -> None:
    """The server reuses a decision while the group's stored value is unchanged: only
    until the first instant that can change it (here the pause's end, which writes
    nothing)."""
    a, _ = servers
    assert post(a, "/v1/pre-reboot", "holder") == 200
    until = datetime.now(UTC) + timedelta(seconds=2)
    paused = {"reason": "bad kernel", "until": until.isoformat()}
    assert a.post("/v1/groups/web/pause", json=paused).status_code == 200
    denied = a.post("/v1/pre-reboot", json=body("node-b", "web"), headers=PROTO)
    assert (denied.status_code, denied.json()["kind"]) == (423, "failed_lock_paused")
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.2)
    denied = a.post("/v1/pre-reboot", json=body("node-b", "web"), headers=PROTO)
    assert (denied.status_code, denied.json()["kind"]) == (423, "failed_lock_semaphore_full")

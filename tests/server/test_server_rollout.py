"""A rollout through `stagger server`, as plain FleetLock clients (Zincati) see it: a real
uvicorn server on 127.0.0.1 over SQLite and over a real etcd, the rollout set from the
server's configuration, and the admin API that shows, sets and clears it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from conftest import backend_url
from server_support import PROTO, RunningServer, body, running
from stagger.core.rollout_gate import Budget, Stage
from stagger.server.settings import ServerSettings

STAGES = (Stage(("canary",), bake=timedelta(seconds=1)), Stage(("web",)))


@pytest.fixture(params=["sqlite", "etcd"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    url = backend_url(request.param, request, tmp_path_factory.mktemp("rollout"))
    settings = ServerSettings(
        backend_url=url, rollout=(STAGES, Budget(count=1)), rollout_interval=0.1
    )
    with running(settings) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def lock(client: httpx.Client, node_id: str, group: str) -> httpx.Response:
    return client.post("/v1/pre-reboot", json=body(node_id, group), headers=PROTO)


def unlock(client: httpx.Client, node_id: str, group: str) -> httpx.Response:
    return client.post("/v1/steady-state", json=body(node_id, group), headers=PROTO)


def until_granted(client: httpx.Client, node_id: str, group: str) -> httpx.Response:
    """Poll as Zincati does (here every 0.1 s, for at most 15 s)."""
    r = lock(client, node_id, group)
    deadline = time.monotonic() + 15
    while r.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        r = lock(client, node_id, group)
    return r


def test_the_configured_rollout_is_set_when_the_server_starts(client: httpx.Client) -> None:
    doc = client.get("/v1/rollout").json()
    assert doc["set"] is True
    assert [s["groups"] for s in doc["stages"]] == [["canary"], ["web"]]
    assert doc["max_failures"] == "1"


def test_fleetlock_clients_of_a_later_stage_wait_for_the_canary_and_its_bake(
    client: httpx.Client,
) -> None:
    assert lock(client, "c1", "canary").status_code == 200
    r = lock(client, "w1", "web")
    assert r.status_code == 423
    doc = r.json()
    assert doc["kind"] == "rollout_waiting"
    assert doc["stage"] == "stage 1 (canary)"
    assert "bake_ends" not in doc
    # Zincati's steady-state after its reboot finishes the canary's cycle
    assert unlock(client, "c1", "canary").status_code == 200
    baking = lock(client, "w1", "web")
    assert baking.status_code == 423
    assert baking.json()["kind"] == "rollout_waiting"
    assert "bake_ends" in baking.json()
    assert until_granted(client, "w1", "web").status_code == 200
    stages = client.get("/v1/rollout").json()["stages"]
    assert stages[0]["state"] == "done"
    assert stages[0]["done"] == ["c1"]
    assert stages[1]["pending"] == ["w1"]


def test_a_client_holding_past_stale_after_counts_against_the_budget(
    client: httpx.Client,
) -> None:
    client.put("/v1/groups/canary/config", json={"hold_ttl": None, "stale_after": 1})
    r = lock(client, "c1", "canary")
    assert r.status_code == 200, r.text
    # c1 never comes back: after stale_after the rollout pauses itself, naming it
    r = until_paused(client, "c2", "canary")
    assert r.json()["kind"] == "failed_lock_paused"
    assert "c1" in r.json()["value"]
    history = client.get("/v1/history").json()["events"]
    assert any(e["action"] == "rollout_halted" for e in history)


def until_paused(client: httpx.Client, node_id: str, group: str) -> httpx.Response:
    r = lock(client, node_id, group)
    deadline = time.monotonic() + 15
    while r.json().get("kind") != "failed_lock_paused" and time.monotonic() < deadline:
        if r.status_code == 200:
            unlock(client, node_id, group)
        time.sleep(0.1)
        r = lock(client, node_id, group)
    return r


def test_the_admin_api_sets_and_clears_the_rollout(client: httpx.Client) -> None:
    table = {"stage": [{"groups": ["db"], "bake": "1s"}, {"groups": ["api"]}]}
    r = client.put("/v1/rollout", json={**table, "by": "operator:bob"})
    assert r.status_code == 200, r.text
    assert r.json()["by"] == "operator:bob"
    assert [s["groups"] for s in r.json()["stages"]] == [["db"], ["api"]]
    twice = {"stage": [{"groups": ["x"]}, {"groups": ["x"]}]}
    bad = client.put("/v1/rollout", json=twice)
    assert bad.status_code == 400
    assert bad.json()["kind"] == "invalid_request"
    assert "one stage only" in bad.json()["value"]
    assert client.delete("/v1/rollout").json() == {"cleared": True}
    assert client.get("/v1/rollout").json()["set"] is False
    assert lock(client, "w9", "web").status_code == 200

"""A rollout through `stagger server`, as plain FleetLock clients (Zincati) see it: a real
uvicorn server on 127.0.0.1 over SQLite and over a real etcd, the rollout set from the
server's configuration, and the admin API that shows, sets and clears it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import backend_url
from report_support import report, waiting
from server_support import PROTO, RunningServer, body, running
from stagger.api import RolloutModel
from stagger.backends.fleetlock import FleetLockBackend
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Budget, Stage
from stagger.core.rollout_status import MAX_STAGE_NAMES
from stagger.core.semaphore import Denied, DenyReason
from stagger.server.notify import NotifyTarget
from stagger.server.settings import ServerSettings
from webhook_support import Receiver

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


def test_stage_done_and_rollout_halted_are_notified(tmp_path: Path, receiver: Receiver) -> None:
    hook = NotifyTarget(
        name="hook",
        url=receiver.url("/hook"),
        format="json",
        events=frozenset({"stage_done", "rollout_halted"}),
        retries=3,
        backoff=0.05,
        timeout=5.0,
    )
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db",
        rollout=((Stage(("canary",)), Stage(("web",))), Budget(count=1)),
        rollout_interval=0.1,
        notify=(hook,),
        notify_interval=0.05,
    )
    with running(settings) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        client.put("/v1/rollout", json={"stage": [{"groups": ["canary"]}, {"groups": ["web"]}]})
        ended = wait_for_event(receiver, "stage_done", 2)
        # in the order they happened
        assert [d["detail"][:7] for d in ended[-2:]] == ["stage 1", "stage 2"]
        client.put("/v1/rollout", json={"stage": [{"groups": ["canary"]}], "max_failures": 1})
        assert lock(client, "c1", "canary").status_code == 200
        report = {"group": "canary", "state": "halted", "reason": "health failed"}
        assert client.post("/v1/nodes/c1/report", json=report).status_code == 200
        halted = wait_for_event(receiver, "rollout_halted", 1)
        assert "c1" in halted[0]["detail"]


def wait_for_event(receiver: Receiver, event: str, n: int) -> list[dict[str, Any]]:
    """The first `n` (or more) notifications of `event` the receiver got, within 15 s."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = [d for d in receiver.docs("/hook") if d["event"] == event]
        if len(found) >= n:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {n} {event} notification(s): {receiver.docs('/hook')}")


def test_the_dashboard_shows_the_stages_as_a_strip(client: httpx.Client) -> None:
    assert lock(client, "c1", "canary").status_code == 200
    page = client.get("/").text
    assert 'data-stage="1" data-state="open"' in page
    assert 'data-stage="2" data-state="waiting"' in page
    client.delete("/v1/rollout")
    # Asked fresh, as the page's script does right after an act: a board that was costly to
    # build (a loaded machine) is otherwise kept a little while through writes.
    fresh = client.get("/", headers={"Cache-Control": "no-cache"}).text
    assert "data-stage=" not in fresh


def test_an_agent_through_the_server_hears_which_stage_it_waits_for(
    server: RunningServer, client: httpx.Client
) -> None:
    assert lock(client, "c1", "canary").status_code == 200

    async def ask() -> object:
        b = FleetLockBackend.from_url(f"fleetlock+{server.url}/", retries=0)
        try:
            return await b.acquire("web", "w1")
        finally:
            await b.close()

    denied = asyncio.run(ask())
    assert isinstance(denied, Denied)
    assert denied.reason is DenyReason.ROLLOUT_WAITING
    assert denied.stage == "stage 1 (canary)"
    assert "waiting for stage 1 (canary) to finish" in denied.sentence()


def test_a_stage_past_the_bound_is_named_up_to_it_and_counted_in_full(
    server: RunningServer, client: httpx.Client
) -> None:
    """The nodes at rest are counted, not named (docs/rollout.md, "What is read"), and the
    fleetlock:// client reads the same document."""
    n = MAX_STAGE_NAMES
    ids = [f"w{i:04}" for i in range(n + 30)]
    idle = [NodeReport(f"i{i:04}", "web", State.IDLE) for i in range(n + 10)]
    report(server.settings.backend_url, *(waiting(i) for i in ids), *idle)
    web = client.get("/v1/rollout").json()["stages"][1]
    assert web["totals"] == {"done": n + 10, "pending": n + 30, "halted": 0, "left_behind": 0}
    assert (web["pending"], web["done"]) == (ids[:n], [])
    assert web["truncated"] == ["done", "pending"]

    async def through_client() -> RolloutModel:
        b = FleetLockBackend.from_url(f"fleetlock+{server.url}/", retries=0)
        try:
            return await b.rollout_document()
        finally:
            await b.close()

    doc = asyncio.run(through_client())
    assert doc.stages[1].totals.pending == n + 30
    assert doc.stages[1].truncated == ["done", "pending"]

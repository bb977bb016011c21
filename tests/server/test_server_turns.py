"""Pacing, the fair queue and a percentage max through a real `stagger server` (uvicorn on
127.0.0.1, over SQLite and a real etcd), as plain FleetLock clients see them: the queue must
hold for clients that only poll, decided on the server's hot path."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from conftest import backend_url
from server_support import PROTO, RunningServer, body, running
from stagger.api import ErrorKind
from stagger.server.settings import ServerSettings


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    if request.param == "etcd":
        pytest.importorskip("stagger.backends.etcd")
    url = backend_url(request.param, request, tmp_path_factory.mktemp("turns"))
    with running(ServerSettings(backend_url=url)) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def new_group(client: httpx.Client, max_: int | str) -> str:
    name = f"g-{uuid.uuid4().hex[:10]}"
    r = client.put(f"/v1/groups/{name}/max", json={"max": max_})
    assert r.status_code == 200, r.text
    return name


def lock(client: httpx.Client, node: str, group: str) -> httpx.Response:
    return client.post("/v1/pre-reboot", json=body(node, group), headers=PROTO)


def unlock(client: httpx.Client, node: str, group: str) -> httpx.Response:
    return client.post("/v1/steady-state", json=body(node, group), headers=PROTO)


def denial(r: httpx.Response, kind: ErrorKind) -> dict[str, Any]:
    assert r.status_code == 423, r.text
    doc: dict[str, Any] = r.json()
    assert doc["kind"] == kind.value, doc
    return doc


def test_a_pacing_denial_names_when_the_pace_ends(client: httpx.Client) -> None:
    group = new_group(client, 1)
    r = client.put(f"/v1/groups/{group}/pace", json={"pace": 2})
    assert r.json() == {"group": group, "pace": 2.0}
    assert lock(client, "a", group).status_code == 200
    assert unlock(client, "a", group).status_code == 200
    doc = denial(lock(client, "b", group), ErrorKind.FAILED_LOCK_PACING)
    until = datetime.fromisoformat(doc["until"])
    assert doc["position"] == 1
    assert until.isoformat() in doc["value"] or "granted again at" in doc["value"]
    time.sleep(max(0.0, (until - datetime.now(until.tzinfo)).total_seconds()) + 0.2)
    assert lock(client, "b", group).status_code == 200


def test_polling_clients_get_slots_in_the_order_they_first_asked(client: httpx.Client) -> None:
    group = new_group(client, 1)
    assert lock(client, "holder", group).status_code == 200
    askers = [f"n{i}" for i in range(4)]
    for place, node in enumerate(askers, start=1):
        assert (
            denial(lock(client, node, group), ErrorKind.FAILED_LOCK_SEMAPHORE_FULL)["position"]
            == place
        )
    holder = "holder"
    for i, expected in enumerate(askers):
        assert unlock(client, holder, group).status_code == 200
        # everyone still waiting polls, the latest askers first: only the first asker wins
        answers = {node: lock(client, node, group) for node in reversed(askers[i:])}
        granted = [n for n, r in answers.items() if r.status_code == 200]
        assert granted == [expected]
        for place, node in enumerate(askers[i + 1 :], start=2):  # behind `expected`
            doc = denial(answers[node], ErrorKind.FAILED_LOCK_QUEUED)
            assert doc["position"] == place
        holder = expected
    status = client.get(f"/v1/groups/{group}").json()
    assert status["queue"] == []


def test_status_shows_a_percentage_max_and_the_queue(client: httpx.Client) -> None:
    group = new_group(client, "50%")
    for node in ("a", "b", "c"):
        lock(client, node, group)
    doc = client.get(f"/v1/groups/{group}").json()
    assert (doc["max_percent"], doc["max"], doc["known_nodes"]) == (50, 1, ["a", "b", "c"])
    assert [(w["id"], w["position"]) for w in doc["queue"]] == [("b", 1), ("c", 2)]


def test_a_percentage_outside_1_to_100_is_a_400(client: httpx.Client) -> None:
    r = client.put(f"/v1/groups/g-{uuid.uuid4().hex[:8]}/max", json={"max": "0%"})
    assert r.status_code == 400


def test_the_max_metric_of_a_percentage_group_is_its_slots_now(client: httpx.Client) -> None:
    group = new_group(client, "50%")
    for node in ("a", "b", "c", "d"):
        lock(client, node, group)
    client.get("/v1/status")  # the gauges follow the status the server reads
    line = next(
        ln
        for ln in client.get("/metrics").text.splitlines()
        if ln.startswith(f'stagger_group_max{{group="{group}"}}')
    )
    assert float(line.split()[-1]) == 2.0

"""A pause for one node (`stagger pause --node ID`): its new locks are refused in every group,
its hold stays, it ends by itself at its end, and every view shows it. Checked through the
Backend Protocol on a real SQLite file and a real etcd, through a real server on loopback with
a plain FleetLock request and the FleetLock client backend, and through the CLI."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cli_support import assert_one_sentence, run
from clock_support import ManualClock
from conftest import backend_url
from server_support import PROTO, RunningServer, body, running
from stagger.backends.codec import decode_semaphore, encode_semaphore, semaphore_to_dict
from stagger.backends.factory import open_backend
from stagger.backends.fleetlock import server_backend_url
from stagger.backends.protocol import Backend
from stagger.core.errors import InvalidInput
from stagger.core.notices import Notification
from stagger.core.semaphore import (
    FLEET,
    Action,
    Denied,
    DenyReason,
    Granted,
    Pause,
    Semaphore,
)
from stagger.server.settings import ServerSettings

OP = "operator:alice"


# --- the Backend Protocol, on SQLite and etcd ------------------------------------------


async def test_a_paused_node_is_denied_in_every_group_and_others_are_not(
    backend: Backend,
) -> None:
    until = datetime.now(UTC) + timedelta(hours=3)
    p = await backend.pause_node("web-07", by=OP, reason="quarter-end batch", until=until)
    assert (p.reason, p.by, p.until) == ("quarter-end batch", OP, until)
    for group in ("web", "db"):
        denied = await backend.acquire(group, "web-07")
        assert isinstance(denied, Denied)
        assert denied.reason is DenyReason.PAUSED
        assert denied.node == "web-07"
        assert denied.pause == p
        assert "node web-07 is paused until" in denied.sentence()
        assert "quarter-end batch" in denied.sentence()
    assert isinstance(await backend.acquire("web", "web-08"), Granted)
    snap = await backend.status()
    assert snap.node_pauses == {"web-07": p}
    assert snap.fleet_pause is None
    (web,) = (await backend.status("web")).groups
    assert web.node_pauses == {"web-07": p}
    assert web.pause is None  # the group itself is not paused


async def test_a_node_pause_keeps_the_hold_it_has(backend: Backend) -> None:
    first = await backend.acquire("web", "web-07")
    assert isinstance(first, Granted)
    await backend.pause_node("web-07", by=OP, reason="hold on")
    again = await backend.acquire("web", "web-07")
    assert isinstance(again, Granted)
    assert again.already_held
    (web,) = (await backend.status("web")).groups
    assert [h.id for h in web.holds] == ["web-07"]
    assert await backend.touch("web", "web-07") is not None


async def test_resume_node_lifts_it_and_history_records_both_with_the_id(
    backend: Backend,
) -> None:
    await backend.pause_node("web-07", by=OP, reason="batch")
    lifted = await backend.resume_node("web-07", by=OP)
    assert lifted is not None
    assert lifted.reason == "batch"
    assert isinstance(await backend.acquire("web", "web-07"), Granted)
    assert (await backend.status()).node_pauses == {}
    events = [e for e in await backend.history(None, 50) if e.group == FLEET]
    assert [(e.action, e.id, e.by) for e in events] == [
        (Action.RESUMED, "web-07", OP),
        (Action.PAUSED, "web-07", OP),
    ]
    assert events[1].detail == "batch"


async def test_resuming_a_node_not_paused_writes_nothing(backend: Backend) -> None:
    assert await backend.resume_node("web-07", by=OP) is None
    assert await backend.history(None, 50) == []


async def test_the_same_node_pause_again_writes_nothing(backend: Backend) -> None:
    until = datetime.now(UTC) + timedelta(hours=1)
    first = await backend.pause_node("web-07", by=OP, reason="batch", until=until)
    again = await backend.pause_node("web-07", by=OP, reason="batch", until=until)
    assert again == first
    assert len(await backend.history(None, 50)) == 1


async def test_a_node_pause_ends_by_itself_at_its_end(clocked: Backend, clock: ManualClock) -> None:
    await clocked.pause_node("web-07", by=OP, reason="batch", until=clock.now + timedelta(hours=2))
    assert isinstance(await clocked.acquire("web", "web-07"), Denied)
    clock.now += timedelta(hours=2)
    assert (await clocked.status()).node_pauses == {}
    assert isinstance(await clocked.acquire("web", "web-07"), Granted)


async def test_a_node_pause_and_the_fleet_pause_live_side_by_side(backend: Backend) -> None:
    await backend.pause_node("web-07", by=OP, reason="batch")
    await backend.pause(None, by=OP, reason="incident")
    await backend.resume(None, by=OP)
    denied = await backend.acquire("web", "web-07")
    assert isinstance(denied, Denied)
    assert denied.node == "web-07"
    await backend.resume_node("web-07", by=OP)
    await backend.pause(None, by=OP, reason="incident 2")
    fleet_denied = await backend.acquire("web", "web-07")
    assert isinstance(fleet_denied, Denied)
    assert fleet_denied.node == ""
    assert fleet_denied.pause is not None
    assert fleet_denied.pause.reason == "incident 2"


@pytest.mark.parametrize(
    ("node", "reason", "until_delta", "words"),
    [
        ("web-07", "  ", timedelta(hours=1), "reason"),
        ("web-07", "batch", -timedelta(hours=1), "already past"),
        ("bad id", "batch", None, "node id"),
    ],
)
async def test_a_node_pause_refuses_what_a_group_pause_refuses(
    backend: Backend, node: str, reason: str, until_delta: timedelta | None, words: str
) -> None:
    until = datetime.now(UTC) + until_delta if until_delta is not None else None
    with pytest.raises(InvalidInput, match=words):
        await backend.pause_node(node, by=OP, reason=reason, until=until)
    assert (await backend.status()).node_pauses == {}


# --- the stored form ------------------------------------------------------------------


def test_the_fleet_record_with_node_pauses_stays_readable_both_ways() -> None:
    since = datetime(2026, 1, 5, 12, tzinfo=UTC)
    p = Pause("batch", OP, since, since + timedelta(hours=1))
    fleet = Semaphore(FLEET, pause=None, node_pauses={"web-07": p})
    raw = encode_semaphore(fleet)
    doc = json.loads(raw)
    assert doc["version"] == 1  # an older stagger reads it (and ignores node_pauses)
    old_doc = {k: v for k, v in doc.items() if k != "node_pauses"}
    assert decode_semaphore(json.dumps(old_doc), "old") == Semaphore(FLEET)
    assert decode_semaphore(raw, "new").node_pauses == {"web-07": p}
    # Without node pauses the record is written exactly as before.
    assert "node_pauses" not in semaphore_to_dict(Semaphore(FLEET))


# --- through a real server --------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    url = backend_url(request.param, request, tmp_path_factory.mktemp("nodepause"))
    with running(ServerSettings(backend_url=url)) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def fresh_node() -> str:
    return f"n-{uuid.uuid4().hex[:8]}"


def test_a_plain_fleetlock_client_of_a_paused_node_is_denied_failed_lock_paused(
    client: httpx.Client,
) -> None:
    node = fresh_node()
    until = (datetime.now(UTC) + timedelta(hours=4)).replace(microsecond=0)
    r = client.post(
        f"/v1/nodes/{node}/pause", json={"reason": "quarter-end", "until": until.isoformat()}
    )
    assert r.status_code == 200, r.text
    assert r.json()["node"] == node
    denied = client.post("/v1/pre-reboot", json=body(node, "web"), headers=PROTO)
    assert denied.status_code == 423, denied.text
    doc = denied.json()
    assert doc["kind"] == "failed_lock_paused"
    assert f"node {node} is paused until {until.isoformat()}" in doc["value"]
    assert doc["node"] == node
    other = client.post("/v1/pre-reboot", json=body(fresh_node(), "web-np"), headers=PROTO)
    assert other.status_code == 200, other.text
    status = client.get("/v1/status").json()
    assert status["node_pauses"][node]["reason"] == "quarter-end"
    assert (
        f"stagger_nodes_paused {float(len(status['node_pauses']))}" in client.get("/metrics").text
    )
    lifted = client.post(f"/v1/nodes/{node}/resume", json={})
    assert lifted.json()["lifted"]["reason"] == "quarter-end"
    assert client.post("/v1/pre-reboot", json=body(node, "web"), headers=PROTO).status_code == 200
    client.post("/v1/steady-state", json=body(node, "web"), headers=PROTO)


def test_a_paused_holder_keeps_its_slot_and_can_release_it(client: httpx.Client) -> None:
    node = fresh_node()
    group = f"g-{uuid.uuid4().hex[:8]}"
    assert client.post("/v1/pre-reboot", json=body(node, group), headers=PROTO).status_code == 200
    client.post(f"/v1/nodes/{node}/pause", json={"reason": "hold on"})
    again = client.post("/v1/pre-reboot", json=body(node, group), headers=PROTO)
    assert again.status_code == 200, again.text
    held = client.get(f"/v1/groups/{group}").json()
    assert [h["id"] for h in held["holds"]] == [node]
    assert held["node_pauses"][node]["reason"] == "hold on"
    nodes = client.get("/v1/nodes").json()["nodes"]
    (row,) = [n for n in nodes if n["id"] == node]
    assert row["pause"]["reason"] == "hold on"
    page = client.get("/dashboard/live").text
    assert f'data-node-pause="{node}"' in page
    assert client.post("/v1/steady-state", json=body(node, group), headers=PROTO).is_success
    client.post(f"/v1/nodes/{node}/resume", json={})


def test_a_node_pause_with_a_bad_body_is_refused_with_400(client: httpx.Client) -> None:
    r = client.post(f"/v1/nodes/{fresh_node()}/pause", json={"reason": ""})
    assert r.status_code == 400, r.text
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = client.post(f"/v1/nodes/{fresh_node()}/pause", json={"reason": "x", "until": past})
    assert r.status_code == 400, r.text
    assert "already past" in r.json()["value"]


async def test_the_fleetlock_client_backend_pauses_and_sees_a_node_pause(
    server: RunningServer,
) -> None:
    node = fresh_node()
    b = open_backend(server_backend_url(server.url + "/"))
    try:
        p = await b.pause_node(node, by=OP, reason="via the server")
        assert p.by == OP
        denied = await b.acquire("web", node)
        assert isinstance(denied, Denied)
        assert denied.reason is DenyReason.PAUSED
        assert denied.node == node
        assert denied.pause is not None
        assert denied.pause.reason == "via the server"
        assert (await b.status()).node_pauses[node].reason == "via the server"
        assert (await b.status("web")).node_pauses[node].reason == "via the server"
        events = await b.history(None, 100)
        assert any(e.action is Action.PAUSED and e.id == node for e in events)
        lifted = await b.resume_node(node, by=OP)
        assert lifted is not None
        assert node not in (await b.status()).node_pauses
    finally:
        await b.close()


# --- the CLI --------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/stagger.db"


def test_cli_pause_node_denies_its_lock_and_every_view_shows_it(sqlite_url: str) -> None:
    r = run("pause", "--node", "web-07", "--for", "2h", "--reason", "batch", backend=sqlite_url)
    assert r.code == 0, r.err
    assert "node web-07" in r.out
    lock = run("lock", "--group", "web", "--id", "web-07", "--json", backend=sqlite_url)
    assert lock.code == 1
    doc = lock.json()
    assert doc["reason"] == "paused"
    assert doc["node"] == "web-07"
    assert "node web-07 is paused until" in lock.err
    status = run("status", "--json", backend=sqlite_url).json()
    assert status["node_pauses"]["web-07"]["reason"] == "batch"
    assert "NODE PAUSE: node web-07" in run("status", backend=sqlite_url).out
    assert run("lock", "--group", "web", "--id", "web-08", backend=sqlite_url).code == 0
    run("unlock", "--group", "web", "--id", "web-08", backend=sqlite_url)
    # A node known to the fleet view (it held a slot) is marked paused there.
    nodes = run("nodes", "--json", backend=sqlite_url).json()["nodes"]
    assert all(n["pause"] is None for n in nodes)  # web-08 is not paused
    hist = run("history", "--json", backend=sqlite_url).json()["events"]
    assert [(e["action"], e["id"]) for e in hist if e["group"] == "*"] == [("paused", "web-07")]
    resumed = run("resume", "--node", "web-07", "--json", backend=sqlite_url)
    assert resumed.code == 0, resumed.err
    assert resumed.json()["lifted"]["reason"] == "batch"
    assert run("lock", "--group", "web", "--id", "web-07", backend=sqlite_url).code == 0


def test_cli_nodes_marks_a_paused_node(sqlite_url: str) -> None:
    assert run("lock", "--group", "web", "--id", "web-07", backend=sqlite_url).code == 0
    run("pause", "--node", "web-07", "--reason", "batch", backend=sqlite_url)
    (row,) = run("nodes", "--json", backend=sqlite_url).json()["nodes"]
    assert row["pause"]["reason"] == "batch"
    assert "PAUSED" in run("nodes", backend=sqlite_url).out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("pause", "--node", "web-07", "--group", "web", "--reason", "x"), "--node"),
        (("pause", "--node", "web 07", "--reason", "x"), "node id"),
        (("pause", "--node", "web-07"), "--reason"),
        (("resume", "--node", "web-07", "--all"), "--node"),
    ],
)
def test_cli_node_pause_input_errors_are_one_sentence_exit_2(
    sqlite_url: str, args: tuple[str, ...], words: str
) -> None:
    assert_one_sentence(run(*args, backend=sqlite_url), 2, words)


def test_cli_pause_node_through_the_server(server: RunningServer, client: httpx.Client) -> None:
    node = fresh_node()
    url = server.url + "/"
    r = run("pause", "--node", node, "--for", "1h", "--reason", "batch", "--json", backend=url)
    assert r.code == 0, r.err
    assert r.json()["node"] == node
    denied = client.post("/v1/pre-reboot", json=body(node, "web"), headers=PROTO)
    assert denied.json()["kind"] == "failed_lock_paused"
    assert node in run("status", "--json", backend=url).json()["node_pauses"]
    assert run("resume", "--node", node, "--json", backend=url).json()["lifted"] is not None


def test_a_node_pause_notification_names_the_node() -> None:
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    paused = Notification("paused", now, None, "web-07", OP, "batch")
    assert paused.sentence() == "reboots of node web-07 were paused by operator:alice: batch"
    resumed = Notification("resumed", now, None, "web-07", OP)
    assert resumed.sentence() == "reboots of node web-07 were resumed by operator:alice"

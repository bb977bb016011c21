"""Node reports, as every backend stores them: the contract (SQLite and a real etcd, through
the `backend` fixture), and the same through a real stagger server with the FleetLock client
(`POST /v1/nodes/{id}/report`), including a server that is not stagger."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from etcd_support import raw_client
from server_support import RunningServer, running
from stagger.backends.etcd import EtcdBackend
from stagger.backends.factory import open_backend
from stagger.backends.fleetlock import FleetLockBackend
from stagger.backends.protocol import Backend
from stagger.backends.sqlite import SqliteBackend
from stagger.core.cycle.node_state import CheckResult, State
from stagger.core.errors import ConfigError, InvalidInput
from stagger.core.node_report import NodeReport
from stagger.server.settings import ServerSettings, Token, digest

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def full_report(node_id: str = "web-1", group: str = "web") -> NodeReport:
    return NodeReport(
        id=node_id,
        group=group,
        state=State.VERIFYING,
        reason="health checks run after the reboot",
        needed_since=T0,
        detector="file",
        next_window=T0 + timedelta(days=1),
        last_reboot=T0 + timedelta(minutes=5),
        last_health=CheckResult(False, "http://localhost/health answered 503", T0),
        version="0.1.0",
    )


@pytest.fixture
async def clocked(any_backend_url: str) -> AsyncIterator[tuple[Backend, ManualClock]]:
    clock = ManualClock()
    b = open_backend(any_backend_url, clock=clock)
    yield b, clock
    await b.close()


# --- the contract ---------------------------------------------------------------------------


async def test_a_report_is_read_back_whole_and_stamped_with_the_backends_time(
    clocked: tuple[Backend, ManualClock],
) -> None:
    backend, clock = clocked
    stored = await backend.report(full_report())
    assert stored.updated_at == clock.now
    assert await backend.nodes() == [full_report().stamped(clock.now)]


async def test_a_new_report_replaces_the_nodes_last_one(backend: Backend) -> None:
    await backend.report(full_report())
    await backend.report(NodeReport("web-1", "web", State.IDLE, reason="no reboot is needed"))
    (node,) = await backend.nodes()
    assert (node.state, node.needed_since, node.last_health) == (State.IDLE, None, None)


async def test_a_node_that_moves_group_is_listed_once_in_its_new_group(backend: Backend) -> None:
    await backend.report(NodeReport("n1", "web", State.IDLE))
    await backend.report(NodeReport("n1", "db", State.IDLE))
    assert [(n.group, n.id) for n in await backend.nodes()] == [("db", "n1")]
    assert await backend.nodes("web") == []


async def test_nodes_are_sorted_by_group_then_id_and_filtered_by_group(backend: Backend) -> None:
    for group, node_id in [("web", "b"), ("db", "z"), ("web", "a"), ("db", "c")]:
        await backend.report(NodeReport(node_id, group, State.WAITING))
    assert [(n.group, n.id) for n in await backend.nodes()] == [
        ("db", "c"),
        ("db", "z"),
        ("web", "a"),
        ("web", "b"),
    ]
    assert [n.id for n in await backend.nodes("web")] == ["a", "b"]


async def test_nodes_of_an_invalid_group_is_refused(backend: Backend) -> None:
    with pytest.raises(InvalidInput):
        await backend.nodes("no/such")


async def test_an_empty_store_has_no_nodes(backend: Backend) -> None:
    assert await backend.nodes() == []


async def test_reports_do_not_touch_the_semaphores(backend: Backend) -> None:
    await backend.report(full_report())
    assert (await backend.status()).groups == ()
    assert await backend.history() == []


def test_a_report_with_an_invalid_group_cannot_be_made() -> None:
    with pytest.raises(InvalidInput):
        NodeReport("n1", "no spaces", State.IDLE)


# --- through a stagger server ----------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    tokens = (
        Token("admin", digest("admin-secret"), admin=True),
        Token("web-1", digest("web-secret"), admin=False, groups=frozenset({"web"})),
    )
    settings = ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db", tokens=tokens)
    with running(settings) as srv:
        yield srv


def client(server: RunningServer, token: str) -> FleetLockBackend:
    return FleetLockBackend.from_url(f"fleetlock+{server.url}/", token=token, retries=0)


async def test_a_report_sent_through_the_server_is_stored_and_listed(
    server: RunningServer,
) -> None:
    node = client(server, "web-secret")
    admin = client(server, "admin-secret")
    try:
        stored = await node.report(full_report())
        assert stored.updated_at is not None
        assert await admin.nodes() == [stored]
    finally:
        await node.close()
        await admin.close()


async def test_a_node_token_may_not_report_into_another_group(server: RunningServer) -> None:
    node = client(server, "web-secret")
    try:
        with pytest.raises(ConfigError, match="refused"):
            await node.report(full_report("db-1", "db"))
    finally:
        await node.close()


def test_listing_nodes_needs_an_admin_token(server: RunningServer) -> None:
    r = httpx.get(server.url + "/v1/nodes", headers={"authorization": "Bearer web-secret"})
    assert (r.status_code, r.json()["kind"]) == (403, "forbidden")


def test_a_fleetlock_only_client_appears_from_its_locks_alone(
    server: RunningServer,
) -> None:
    auth = {"authorization": "Bearer web-secret", "fleet-lock-protocol": "true"}
    body = {"client_params": {"id": "web-1", "group": "web"}}
    admin = {"authorization": "Bearer admin-secret"}
    assert httpx.post(server.url + "/v1/pre-reboot", json=body, headers=auth).status_code == 200
    (node,) = httpx.get(server.url + "/v1/nodes", headers=admin).json()["nodes"]
    assert (node["id"], node["source"], node["state"], node["holds_slot"]) == (
        "web-1",
        "locks",
        "holding",
        True,
    )
    assert httpx.post(server.url + "/v1/steady-state", json=body, headers=auth).status_code == 200
    (node,) = httpx.get(server.url + "/v1/nodes?group=web", headers=admin).json()["nodes"]
    assert (node["state"], node["holds_slot"]) == ("seen", False)
    assert node["last_reboot"] is not None


async def _report_at(url: str, report: NodeReport, ago: timedelta) -> None:
    b = open_backend(url, clock=lambda: datetime.now(UTC) - ago)
    await b.report(report)
    await b.close()


def test_a_node_is_silent_once_it_has_not_reported_for_silent_after(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    asyncio.run(_report_at(url, NodeReport("quiet", "web", State.IDLE), timedelta(minutes=20)))
    asyncio.run(_report_at(url, NodeReport("chatty", "web", State.IDLE), timedelta(0)))
    with running(ServerSettings(backend_url=url, silent_after=timedelta(minutes=15))) as srv:
        nodes = httpx.get(srv.url + "/v1/nodes").json()["nodes"]
    assert {n["id"]: n["silent"] for n in nodes} == {"chatty": False, "quiet": True}


# --- a FleetLock server that is not stagger ----------------------------------------------------


class _FleetLockOnly(BaseHTTPRequestHandler):
    """airlock-like: FleetLock's two endpoints and a plain-text 404 for everything else."""

    calls: list[str] = []  # noqa: RUF012 - one list per test, reset by the fixture

    def do_POST(self) -> None:
        self.calls.append(self.path)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path in ("/v1/pre-reboot", "/v1/steady-state"):
            self.send_response(200)
            self.end_headers()
            return
        self.send_response(404)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"404 page not found\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def foreign() -> Iterator[str]:
    _FleetLockOnly.calls = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FleetLockOnly)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"fleetlock+http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_a_server_that_is_not_stagger_gets_one_report_then_none_and_one_log_line(
    foreign: str, caplog: pytest.LogCaptureFixture
) -> None:
    b = FleetLockBackend.from_url(foreign, retries=0)
    try:
        with caplog.at_level(logging.WARNING, logger="stagger.backends.fleetlock"):
            for _ in range(3):
                returned = await b.report(full_report())
                assert returned.updated_at is None
        assert await b.acquire("web", "web-1") is not None
    finally:
        await b.close()
    reports = [c for c in _FleetLockOnly.calls if c.endswith("/report")]
    assert len(reports) == 1
    assert len([r for r in caplog.records if "node reports" in r.getMessage()]) == 1


async def test_reports_from_many_nodes_at_once_are_all_kept(backend: Backend) -> None:
    await asyncio.gather(
        *(backend.report(NodeReport(f"n{i:02d}", "web", State.IDLE)) for i in range(20))
    )
    assert len(await backend.nodes("web")) == 20


def test_metrics_count_reporting_nodes_by_group_and_state(server: RunningServer) -> None:
    asyncio.run(_send(server, full_report("web-1"), NodeReport("web-2", "web", State.IDLE)))
    metrics = httpx.get(server.url + "/metrics").text
    assert 'stagger_nodes{group="web",state="verifying"} 1.0' in metrics
    assert 'stagger_nodes{group="web",state="idle"} 1.0' in metrics


async def _send(server: RunningServer, *reports: NodeReport) -> None:
    node = client(server, "admin-secret")  # an admin may report for any node
    try:
        for r in reports:
            await node.report(r)
    finally:
        await node.close()


# --- a report this stagger cannot read --------------------------------------------------------


async def store_raw(
    backend: Backend, request: pytest.FixtureRequest, node_id: str, raw: str
) -> None:
    """Write a report's stored form by hand, as a newer agent (or a damaged disk) would."""
    await backend.ping()  # the store's tables exist from the first use
    if isinstance(backend, SqliteBackend):
        with sqlite3.connect(backend.path) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO nodes (id, grp, updated_at, data) VALUES (?, 'web', '', ?)",
                (node_id, raw),
            )
        return
    assert isinstance(backend, EtcdBackend)
    member = request.getfixturevalue("etcd_server").members[0]
    async with raw_client(member) as etcd:
        await etcd.put(backend.layout.node_key(node_id), raw.encode())


def from_newer_agent(node_id: str) -> str:
    return json.dumps({**NodeReport(node_id, "web", State.IDLE).to_dict(), "state": "napping"})


async def test_an_unreadable_report_leaves_out_only_its_node(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    await backend.report(NodeReport("ok-1", "web", State.IDLE))
    await store_raw(backend, request, "new-1", from_newer_agent("new-1"))
    assert [n.id for n in await backend.nodes()] == ["ok-1"]
    found = await backend.read_nodes()
    (problem,) = found.unreadable
    assert problem.key.endswith("new-1")
    assert "napping" in problem.error


async def test_an_unreadable_report_is_logged_once_however_often_it_is_read(
    backend: Backend, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    await store_raw(backend, request, "new-1", from_newer_agent("new-1"))
    with caplog.at_level(logging.WARNING, logger="stagger.backends"):
        for _ in range(3):
            await backend.nodes()
    (line,) = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert "new-1" in line
    assert "upgrade this stagger" in line


async def test_an_unreadable_report_can_be_forgotten(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    await store_raw(backend, request, "broken", "{not json")
    assert await backend.forget("broken", by="operator:alice") is True
    assert (await backend.read_nodes()).unreadable == ()


def test_the_api_lists_the_readable_nodes_and_names_the_unreadable_ones(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    asyncio.run(_report_at(url, NodeReport("ok-1", "web", State.IDLE), timedelta(0)))
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO nodes (id, grp, updated_at, data) VALUES ('new-1', 'web', '', ?)",
            (from_newer_agent("new-1"),),
        )
    with running(ServerSettings(backend_url=url)) as srv:
        r = httpx.get(srv.url + "/v1/nodes")
        page = httpx.get(srv.url + "/").text
        metrics = httpx.get(srv.url + "/metrics").text
    assert r.status_code == 200
    assert [n["id"] for n in r.json()["nodes"]] == ["ok-1"]
    (problem,) = r.json()["unreadable"]
    assert problem["key"] == "new-1"
    assert "1 stored node report cannot be read" in page
    assert 'stagger_nodes{group="web",state="idle"} 1.0' in metrics

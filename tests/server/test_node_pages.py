"""Paged, filtered listings through a real server on SQLite and a real etcd: `GET /v1/nodes`
and `GET /v1/history` with `limit`, `cursor` and filters, their totals, and cursors that stay
true while the fleet changes between two pages (docs/server.md, "Pages")."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from conftest import created
from server_support import RunningServer, running
from stagger.backends.factory import open_backend
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.server.settings import ServerSettings

FLEETLOCK = {"fleet-lock-protocol": "true"}


@pytest.fixture
def server(any_backend_url: str) -> Iterator[RunningServer]:
    with running(ServerSettings(backend_url=created(any_backend_url))) as srv:
        yield srv


def report(url: str, *reports: NodeReport, ago: timedelta = timedelta(0)) -> None:
    async def send() -> None:
        b = open_backend(url, clock=lambda: datetime.now(UTC) - ago)
        try:
            for r in reports:
                await b.report(r)
        finally:
            await b.close()

    asyncio.run(send())


def forget(url: str, node_id: str) -> None:
    async def run() -> None:
        b = open_backend(url)
        try:
            await b.forget(node_id, by="operator:test")
        finally:
            await b.close()

    asyncio.run(run())


def get(srv: RunningServer, path: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(srv.url + path, params=params)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def walk(srv: RunningServer, path: str, key: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following next_cursor."""
    pages: list[list[dict[str, Any]]] = []
    for _ in range(100):
        doc = get(srv, path, **params)
        pages.append(doc[key])
        params["cursor"] = doc["next_cursor"]
        if params["cursor"] is None:
            return pages
    raise AssertionError("the listing never ended")


def node(node_id: str, group: str = "web", state: State = State.IDLE) -> NodeReport:
    return NodeReport(node_id, group, state)


def test_pages_walk_the_fleet_once_in_group_then_id_order(server: RunningServer) -> None:
    url = server.settings.backend_url
    fleet = [node(f"n{i:02d}", group=("db", "web", "cache")[i % 3]) for i in range(23)]
    report(url, *fleet)
    pages = walk(server, "/v1/nodes", "nodes", limit=5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    seen = [(n["group"], n["id"]) for p in pages for n in p]
    assert seen == sorted((r.group, r.id) for r in fleet)


def test_a_node_added_or_removed_between_pages_is_never_repeated_nor_an_unchanged_one_skipped(
    server: RunningServer,
) -> None:
    url = server.settings.backend_url
    report(url, *(node(f"n{i:02d}") for i in range(20)))
    first = get(server, "/v1/nodes", limit=6)
    shown = [n["id"] for n in first["nodes"]]
    assert shown == [f"n{i:02d}" for i in range(6)]
    # Between the pages: nodes appear before and after the cursor, one shown and one not yet
    # shown are forgotten, and one not yet shown changes its state.
    report(url, node("n02x"), node("n12x"), node("n17", state=State.HALTED))
    forget(url, "n01")
    forget(url, "n15")
    rest = walk(server, "/v1/nodes", "nodes", limit=6, cursor=first["next_cursor"])
    later = [n["id"] for p in rest for n in p]
    assert not set(later) & set(shown)
    assert len(later) == len(set(later))
    unchanged = {f"n{i:02d}" for i in range(6, 20)} - {"n15", "n17"}
    assert unchanged <= set(later)
    assert "n12x" in later
    assert "n15" not in later
    assert "n02x" not in later
    assert "n17" in later


def test_filters_by_group_state_id_prefix_and_report_time(server: RunningServer) -> None:
    url = server.settings.backend_url
    report(url, node("old-1", "web"), node("old-2", "db", State.HALTED), ago=timedelta(hours=2))
    report(
        url,
        node("web-1", "web", State.HALTED),
        node("web-2", "web", State.WAITING),
        node("db-1", "db", State.HALTED),
    )

    def ids(**params: Any) -> list[str]:
        return [n["id"] for p in walk(server, "/v1/nodes", "nodes", **params) for n in p]

    assert ids(state="halted") == ["db-1", "old-2", "web-1"]
    assert ids(state="halted", group="web") == ["web-1"]
    assert ids(q="web-") == ["web-1", "web-2"]
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert ids(since=since) == ["db-1", "web-1", "web-2"]
    assert ids(state="silent") == ["old-2", "old-1"]  # db before web
    assert ids(state="halted", limit=1) == ["db-1", "old-2", "web-1"]


def test_totals_count_every_node_of_the_group_whatever_the_page(server: RunningServer) -> None:
    url = server.settings.backend_url
    report(url, node("quiet", "web", State.WAITING), ago=timedelta(hours=1))
    report(
        url,
        node("web-1", "web", State.HALTED),
        node("web-2", "web", State.WAITING),
        node("db-1", "db", State.IDLE),
    )
    doc = get(server, "/v1/nodes", limit=1, state="halted")
    assert doc["totals"] == {"halted": 1, "idle": 1, "waiting": 2}
    assert doc["silent"] == 1
    web = get(server, "/v1/nodes", group="web", limit=1)
    assert (web["totals"], web["silent"]) == ({"halted": 1, "waiting": 2}, 1)
    # A node moving to another group and state is counted once, where it is now.
    report(url, node("web-2", "db", State.REBOOTING))
    assert get(server, "/v1/nodes")["totals"] == {
        "halted": 1,
        "idle": 1,
        "rebooting": 1,
        "waiting": 1,
    }
    forget(url, "web-1")
    assert get(server, "/v1/nodes", group="web")["totals"] == {"waiting": 1}


def test_a_fleetlock_only_node_is_paged_filtered_and_counted(server: RunningServer) -> None:
    url = server.settings.backend_url
    report(url, node("a-reporter", "web"), node("z-reporter", "web"))
    body = {"client_params": {"id": "m-zincati", "group": "web"}}
    assert httpx.post(server.url + "/v1/pre-reboot", json=body, headers=FLEETLOCK).is_success
    pages = walk(server, "/v1/nodes", "nodes", limit=1)
    assert [(n["id"], n["source"]) for p in pages for n in p] == [
        ("a-reporter", "report"),
        ("m-zincati", "locks"),
        ("z-reporter", "report"),
    ]
    holding = get(server, "/v1/nodes", state="holding")
    assert [n["id"] for n in holding["nodes"]] == ["m-zincati"]
    assert holding["totals"] == {"holding": 1, "idle": 2}
    assert get(server, "/v1/nodes", state="idle")["nodes"][0]["id"] == "a-reporter"


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"state": "sleeping"}, "state"),
        ({"limit": "0"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"group": "no/such"}, "group"),
    ],
)
def test_a_bad_page_request_is_refused_with_what_to_do(
    server: RunningServer, params: dict[str, str], words: str
) -> None:
    r = httpx.get(server.url + "/v1/nodes", params=params)
    assert r.status_code == 400
    assert words in r.json()["value"]


def test_a_history_cursor_is_not_a_nodes_cursor(server: RunningServer) -> None:
    url = server.settings.backend_url
    report(url, node("n1"), node("n2"))
    for i in range(3):
        b = {"client_params": {"id": f"z{i}", "group": "web"}}
        httpx.post(server.url + "/v1/pre-reboot", json=b, headers=FLEETLOCK)
        httpx.post(server.url + "/v1/steady-state", json=b, headers=FLEETLOCK)
    cursor = get(server, "/v1/history", limit=1)["next_cursor"]
    assert cursor is not None
    r = httpx.get(server.url + "/v1/nodes", params={"cursor": cursor})
    assert r.status_code == 400
    assert "nodes listing" in r.json()["value"]


def lock_cycles(srv: RunningServer, ids: list[str], group: str = "web") -> None:
    for node_id in ids:
        b = {"client_params": {"id": node_id, "group": group}}
        assert httpx.post(srv.url + "/v1/pre-reboot", json=b, headers=FLEETLOCK).is_success
        assert httpx.post(srv.url + "/v1/steady-state", json=b, headers=FLEETLOCK).is_success


def test_history_pages_are_the_history_newest_first_once(server: RunningServer) -> None:
    lock_cycles(server, [f"h{i}" for i in range(7)])
    lock_cycles(server, ["d1", "d2"], group="db")
    whole = get(server, "/v1/history", limit=1000)["events"]
    assert len(whole) == 18
    pages = walk(server, "/v1/history", "events", limit=4)
    assert [e for p in pages for e in p] == whole


def test_history_written_between_pages_never_repeats_an_event(server: RunningServer) -> None:
    lock_cycles(server, [f"h{i}" for i in range(5)])
    first = get(server, "/v1/history", limit=3)
    lock_cycles(server, ["late"])
    rest = walk(server, "/v1/history", "events", limit=3, cursor=first["next_cursor"])
    events = first["events"] + [e for p in rest for e in p]
    assert len(events) == 10  # the 10 events before the first page, none of the later ones
    assert all(e["id"] != "late" for e in events)
    assert [(e["id"], e["action"]) for e in events] == [
        (f"h{i}", action) for i in reversed(range(5)) for action in ("released", "acquired")
    ]


def test_history_filters_by_group_node_prefix_and_time(server: RunningServer) -> None:
    lock_cycles(server, ["web-1", "web-2"])
    lock_cycles(server, ["db-1"], group="db")
    db = [e["id"] for p in walk(server, "/v1/history", "events", group="db", limit=1) for e in p]
    assert db == ["db-1", "db-1"]
    web2 = [e["id"] for p in walk(server, "/v1/history", "events", q="web-2", limit=1) for e in p]
    assert web2 == ["web-2", "web-2"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert get(server, "/v1/history", since=future) == {"events": [], "next_cursor": None}
    group = get(server, "/v1/groups/web/history", limit=1)
    assert group["events"][0]["id"] == "web-2"
    assert group["next_cursor"] is not None

"""Reads that cost the same in a fleet of any size: /metrics counts the nodes from the store's
summary (right on SQLite and a real etcd, without reading every node report), and the status
reads the reports of the holders only."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import backend_url, created
from server_support import running
from stagger.backends.factory import open_backend
from stagger.backends.sqlite import SqliteBackend
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport, StoredReports
from stagger.core.rollout_gate import Budget, Stage
from stagger.server.notify import NotifyTarget
from stagger.server.settings import ServerSettings
from webhook_support import Receiver


def report(url: str, *reports: NodeReport, ago: timedelta = timedelta(0)) -> None:
    async def send() -> None:
        b = open_backend(url, clock=lambda: datetime.now(UTC) - ago)
        try:
            for r in reports:
                await b.report(r)
        finally:
            await b.close()

    asyncio.run(send())


def node_gauges(text: str) -> dict[tuple[str, str], float]:
    found = re.findall(r'^stagger_nodes\{group="([^"]+)",state="([^"]+)"\} (\S+)$', text, re.M)
    return {(g, s): float(v) for g, s, v in found}


def test_a_scrape_counts_nodes_by_group_and_state_silent_apart(any_backend_url: str) -> None:
    url = created(any_backend_url)
    report(url, NodeReport("quiet", "web", State.WAITING), ago=timedelta(hours=1))
    report(
        url,
        NodeReport("web-1", "web", State.HALTED),
        NodeReport("web-2", "web", State.WAITING),
        NodeReport("db-1", "db", State.IDLE),
        NodeReport("db-2", "db", State.IDLE),
    )
    report(url, NodeReport("db-2", "web", State.WAITING))  # moved: counted where it is now
    with running(ServerSettings(backend_url=url)) as srv:
        metrics = httpx.get(srv.url + "/metrics").text
    assert node_gauges(metrics) == {
        ("web", "halted"): 1.0,
        ("web", "waiting"): 2.0,
        ("web", "silent"): 1.0,
        ("db", "idle"): 1.0,
    }


def scrape_until(url: str, wanted: dict[tuple[str, str], float]) -> str:
    """Scrape (bounded: 10 s) until the watched counts are used and show `wanted`."""
    text = ""
    for _ in range(200):
        text = httpx.get(url + "/metrics").text
        if "stagger_nodes_watched 1.0" in text and node_gauges(text) == wanted:
            return text
        time.sleep(0.05)
    assert "stagger_nodes_watched 1.0" in text, "the scrape used the server's watch"
    assert node_gauges(text) == wanted
    return text


def test_on_etcd_a_scrape_counts_from_the_servers_watch(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = created(backend_url("etcd", request, tmp_path))
    report(url, NodeReport("a", "web", State.IDLE), NodeReport("b", "db", State.WAITING))
    with running(ServerSettings(backend_url=url)) as srv:
        scrape_until(srv.url, {("web", "idle"): 1.0, ("db", "waiting"): 1.0})
        # Reports another client writes reach the next scrapes, and a silent one is apart.
        report(url, NodeReport("a", "db", State.HALTED))
        report(url, NodeReport("c", "web", State.IDLE), ago=timedelta(hours=1))
        want = {("db", "halted"): 1.0, ("db", "waiting"): 1.0, ("web", "silent"): 1.0}
        scrape_until(srv.url, want)


class NoReportReads(SqliteBackend):
    """A real SQLite store that fails any read of every report."""

    async def read_nodes(self, group: str | None = None) -> StoredReports:
        raise AssertionError("a read of every node report")


def test_a_scrape_reads_the_summary_not_the_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    report(url, *(NodeReport(f"n{i}", "web", State.IDLE) for i in range(30)))
    store = NoReportReads(str(tmp_path / "s.db"))
    with running(ServerSettings(backend_url=url), store) as srv:
        metrics = httpx.get(srv.url + "/metrics").text
    assert node_gauges(metrics) == {("web", "idle"): 30.0}
    assert "stagger_nodes_watched 0.0" in metrics, "SQLite's summary is read at each scrape"


def test_the_status_reads_the_holders_reports_only(any_backend_url: str) -> None:
    url = created(any_backend_url)
    report(url, *(NodeReport(f"n{i}", "web", State.IDLE) for i in range(10)))
    report(url, NodeReport("sick", "web", State.HALTED))
    with running(ServerSettings(backend_url=url)) as srv:
        body = {"client_params": {"id": "sick", "group": "web"}}
        fleetlock = {"fleet-lock-protocol": "true"}
        assert httpx.post(srv.url + "/v1/pre-reboot", json=body, headers=fleetlock).is_success
        status = httpx.get(srv.url + "/v1/status").json()
        group = httpx.get(srv.url + "/v1/groups/web").json()
    for g in (status["groups"][0], group):
        (hold,) = g["holds"]
        assert (hold["id"], hold["condition"], hold["node_state"]) == ("sick", "halted", "halted")


def test_the_status_never_reads_every_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    report(url, NodeReport("sick", "web", State.HALTED), NodeReport("fine", "web", State.IDLE))
    store = NoReportReads(str(tmp_path / "s.db"))
    with running(ServerSettings(backend_url=url), store) as srv:
        body = {"client_params": {"id": "sick", "group": "web"}}
        httpx.post(srv.url + "/v1/pre-reboot", json=body, headers={"fleet-lock-protocol": "true"})
        r = httpx.get(srv.url + "/v1/status")
    assert r.status_code == 200, r.text
    assert r.json()["groups"][0]["holds"][0]["condition"] == "halted"


def test_the_rollout_judge_and_the_notifier_never_read_every_report(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A halted node is judged (the budget pauses the fleet), listed in the rollout's status
    and notified, on a store that fails every read of every report; the nodes at rest are
    counted done, not named."""
    url = f"sqlite:///{tmp_path}/s.db"
    report(url, *(NodeReport(f"n{i}", "web", State.IDLE) for i in range(30)))

    async def begin() -> None:
        b = SqliteBackend(str(tmp_path / "s.db"))
        try:
            await b.set_rollout((Stage(("web",)),), Budget(1), by="operator:a")
        finally:
            await b.close()

    asyncio.run(begin())
    hook = NotifyTarget(
        name="hook",
        url=receiver.url("/hook"),
        format="json",
        events=frozenset({"halted"}),
        retries=3,
        backoff=0.05,
        timeout=5.0,
    )
    settings = ServerSettings(
        backend_url=url, notify=(hook,), notify_interval=0.05, rollout_interval=0.05
    )
    with running(settings, NoReportReads(str(tmp_path / "s.db"))) as srv:
        report(url, NodeReport("sick", "web", State.HALTED))
        (doc,) = receiver.wait_for("/hook", 1)
        rollout = httpx.get(srv.url + "/v1/rollout").json()
        status = httpx.get(srv.url + "/v1/status").json()
    assert (doc["event"], doc["id"]) == ("halted", "sick")
    (stage,) = rollout["stages"]
    assert (stage["halted"], stage["totals"]["done"], stage["done"]) == (["sick"], 30, [])
    assert "max_failures" in status["fleet_pause"]["reason"]

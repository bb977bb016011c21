"""`stagger nodes` pages: filters, --limit and --all (streamed page by page, as a table or one
JSON document), on a temp SQLite file and the session's real etcd, and through a real server
(`--server`, where each page is one GET /v1/nodes)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from cli_support import run
from conftest import created
from report_support import report
from server_support import RunningServer, running
from stagger.cli import nodes as nodes_cli
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.server.settings import ServerSettings


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes_cli, "PAGE", 2)


def fleet(url: str) -> None:
    report(url, NodeReport("old", "db", State.IDLE), ago=timedelta(hours=1))
    report(
        url,
        *(
            NodeReport(f"web-{i}", "web", State.HALTED if i % 3 == 0 else State.IDLE)
            for i in range(7)
        ),
        NodeReport("db-1", "db", State.HALTED),
    )


def test_state_filter_lists_only_those_nodes_with_the_fleet_totals(
    any_backend_url: str, small_pages: None
) -> None:
    fleet(any_backend_url)
    r = run("nodes", "--state", "halted", backend=any_backend_url)
    assert r.code == 0, r.err
    listed = re.findall(r"\b(web-\d|db-1|old)\b", r.out)
    assert listed == ["db-1", "web-0", "web-3", "web-6"]
    assert "9 node(s): 4 halted, 5 idle" in r.out
    assert "1 node(s) silent" in r.out


def test_limit_shows_the_first_nodes_and_says_more_match(any_backend_url: str) -> None:
    fleet(any_backend_url)
    r = run("nodes", "--limit", "3", backend=any_backend_url)
    assert r.code == 0, r.err
    assert re.findall(r"\b(web-\d|db-1|old)\b", r.out) == ["db-1", "old", "web-0"]
    assert "more nodes match than the 3 shown" in r.out
    doc = run("nodes", "--limit", "3", "--json", backend=any_backend_url).json()
    assert [n["id"] for n in doc["nodes"]] == ["db-1", "old", "web-0"]
    assert doc["next_cursor"] is not None


def test_all_json_streams_every_page_as_one_nodes_document(
    any_backend_url: str, small_pages: None
) -> None:
    fleet(any_backend_url)
    r = run("nodes", "--all", "--json", backend=any_backend_url)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert [n["id"] for n in doc["nodes"]] == ["db-1", "old", *(f"web-{i}" for i in range(7))]
    assert (doc["next_cursor"], doc["totals"], doc["silent"]) == (None, {"halted": 4, "idle": 5}, 1)
    halted = json.loads(
        run(
            "nodes",
            "--all",
            "--json",
            "--state",
            "halted",
            "--prefix",
            "web-",
            backend=any_backend_url,
        ).out
    )
    assert [n["id"] for n in halted["nodes"]] == ["web-0", "web-3", "web-6"]


def test_all_prints_every_node_in_order_page_by_page(
    any_backend_url: str, small_pages: None
) -> None:
    fleet(any_backend_url)
    r = run("nodes", "--all", "--since", "30m", backend=any_backend_url)
    assert r.code == 0, r.err
    assert re.findall(r"\b(web-\d|db-1|old)\b", r.out) == ["db-1", *(f"web-{i}" for i in range(7))]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--state", "asleep"), "state 'asleep'"),
        (("--all", "--limit", "5"), "--all and --limit"),
        (("--limit", "0"), "--limit 0"),
        (("--since", "last tuesday"), "--since"),
    ],
)
def test_a_bad_listing_option_is_one_sentence_and_exit_2(
    any_backend_url: str, args: tuple[str, ...], words: str
) -> None:
    r = run("nodes", *args, backend=created(any_backend_url))
    assert r.code == 2
    assert words in r.err
    assert "Traceback" not in r.err


@pytest.fixture
def server(any_backend_url: str) -> Iterator[RunningServer]:
    with running(ServerSettings(backend_url=created(any_backend_url))) as srv:
        yield srv


def test_through_a_server_each_page_is_one_request(
    server: RunningServer, small_pages: None
) -> None:
    fleet(server.settings.backend_url)

    def page_requests() -> float:
        text = httpx.get(server.url + "/metrics").text
        found = re.search(
            r'stagger_server_requests_total\{endpoint="nodes",kind="ok"\} (\S+)', text
        )
        return float(found.group(1)) if found else 0.0

    before = page_requests()
    r = run("nodes", "--all", "--json", backend=f"fleetlock+{server.url}")
    assert r.code == 0, r.err
    assert len(json.loads(r.out)["nodes"]) == 9
    assert page_requests() - before == 5  # 9 nodes, 2 a page

"""One shape for every JSON document: `stagger ... --json` straight on a SQLite store and the
HTTP API over the same store answer the same document (docs/cli.md, "JSON documents")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_support import run
from report_support import report, waiting
from server_support import RunningServer, running
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.server.settings import ServerSettings

# RFC 3339 in UTC with Z, the one time format of every document.
UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
TIME_KEYS = {
    "now", "since", "until", "last_seen", "expires_at", "time", "needed_since", "next_window",
    "last_reboot", "updated_at", "last_lock_activity", "at",
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/s.db"


@pytest.fixture
def server(store: str) -> Iterator[RunningServer]:
    with running(ServerSettings(backend_url=store)) as srv:
        yield srv


def fill(store: str) -> None:
    """Holds, a halted holder, a group pause with an end, a fleet-wide pause, a node's pause,
    an emergency reboot asked for a node, and reports."""
    assert run("set-max", "2", "--group", "web", "--hold-ttl", "1h", backend=store).code == 0
    assert run("lock", "--group", "web", "--id", "web-1", "--note", "n", backend=store).code == 0
    assert run("lock", "--group", "web", "--id", "web-2", backend=store).code == 0
    until = "2999-01-01T01:00:00+01:00"  # an offset: documents show it in UTC
    assert run("pause", "--group", "db", "--until", until, "--reason", "r", backend=store).code == 0
    assert run("pause", "--all", "--reason", "freeze", backend=store).code == 0
    node_pause = ("pause", "--node", "web-2", "--until", until, "--reason", "batch")
    assert run(*node_pause, backend=store).code == 0
    ask = ("need-reboot", "--now", "--node", "db-1", "--reason", "cve")
    assert run(*ask, backend=store).code == 0
    report(store, NodeReport("web-1", "web", State.HALTED, reason="health failed"))
    report(store, waiting("db-1", "db"))


def cli(store: str, *args: str) -> Any:
    r = run(*args, "--json", backend=store)
    assert r.code == 0, r.err
    return r.json()


def api(server: RunningServer, path: str) -> Any:
    r = httpx.get(server.url + path, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def without_now(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without the time of reading."""
    assert UTC_Z.match(doc["now"]), doc["now"]
    return {k: v for k, v in doc.items() if k != "now"}


def times(doc: Any) -> list[str]:
    if isinstance(doc, dict):
        found = [v for k, v in doc.items() if k in TIME_KEYS and isinstance(v, str)]
        return found + [t for v in doc.values() for t in times(v)]
    if isinstance(doc, list):
        return [t for v in doc for t in times(v)]
    return []


def test_status_is_the_same_document_from_the_cli_and_the_api(
    store: str, server: RunningServer
) -> None:
    fill(store)
    mine, theirs = cli(store, "status"), api(server, "/v1/status")
    assert without_now(mine) == without_now(theirs)
    (web,) = [g for g in mine["groups"] if g["group"] == "web"]
    assert (web["held"], web["free"], web["paused"]) == (2, 0, True)
    assert [h["condition"] for h in web["holds"]] == ["halted", "ok"]
    (db,) = [g for g in mine["groups"] if g["group"] == "db"]
    assert db["pause"]["until"] == "2999-01-01T00:00:00Z"
    assert mine["node_pauses"]["web-2"]["until"] == "2999-01-01T00:00:00Z"
    assert mine["urgent_reboots"]["db-1"]["reason"] == "cve"
    assert (web["node_pauses"], web["urgent_reboots"]) == (
        mine["node_pauses"],
        mine["urgent_reboots"],
    )
    one = cli(store, "status", "--group", "web")["groups"][0]
    assert one == api(server, "/v1/groups/web")
    assert all(UTC_Z.match(t) for t in times(mine)), times(mine)


def test_history_is_the_same_document_newest_first(store: str, server: RunningServer) -> None:
    fill(store)
    mine = cli(store, "history", "--limit", "50")
    assert mine == api(server, "/v1/history?limit=50")
    stamps = [datetime.fromisoformat(e["time"]) for e in mine["events"]]
    assert stamps == sorted(stamps, reverse=True)
    assert mine["events"][0]["action"] == "reboot_asked"  # the last act of fill()
    assert cli(store, "history", "--group", "web") == api(server, "/v1/groups/web/history")
    reverse = cli(store, "history", "--limit", "50", "--reverse")
    assert reverse["events"] == mine["events"][::-1]
    assert all(UTC_Z.match(t) for t in times(mine))


def test_nodes_is_the_same_document_from_the_cli_and_the_api(
    store: str, server: RunningServer
) -> None:
    fill(store)
    mine = cli(store, "nodes")
    assert without_now(mine) == without_now(api(server, "/v1/nodes"))
    assert {n["id"] for n in mine["nodes"]} == {"web-1", "web-2", "db-1"}
    assert {n["id"]: n["pause"] is not None for n in mine["nodes"]} == {
        "web-1": False,
        "web-2": True,
        "db-1": False,
    }
    assert all(UTC_Z.match(t) for t in times(mine)), times(mine)
    assert datetime.fromisoformat(mine["now"]) <= datetime.now(UTC)


def test_node_pause_and_reboot_ask_answers_are_the_admin_apis(
    store: str, server: RunningServer
) -> None:
    """pause/resume --node and need-reboot --now --node print what the admin API answers."""
    url = server.url
    mine = cli(store, "pause", "--node", "web-3", "--reason", "batch")
    theirs = httpx.post(f"{url}/v1/nodes/web-4/pause", json={"reason": "batch"}, timeout=10)
    assert theirs.status_code == 200, theirs.text
    assert mine.keys() == theirs.json().keys()
    assert (mine["group"], mine["node"], mine["pause"]["reason"]) == (None, "web-3", "batch")
    lifted = cli(store, "resume", "--node", "web-3")
    api_lifted = httpx.post(f"{url}/v1/nodes/web-4/resume", json={}, timeout=10).json()
    assert lifted.keys() == api_lifted.keys()
    assert (lifted["node"], lifted["lifted"]["reason"]) == ("web-3", "batch")
    asked = cli(store, "need-reboot", "--now", "--node", "web-3", "--reason", "cve")
    api_asked = httpx.post(f"{url}/v1/nodes/web-4/reboot", json={"reason": "cve"}, timeout=10)
    assert api_asked.status_code == 200, api_asked.text
    assert asked.keys() == api_asked.json().keys()
    assert asked["urgent"].keys() == api_asked.json()["urgent"].keys()
    assert UTC_Z.match(asked["urgent"]["since"]), asked
    cleared = cli(store, "need-reboot", "--cancel", "--node", "web-3")
    assert cleared == {"node": "web-3", "cleared": asked["urgent"]}
    api_cleared = httpx.delete(f"{url}/v1/nodes/web-4/reboot", timeout=10).json()
    assert api_cleared.keys() == cleared.keys()

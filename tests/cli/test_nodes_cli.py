"""`stagger nodes` and `stagger forget`, through the real entry point (cli_support.py's `run`)
on a temp SQLite file and the session's real etcd, and through a real stagger server
(--server)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cli_support import assert_one_sentence, run, run_script
from conftest import created
from report_support import T0, report, waiting
from server_support import RunningServer, running
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.server.settings import ServerSettings

# --- nodes --------------------------------------------------------------------------------------


def test_nodes_lists_each_node_with_group_state_and_detector(any_backend_url: str) -> None:
    report(any_backend_url, waiting("web-1"), NodeReport("db-1", "db", State.IDLE))
    r = run("nodes", backend=any_backend_url)
    assert r.code == 0, r.err
    row = next(line for line in r.out.splitlines() if "web-1" in line)
    for word in ("web", "waiting", " ago", "2036-02-28 04:00:00Z", "file: /run/reboot-required"):
        assert word in row
    assert "db-1" in r.out


def test_nodes_json_is_the_v1_nodes_document(any_backend_url: str) -> None:
    report(any_backend_url, waiting("web-1"))
    doc = run("nodes", "--json", backend=any_backend_url).json()
    assert set(doc) == {
        "now",
        "silent_after",
        "nodes",
        "unreadable",
        "next_cursor",
        "totals",
        "silent",
    }
    (node,) = doc["nodes"]
    assert (node["id"], node["group"], node["state"], node["source"], node["silent"]) == (
        "web-1",
        "web",
        "waiting",
        "report",
        False,
    )
    assert node["needed_since"] == T0.isoformat().replace("+00:00", "Z")


def test_nodes_of_one_group_leaves_out_the_others(any_backend_url: str) -> None:
    report(any_backend_url, waiting("web-1"), waiting("db-1", "db"))
    doc = run("nodes", "--group", "db", "--json", backend=any_backend_url).json()
    assert [n["id"] for n in doc["nodes"]] == ["db-1"]


def test_a_node_that_stopped_reporting_is_shown_silent(any_backend_url: str) -> None:
    report(any_backend_url, NodeReport("quiet", "web", State.IDLE), ago=timedelta(hours=2))
    r = run("nodes", backend=any_backend_url)
    assert "idle (SILENT)" in r.out
    assert "stagger forget NODE" in r.out
    doc = run("nodes", "--silent-after", "3h", "--json", backend=any_backend_url).json()
    assert doc["nodes"][0]["silent"] is False


def test_a_fleetlock_client_is_listed_from_its_locks(any_backend_url: str) -> None:
    assert run("lock", "--group", "web", "--id", "zincati-7", backend=any_backend_url).code == 0
    r = run("nodes", backend=any_backend_url)
    row = next(line for line in r.out.splitlines() if "zincati-7" in line)
    assert "holding" in row
    assert "locked" in row


def test_nodes_lists_the_readable_nodes_and_warns_about_an_unreadable_one(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    report(url, NodeReport("ok-1", "web", State.IDLE))
    newer = {**NodeReport("new-1", "web", State.IDLE).to_dict(), "state": "napping"}
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute(
            "INSERT INTO nodes (id, grp, updated_at, data) VALUES ('new-1', 'web', '', ?)",
            (json.dumps(newer),),
        )
    r = run("nodes", "--json", backend=url)
    assert r.code == 0
    assert [n["id"] for n in r.json()["nodes"]] == ["ok-1"]
    assert r.json()["unreadable"][0]["key"] == "new-1"
    assert "new-1 cannot be read" in r.err
    assert "upgrade this stagger" in r.err


def test_nodes_with_a_bad_silent_after_is_a_usage_error(tmp_path: Path) -> None:
    r = run("nodes", "--silent-after", "soon", backend=f"sqlite:///{tmp_path}/s.db")
    assert_one_sentence(r, 2, "--silent-after", "soon")


# --- forget ---------------------------------------------------------------------------------


def test_forget_removes_the_node_and_says_who_did_it(any_backend_url: str) -> None:
    report(any_backend_url, waiting("retired"), waiting("kept"))
    r = run("forget", "retired", "--json", backend=any_backend_url)
    assert r.code == 0, r.err
    assert r.json() == {"id": "retired", "by": "operator:alice", "forgotten": True}
    nodes = run("nodes", "--json", backend=any_backend_url).json()["nodes"]
    assert [n["id"] for n in nodes] == ["kept"]


def test_forgetting_an_unknown_node_changes_nothing_and_exits_0(any_backend_url: str) -> None:
    r = run("forget", "never-seen", backend=created(any_backend_url))
    assert r.code == 0
    assert "nothing changed" in r.out
    doc = run("forget", "never-seen", "--json", backend=any_backend_url).json()
    assert doc["forgotten"] is False


def test_forgetting_a_node_that_holds_a_slot_is_refused_with_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    report(url, waiting("busy"))
    assert run("lock", "--group", "web", "--id", "busy", backend=url).code == 0
    r = run_script("forget", "busy", backend=url)
    assert_one_sentence(r, 1, "busy holds a slot in group web", "stagger unlock --group web")
    assert [n["id"] for n in run("nodes", "--json", backend=url).json()["nodes"]] == ["busy"]


def test_forget_with_a_bad_id_is_a_usage_error(tmp_path: Path) -> None:
    r = run("forget", "bad\tid", backend=f"sqlite:///{tmp_path}/s.db")
    assert_one_sentence(r, 2, "node id")


# --- through a server ---------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")) as srv:
        yield srv


def test_nodes_and_forget_go_through_the_server(server: RunningServer) -> None:
    url = server.url + "/"
    assert run("set-max", "2", "--group", "web", backend=url).code == 0
    report(server.settings.backend_url, waiting("retired"), waiting("kept"))
    listed = run("nodes", "--json", backend=url).json()["nodes"]
    assert [n["id"] for n in listed] == ["kept", "retired"]
    assert run("forget", "retired", backend=url).code == 0
    last = run("history", "--json", backend=url).json()["events"][0]  # newest first
    assert (last["action"], last["id"], last["by"]) == ("forgotten", "retired", "operator:alice")
    assert [n["id"] for n in run("nodes", "--json", backend=url).json()["nodes"]] == ["kept"]


def test_a_holder_is_refused_through_the_server_too(server: RunningServer) -> None:
    url = server.url + "/"
    report(server.settings.backend_url, waiting("busy"))
    assert run("lock", "--group", "web", "--id", "busy", backend=url).code == 0
    r = run("forget", "busy", backend=url)
    assert_one_sentence(r, 1, "stagger unlock --group web --id busy")


def test_status_says_a_halted_holder_is_halted_not_ok(any_backend_url: str) -> None:
    assert run("lock", "--group", "web", "--id", "web-1", backend=any_backend_url).code == 0
    report(any_backend_url, NodeReport("web-1", "web", State.HALTED, reason="health failed"))
    table = run("status", "--group", "web", backend=any_backend_url).out
    row = next(line for line in table.splitlines() if "web-1" in line)
    assert "HALTED" in row
    assert " ok " not in row
    (web,) = run("status", "--json", backend=any_backend_url).json()["groups"]
    (hold,) = web["holds"]
    assert (hold["condition"], hold["node_state"], hold["stale"]) == ("halted", "halted", False)

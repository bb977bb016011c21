"""`stagger rollout set FILE.toml | status | clear`, through the real entry point, against a
temp SQLite file and the session's real etcd, and through a real stagger server (--server):
`status --json` is the document `GET /v1/rollout` answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli_support import assert_one_sentence, run, run_script
from conftest import created
from report_support import report, waiting
from server_support import RunningServer, running
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.rollout_status import MAX_STAGE_NAMES
from stagger.server.settings import ServerSettings

TABLE = """
[rollout]
max_failures = "5%"
[[rollout.stage]]
groups = ["canary"]
bake = "30m"
[[rollout.stage]]
groups = ["web", "api"]
close_after = "2h"
"""


@pytest.fixture
def url(any_backend_url: str) -> str:
    return created(any_backend_url)


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "rollout.toml"
    path.write_text(TABLE)
    return path


def test_rollout_set_then_status_lists_the_stages_in_order(url: str, plan: Path) -> None:
    assert run("rollout", "set", str(plan), backend=url).code == 0
    assert run("lock", "--group", "canary", "--id", "c1", backend=url).code == 0
    doc = run("rollout", "status", "--json", backend=url).json()
    assert doc["set"] is True
    assert doc["max_failures"] == "5%"
    assert doc["eta"] is None
    first, second = doc["stages"]
    assert (first["groups"], first["state"], first["pending"]) == (["canary"], "open", ["c1"])
    assert (second["groups"], second["state"]) == (["web", "api"], "waiting")
    assert second["close_after_seconds"] == 7200
    text = run("rollout", "status", backend=url).out
    assert "stage 1 [open] canary" in text
    assert "stage 2 [waiting] web, api" in text


def test_status_counts_every_node_and_names_the_first_up_to_the_bound(url: str, plan: Path) -> None:
    n = MAX_STAGE_NAMES
    report(url, *(waiting(f"c{i:04}", "canary") for i in range(n + 30)))
    report(url, NodeReport("sick", "canary", State.HALTED), NodeReport("ok", "canary", State.IDLE))
    assert run("rollout", "set", str(plan), backend=url).code == 0
    text = run("rollout", "status", backend=url).out
    assert f"stage 1 [halted] canary: 1 done, {n + 30} pending, 1 halted" in text
    assert "pending: c0000, c0001, " in text
    assert f"c{n - 1:04} … and 30 more" in text
    assert f"c{n:04}" not in text
    assert "    halted: sick\n" in text
    assert "to list them all: stagger nodes --group G --state S, G in canary" in text
    doc = run("rollout", "status", "--json", backend=url).json()
    first = doc["stages"][0]
    assert first["totals"] == {"done": 1, "pending": n + 30, "halted": 1, "left_behind": 0}
    # "ok" is at rest and no record names it: counted, not named
    assert (len(first["pending"]), first["done"]) == (n, [])
    assert first["truncated"] == ["done", "pending"]


def test_a_lock_in_a_waiting_stage_is_denied_naming_the_stage(url: str, plan: Path) -> None:
    run("rollout", "set", str(plan), backend=url)
    assert run("lock", "--group", "canary", "--id", "c1", backend=url).code == 0
    r = run("lock", "--group", "web", "--id", "w1", backend=url)
    assert r.code == 1
    assert "waiting for stage 1 (canary) to finish" in r.err


def test_rollout_clear_ends_it_and_says_so_once(url: str, plan: Path) -> None:
    run("rollout", "set", str(plan), backend=url)
    assert "cleared" in run("rollout", "clear", backend=url).out
    assert "no rollout" in run("rollout", "clear", backend=url).out
    assert run("rollout", "status", "--json", backend=url).json()["set"] is False


def test_a_file_with_a_group_in_two_stages_is_refused_in_one_sentence(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path}/stagger.db"
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[rollout]\n[[rollout.stage]]\ngroups = ["a"]\n[[rollout.stage]]\ngroups = ["a"]\n'
    )
    assert_one_sentence(
        run_script("rollout", "set", str(bad), backend=sqlite_url), 2, "one stage only"
    )
    missing = tmp_path / "none.toml"
    missing.write_text("[server]\n")
    assert_one_sentence(
        run_script("rollout", "set", str(missing), backend=sqlite_url), 2, "no [rollout] table"
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")) as srv:
        yield srv


def test_through_a_server_status_json_is_the_api_document(
    server: RunningServer, plan: Path
) -> None:
    target = server.url + "/"
    assert run_script("rollout", "set", str(plan), backend=target).code == 0
    cli = run_script("rollout", "status", "--json", backend=target).json()
    api = httpx.get(server.url + "/v1/rollout").json()
    # `now` and `eta` are times of each read; everything else is the same document.
    assert {k: v for k, v in cli.items() if k not in ("now", "eta")} == {
        k: v for k, v in api.items() if k not in ("now", "eta")
    }
    assert [s["groups"] for s in cli["stages"]] == [["canary"], ["web", "api"]]
    assert run_script("rollout", "clear", "--json", backend=target).json() == {"cleared": True}


def test_set_max_max_failures_sets_the_groups_budget(url: str) -> None:
    r = run("set-max", "3", "--group", "web", "--max-failures", "2", "--json", backend=url)
    assert r.code == 0, r.err
    assert r.json()["max_failures"] == "2"
    shown = run("set-max", "3", "--group", "web", "--max-failures", "10%", backend=url).out
    assert "max failures 10%" in shown
    assert_one_sentence(
        run("set-max", "3", "--group", "web", "--max-failures", "0", backend=url),
        2,
        "--max-failures",
    )


def test_set_max_failures_through_a_server(server: RunningServer) -> None:
    target = server.url + "/"
    r = run_script(
        "set-max", "2", "--group", "web", "--max-failures", "1", "--json", backend=target
    )
    assert r.code == 0, r.err
    assert r.json()["max_failures"] == "1"

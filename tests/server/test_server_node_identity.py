"""A node credential acts only for its own node id, on every node-facing endpoint, and
history records who really acted. A real server on SQLite with admin and node tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server_support import PROTO, RunningServer, body, running
from stagger.server.settings import ServerSettings, admin_tokens_from_file, node_tokens_from_file

ADMIN = "admin-secret-1"
WEB07 = "NODESECRET-web07"
WEB08 = "NODESECRET-web08"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    (tmp_path / "admin").write_text(f"{ADMIN}\n")
    (tmp_path / "nodes").write_text(
        f"web-07:{WEB07}:web\nweb-08:{WEB08}:web\ndb-1:NODESECRET-db1:db\n"
    )
    tokens = (
        *admin_tokens_from_file(tmp_path / "admin"),
        *node_tokens_from_file(tmp_path / "nodes"),
    )
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db", tokens=tokens, groups={"web": 3, "db": 1}
    )
    with running(settings) as srv:
        yield srv


def post(srv: RunningServer, path: str, secret: str, doc: Any = None) -> httpx.Response:
    headers = {**PROTO, "authorization": f"Bearer {secret}"}
    return httpx.post(srv.url + path, json=doc, headers=headers, timeout=10)


def holders(srv: RunningServer, group: str = "web") -> list[str]:
    r = httpx.get(f"{srv.url}/v1/groups/{group}", headers={"authorization": f"Bearer {ADMIN}"})
    return [h["id"] for h in r.json()["holds"]]


def history(srv: RunningServer) -> list[dict[str, Any]]:
    r = httpx.get(srv.url + "/v1/history", headers={"authorization": f"Bearer {ADMIN}"})
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def assert_mismatch(r: httpx.Response, token_for: str, names: str) -> None:
    assert r.status_code == 403, r.text
    doc = r.json()
    assert doc["kind"] == "forbidden"
    assert f"'{token_for}'" in doc["value"]
    assert f"'{names}'" in doc["value"]


def test_a_node_token_cannot_release_another_nodes_slot(server: RunningServer) -> None:
    assert post(server, "/v1/pre-reboot", WEB08, body("web-08", "web")).status_code == 200
    r = post(server, "/v1/steady-state", WEB07, body("web-08", "web"))
    assert_mismatch(r, "web-07", "web-08")
    assert holders(server) == ["web-08"]
    assert "released" not in [e["action"] for e in history(server)]


def test_a_node_token_cannot_take_a_slot_for_another_id(server: RunningServer) -> None:
    assert_mismatch(
        post(server, "/v1/pre-reboot", WEB07, body("web-99", "web")), "web-07", "web-99"
    )
    assert holders(server) == []


def test_a_node_token_cannot_heartbeat_another_ids_hold(server: RunningServer) -> None:
    assert post(server, "/v1/pre-reboot", WEB08, body("web-08", "web")).status_code == 200
    r = post(server, "/v1/groups/web/holds/web-08/touch", WEB07)
    assert_mismatch(r, "web-07", "web-08")
    assert post(server, "/v1/groups/web/holds/web-08/touch", WEB08).json()["held"] is True


def test_a_node_token_cannot_report_for_another_node(server: RunningServer) -> None:
    report = {"group": "web", "state": "halted", "reason": "health check failed"}
    assert_mismatch(post(server, "/v1/nodes/web-08/report", WEB07, report), "web-07", "web-08")
    r = post(server, "/v1/nodes/db-1/report", WEB07, report)
    assert_mismatch(r, "web-07", "db-1")
    assert post(server, "/v1/nodes/web-07/report", WEB07, report).status_code == 200
    nodes = httpx.get(server.url + "/v1/nodes", headers={"authorization": f"Bearer {ADMIN}"})
    assert [n["id"] for n in nodes.json()["nodes"]] == ["web-07"]


def test_a_node_token_cannot_move_its_report_to_a_group_it_has_no_right_to(
    server: RunningServer,
) -> None:
    r = post(server, "/v1/nodes/web-07/report", WEB07, {"group": "db", "state": "idle"})
    assert r.status_code == 403
    assert r.json()["kind"] == "forbidden"


def test_history_names_the_node_that_acted_and_the_admin_acting_for_one(
    server: RunningServer,
) -> None:
    assert post(server, "/v1/pre-reboot", WEB07, body("web-07", "web")).status_code == 200
    assert post(server, "/v1/pre-reboot", WEB08, body("web-08", "web")).status_code == 200
    assert post(server, "/v1/steady-state", ADMIN, body("web-08", "web")).status_code == 200
    released = [e for e in history(server) if e["action"] == "released"]
    assert [(e["id"], e["by"]) for e in released] == [("web-08", "admin:admin:1")]
    acquired = {e["id"]: e["by"] for e in history(server) if e["action"] == "acquired"}
    assert acquired == {"web-07": "web-07", "web-08": "web-08"}

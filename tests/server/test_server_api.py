"""The status/admin JSON API, the probes, /metrics and /openapi.json, over HTTP against a
real server on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from server_support import PROTO, RunningServer, body, running
from stagger.api import ErrorKind, GroupModel, HistoryModel, StatusModel
from stagger.server.settings import ServerSettings, UnknownGroups


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def lock(c: httpx.Client, node: str, group: str = "web") -> int:
    return c.post("/v1/pre-reboot", json=body(node, group), headers=PROTO).status_code


def test_status_lists_every_group_with_its_holds(client: httpx.Client) -> None:
    client.put("/v1/groups/web/max", json={"max": 2})
    lock(client, "a")
    status = StatusModel.model_validate(client.get("/v1/status").json())
    [web] = [g for g in status.groups if g.group == "web"]
    assert (web.max, web.held, [h.id for h in web.holds]) == (2, 1, ["a"])


def test_group_shows_holds_and_whether_they_are_stale(client: httpx.Client) -> None:
    lock(client, "a")
    g = GroupModel.model_validate(client.get("/v1/groups/web").json())
    assert [(h.id, h.stale) for h in g.holds] == [("a", False)]
    assert g.stale_after == 900.0


def test_set_max_takes_effect_at_once(client: httpx.Client) -> None:
    lock(client, "a")
    assert lock(client, "b") == 423
    r = client.put("/v1/groups/web/max", json={"max": 2, "by": "operator:alice"})
    assert r.json() == {"group": "web", "max": 2, "percent": False}
    assert lock(client, "b") == 200


@pytest.mark.parametrize("doc", [{"max": -1}, {"max": 10001}, {"max": "2"}, {}, {"max": 1.5}])
def test_set_max_rejects_a_bad_value(client: httpx.Client, doc: dict[str, object]) -> None:
    r = client.put("/v1/groups/web/max", json=doc)
    assert (r.status_code, r.json()["kind"]) == (400, "invalid_request")


def test_pause_and_resume_a_group(client: httpx.Client) -> None:
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = client.post("/v1/groups/web/pause", json={"reason": "incident", "until": until})
    assert r.status_code == 200
    assert r.json()["pause"]["reason"] == "incident"
    assert client.get("/v1/groups/web").json()["paused"] is True
    assert lock(client, "a") == 423
    r = client.post("/v1/groups/web/resume")
    assert r.json()["lifted"]["reason"] == "incident"
    assert lock(client, "a") == 200


def test_resuming_a_group_that_is_not_paused_lifts_nothing(client: httpx.Client) -> None:
    assert client.post("/v1/groups/web/resume", json={}).json()["lifted"] is None


@pytest.mark.parametrize(
    "doc", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x", "until": "2001-01-01T00:00:00Z"}]
)
def test_pause_needs_a_reason_and_a_future_end(client: httpx.Client, doc: dict[str, str]) -> None:
    r = client.post("/v1/groups/web/pause", json=doc)
    assert (r.status_code, r.json()["kind"]) == (400, "invalid_request")


def test_fleet_wide_pause_stops_every_group(client: httpx.Client) -> None:
    r = client.post("/v1/pause", json={"reason": "datacenter move"})
    assert r.json()["group"] is None
    assert lock(client, "a", "web") == 423
    assert lock(client, "b", "db") == 423
    assert client.get("/v1/status").json()["fleet_pause"]["reason"] == "datacenter move"
    client.post("/v1/resume")
    assert lock(client, "a", "web") == 200


def test_unlock_releases_another_ids_hold_and_records_who(client: httpx.Client) -> None:
    lock(client, "a")
    r = client.delete("/v1/groups/web/holds/a", params={"by": "operator:bob"})
    assert (r.json()["released"], r.json()["hold"]["id"]) == (True, "a")
    assert lock(client, "b") == 200
    events = HistoryModel.model_validate(client.get("/v1/groups/web/history").json()).events
    assert (events[1].action, events[1].by, events[1].id) == ("released", "operator:bob", "a")


def test_unlock_of_an_id_that_holds_nothing_releases_nothing(client: httpx.Client) -> None:
    r = client.delete("/v1/groups/web/holds/ghost")
    assert (r.status_code, r.json()["released"]) == (200, False)


def test_touch_reports_whether_the_id_still_holds(client: httpx.Client) -> None:
    lock(client, "a")
    assert client.post("/v1/groups/web/holds/a/touch").json()["held"] is True
    assert client.post("/v1/groups/web/holds/b/touch").json()["held"] is False


def test_history_is_newest_first_and_limited(client: httpx.Client) -> None:
    for n in "abc":
        lock(client, n, f"g{n}")
    events = client.get("/v1/history", params={"limit": 2}).json()["events"]
    assert [e["id"] for e in events] == ["c", "b"]


@pytest.mark.parametrize("limit", ["0", "-1", "x", "1001"])
def test_history_rejects_a_bad_limit(client: httpx.Client, limit: str) -> None:
    r = client.get("/v1/history", params={"limit": limit})
    assert (r.status_code, r.json()["kind"]) == (400, "invalid_request")


def test_a_bad_group_in_the_path_is_an_invalid_group(client: httpx.Client) -> None:
    r = client.get("/v1/groups/bad_group")
    assert (r.status_code, r.json()["kind"]) == (400, "invalid_group")


def test_wrong_method_on_the_api_is_405_with_a_kind(client: httpx.Client) -> None:
    r = client.post("/v1/status")
    assert (r.status_code, r.json()["kind"]) == (405, "method_not_allowed")
    assert "GET" in r.headers["allow"]


def test_a_body_over_64_kib_on_the_api_is_413(client: httpx.Client) -> None:
    r = client.post("/v1/pause", json={"reason": "x" * 70_000})
    assert (r.status_code, r.json()["kind"]) == (413, "payload_too_large")


def test_refuse_policy_hides_unknown_groups_from_the_api(tmp_path: Path) -> None:
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db", unknown_groups=UnknownGroups.REFUSE
    )
    with running(settings) as srv:
        r = httpx.get(srv.url + "/v1/groups/nope")
    assert (r.status_code, r.json()["kind"]) == (404, "unknown_group")


def test_healthz_answers_while_alive(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_answers_when_the_backend_does(client: httpx.Client) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_is_503_when_the_backend_cannot_be_reached(tmp_path: Path) -> None:
    # An etcd URL on a port where nothing listens: the server starts, but is not ready.
    with running(ServerSettings(backend_url="etcd://127.0.0.1:9?timeout=0.5")) as srv:
        r = httpx.get(srv.url + "/readyz", timeout=30)
        assert (r.status_code, r.json()["kind"]) == (503, ErrorKind.BACKEND_UNAVAILABLE.value)
        assert httpx.get(srv.url + "/healthz").status_code == 200
        r = httpx.post(srv.url + "/v1/pre-reboot", json=body("a"), headers=PROTO, timeout=30)
        assert (r.status_code, r.json()["kind"]) == (503, "backend_unavailable")
        metrics = httpx.get(srv.url + "/metrics", timeout=30).text
    assert 'stagger_server_backend_errors_total{operation="pre-reboot"} 1.0' in metrics


def test_metrics_count_requests_by_endpoint_and_kind(client: httpx.Client) -> None:
    lock(client, "a")
    lock(client, "b")
    text = client.get("/metrics").text
    assert 'stagger_server_requests_total{endpoint="pre-reboot",kind="ok"} 1.0' in text
    assert (
        'stagger_server_requests_total{endpoint="pre-reboot",kind="failed_lock_semaphore_full"}'
        " 1.0" in text
    )
    assert 'stagger_server_request_duration_seconds_count{endpoint="pre-reboot"} 2.0' in text


def test_metrics_show_holders_max_paused_and_stale_per_group(client: httpx.Client) -> None:
    client.put("/v1/groups/web/max", json={"max": 3})
    lock(client, "a")
    client.post("/v1/groups/web/pause", json={"reason": "x"})
    text = client.get("/metrics").text
    for line in (
        'stagger_group_holders{group="web"} 1.0',
        'stagger_group_max{group="web"} 3.0',
        'stagger_group_paused{group="web"} 1.0',
        'stagger_group_stale_holds{group="web"} 0.0',
    ):
        assert line in text


def test_openapi_document_describes_every_route(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path in (
        "/v1/pre-reboot",
        "/v1/steady-state",
        "/v1/status",
        "/v1/groups/{group}",
        "/v1/groups/{group}/history",
        "/v1/groups/{group}/max",
        "/v1/groups/{group}/pause",
        "/v1/groups/{group}/resume",
        "/v1/groups/{group}/holds/{id}",
    ):
        assert path in doc["paths"]
    kinds = doc["components"]["schemas"]["ErrorKind"]["enum"]
    assert set(kinds) == {k.value for k in ErrorKind}

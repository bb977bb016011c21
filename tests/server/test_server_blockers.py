"""Fleet-wide blockers through a real server: a real HTTP server on 127.0.0.1 speaks
Alertmanager's `GET /api/v2/alerts` (the v2 gettableAlert shape, and its active / silenced /
inhibited / unprocessed query parameters); FleetLock clients are denied with kind `blocked`
while a matching alert fires, and granted once it resolves. The blocker is checked every
second (the shortest interval), so each wait below is bounded by a few checks."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trustme

from cli_support import assert_one_sentence, run
from conftest import backend_url
from server_support import PROTO, body, free_socket, running, server_process
from stagger.api import ErrorKind
from stagger.backends.factory import open_backend
from stagger.backends.fleetlock import server_backend_url
from stagger.core.blockers import Alert, Blocker, BlockerKind, judge_alerts, parse_matcher
from stagger.core.semaphore import Denied, DenyReason, Granted
from stagger.server.blockers import BlockerWatch
from stagger.server.metrics import Metrics
from stagger.server.settings import ServerSettings

WAIT = 15.0  # seconds: the longest a test waits for a verdict to change
SECOND = timedelta(seconds=1)


def alert(name: str, state: str = "active", **labels: str) -> dict[str, Any]:
    """One alert as Alertmanager's v2 API answers it (gettableAlert)."""
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} fires"},
        "receivers": [{"name": "ops"}],
        "fingerprint": uuid.uuid4().hex[:16],
        "startsAt": "2026-03-02T11:00:00.000Z",
        "updatedAt": "2026-03-02T11:00:00.000Z",
        "endsAt": "2026-03-02T13:00:00.000Z",
        "generatorURL": "http://prometheus:9090/graph",
        "status": {
            "state": state,
            "silencedBy": ["silence-1"] if state == "suppressed" else [],
            "inhibitedBy": [],
        },
    }


@dataclass
class FakeAlertmanager:
    """Alertmanager's alerts endpoint: the alerts it holds, filtered by state the way the v2
    API's boolean parameters filter them (it leaves `filter` to the client, as a proxy or an
    old Alertmanager might: the server must check the matchers itself)."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str) -> tuple[int, bytes]:
        url = urlsplit(path)
        if url.path != "/api/v2/alerts":
            return 404, b"not found"
        query = parse_qs(url.query)
        with self.lock:
            self.queries.append(query)
            if self.status != 200:
                return self.status, b"internal error"

            def wanted(a: dict[str, Any]) -> bool:
                state = a["status"]["state"]
                flag = {"active": "active", "suppressed": "silenced"}.get(state, state)
                return query.get(flag, ["true"])[0] == "true"

            return 200, json.dumps([a for a in self.alerts if wanted(a)]).encode()

    def set(self, *alerts: dict[str, Any], status: int = 200) -> None:
        with self.lock:
            self.alerts = list(alerts)
            self.status = status


@contextmanager
def serving_alertmanager(
    tls: ssl.SSLContext | None = None,
) -> Iterator[tuple[FakeAlertmanager, str]]:
    """A FakeAlertmanager on 127.0.0.1 (HTTPS with `tls`) and its base URL."""
    fake = FakeAlertmanager()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, payload = fake.answer(self.path)
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield fake, f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def alertmanager() -> Iterator[tuple[FakeAlertmanager, str]]:
    with serving_alertmanager() as served:
        yield served


def am_blocker(url: str, *matchers: str, groups: frozenset[str] | None = None) -> Blocker:
    return Blocker(
        "critical",
        BlockerKind.ALERTMANAGER,
        url,
        tuple(parse_matcher(m) for m in matchers),
        groups,
        interval=SECOND,
        timeout=SECOND,
    )


@contextmanager
def serving(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    *blockers: Blocker,
    blocking: bool | None = None,
    kind: str = "sqlite",
) -> Iterator[httpx.Client]:
    """A client of a server with `blockers` (its base_url is the server's), once every
    blocker was checked and is `blocking` (None: at once)."""
    settings = ServerSettings(backend_url=backend_url(kind, request, tmp_path), blockers=blockers)
    with running(settings) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        if blocking is not None:
            wait_for(client, checked(blocking))
        yield client


def lock(client: httpx.Client, node_id: str, group: str) -> httpx.Response:
    return client.post("/v1/pre-reboot", json=body(node_id, group), headers=PROTO)


def blockers_doc(client: httpx.Client) -> list[dict[str, Any]]:
    r = client.get("/v1/blockers")
    assert r.status_code == 200, r.text
    docs: list[dict[str, Any]] = r.json()["blockers"]
    return docs


def wait_for(client: httpx.Client, what: Callable[[list[dict[str, Any]]], bool]) -> None:
    """Until the server's blockers document satisfies `what` (a few checks at most)."""
    deadline = time.monotonic() + WAIT
    while not what(blockers_doc(client)):
        assert time.monotonic() < deadline, blockers_doc(client)
        time.sleep(0.05)


def checked(blocking: bool) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda docs: all(d["checked_at"] and d["blocking"] is blocking for d in docs)


@pytest.mark.parametrize("kind", ["sqlite", "etcd"])
def test_a_firing_alert_denies_pre_reboot_with_kind_blocked_until_it_resolves(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    alertmanager: tuple[FakeAlertmanager, str],
    kind: str,
) -> None:
    if kind == "etcd":
        pytest.importorskip("stagger.backends.etcd")
    fake, url = alertmanager
    fake.set(alert("HostDown", severity="critical", team="web"))
    blocker = am_blocker(url, "severity=critical", "team=~web|api")
    with serving(request, tmp_path, blocker, kind=kind, blocking=True) as client:
        r = lock(client, "web-01", "web")
        assert r.status_code == 423
        doc = r.json()
        assert doc["kind"] == ErrorKind.BLOCKED.value
        assert doc["blockers"] == ["critical"]
        assert doc["value"] == (
            "reboots are blocked: blocker critical: 1 alert firing: HostDown "
            "(severity=critical, team=web)"
        )
        assert "max" not in doc
        # a denial writes nothing: nobody holds a slot
        assert all(g["holds"] == [] for g in client.get("/v1/status").json()["groups"])

        fake.set()  # the alert resolves
        wait_for(client, checked(False))
        assert lock(client, "web-01", "web").status_code == 200


def test_silenced_inhibited_and_other_teams_alerts_do_not_block(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(
        alert("Silenced", state="suppressed", severity="critical", team="web"),
        alert("OtherTeam", severity="critical", team="db"),
        alert("Warning", severity="warning", team="web"),
    )
    blocker = am_blocker(url, "severity=critical", "team=~web|api")
    with serving(request, tmp_path, blocker, blocking=False) as client:
        assert lock(client, "web-01", "web").status_code == 200
    query = fake.queries[0]
    assert query["active"] == ["true"]
    assert query["silenced"] == ["false"]
    assert query["inhibited"] == ["false"]
    assert query["filter"] == ['severity="critical"', 'team=~"web|api"']


def test_an_unreachable_alertmanager_blocks_and_says_so(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    sock = free_socket()  # bound, never listening: connections are refused
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        with serving(request, tmp_path, am_blocker(dead), blocking=True) as client:
            (doc,) = blockers_doc(client)
            assert doc["reachable"] is False
            r = lock(client, "web-01", "web")
            assert r.status_code == 423
            assert r.json()["kind"] == "blocked"
            assert "could not be checked" in r.json()["value"]
            assert "fail closed" in r.json()["value"]
    finally:
        sock.close()


def test_an_alertmanager_error_answer_blocks(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(status=500)
    with serving(request, tmp_path, am_blocker(url), blocking=True) as client:
        r = lock(client, "web-01", "web")
        assert r.json()["kind"] == "blocked"
        assert "answered HTTP 500" in r.json()["value"]


def test_an_http_blocker_blocks_until_its_url_answers_2xx(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(status=503)
    gate = Blocker("gate", BlockerKind.HTTP, url + "/api/v2/alerts", interval=SECOND)
    with serving(request, tmp_path, gate, blocking=True) as client:
        r = lock(client, "web-01", "web")
        assert r.json()["kind"] == "blocked"
        assert "answered HTTP 503" in r.json()["value"]
        fake.set(status=200)
        wait_for(client, checked(False))
        assert lock(client, "web-01", "web").status_code == 200


def test_a_blocker_for_some_groups_leaves_the_others_alone(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(alert("HostDown"))
    blocker = am_blocker(url, groups=frozenset({"web"}))
    with serving(request, tmp_path, blocker, blocking=True) as client:
        assert lock(client, "web-01", "web").json()["kind"] == "blocked"
        assert lock(client, "db-01", "db").status_code == 200


def test_a_holder_asking_again_keeps_its_slot_while_blocked_and_a_full_group_says_blocked(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    with serving(request, tmp_path, am_blocker(url), blocking=False) as client:
        assert lock(client, "web-01", "web").status_code == 200
        fake.set(alert("HostDown"))
        wait_for(client, checked(True))
        assert lock(client, "web-01", "web").status_code == 200  # recursive: nothing new
        # the group is full too; the blocker is named (it is what lifts by itself)
        assert lock(client, "web-02", "web").json()["kind"] == "blocked"
        assert (
            client.post("/v1/steady-state", json=body("web-01", "web"), headers=PROTO).status_code
            == 200
        )


def test_a_paused_group_is_named_paused_before_a_blocker(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(alert("HostDown"))
    with serving(request, tmp_path, am_blocker(url), blocking=True) as client:
        r = client.post("/v1/groups/web/pause", json={"reason": "freeze"})
        assert r.status_code == 200, r.text
        assert lock(client, "web-01", "web").json()["kind"] == "failed_lock_paused"


def test_status_metrics_and_the_blockers_document_show_the_verdict(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(alert("HostDown", severity="critical"))
    blocker = am_blocker(url, "severity=critical")
    with serving(request, tmp_path, blocker, blocking=True) as client:
        (doc,) = client.get("/v1/status").json()["blockers"]
        assert doc["name"] == "critical"
        assert doc["kind"] == "alertmanager"
        assert doc["groups"] is None
        assert doc["matchers"] == ["severity=critical"]
        assert doc["alerts"] == ["HostDown"]
        assert doc["interval"] == 1.0
        metrics = client.get("/metrics").text
        assert 'stagger_blocker_blocking{blocker="critical"} 1.0' in metrics
        assert 'stagger_blocker_up{blocker="critical"} 1.0' in metrics
        assert 'stagger_server_requests_total{endpoint="pre-reboot",kind="blocked"}' not in metrics
        lock(client, "web-01", "web")
        metrics = client.get("/metrics").text
        assert 'stagger_server_requests_total{endpoint="pre-reboot",kind="blocked"} 1.0' in metrics

        fake.set()
        wait_for(client, checked(False))
        assert 'stagger_blocker_blocking{blocker="critical"} 0.0' in client.get("/metrics").text


def test_stagger_status_through_the_server_shows_the_blockers(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(alert("HostDown", severity="critical"))
    blocker = am_blocker(url, "severity=critical")
    with serving(request, tmp_path, blocker, blocking=True) as client:
        r = run("status", "--json", backend=str(client.base_url))
        assert r.code == 0, r.err
        (doc,) = r.json()["blockers"]
        assert doc["blocking"] is True
        assert doc["alerts"] == ["HostDown"]
        text = run("status", backend=str(client.base_url))
        assert text.code == 0, text.err
        assert "BLOCKER critical (alertmanager, every group) BLOCKS: blocker critical: 1 alert" in (
            text.out
        )


def test_status_of_a_store_read_directly_has_no_blockers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    assert run("set-max", "1", "--group", "web", backend=url).code == 0
    r = run("status", "--json", backend=url)
    assert r.code == 0, r.err
    assert r.json()["blockers"] == []


async def test_a_stagger_agent_through_the_server_reads_a_blocked_denial(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(alert("HostDown"))
    with serving(request, tmp_path, am_blocker(url), blocking=True) as client:
        backend = open_backend(server_backend_url(str(client.base_url)))
        try:
            got = await backend.acquire("web", "web-01")
            assert isinstance(got, Denied)
            assert got.reason is DenyReason.BLOCKED
            assert (
                got.sentence() == "reboots are blocked: blocker critical: 1 alert firing: HostDown"
            )
            fake.set()
            wait_for(client, checked(False))
            assert isinstance(await backend.acquire("web", "web-01"), Granted)
        finally:
            await backend.close()


def test_a_server_without_blockers_answers_an_empty_list(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with serving(request, tmp_path) as client:
        assert blockers_doc(client) == []
        assert client.get("/v1/status").json()["blockers"] == []
        assert lock(client, "web-01", "web").status_code == 200


def test_stagger_lock_through_the_server_exits_1_naming_the_blocker(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(alert("HostDown"))
    with serving(request, tmp_path, am_blocker(url), blocking=True) as client:
        r = run("lock", "--group", "web", "--id", "web-01", "--json", backend=str(client.base_url))
        assert r.code == 1, r.err
        assert r.json()["reason"] == "blocked"
        assert "reboots are blocked: blocker critical: 1 alert firing: HostDown" in r.err


def test_the_dashboard_shows_each_blocker_and_why(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(alert("Host<Down>\x1b[2J"))
    gate = Blocker("gate", BlockerKind.HTTP, url + "/api/v2/alerts", groups=frozenset({"db"}))
    with serving(request, tmp_path, am_blocker(url), gate, blocking=None) as client:
        wait_for(client, lambda docs: all(d["checked_at"] for d in docs))
        for path in ("/", "/dashboard/live"):
            page = client.get(path).text
            assert 'data-blocker="critical" data-blocking="yes"' in page
            assert 'data-blocker="gate" data-blocking="no"' in page
            assert "(http, groups db)" in page
            # the alert's name is the monitoring's text: escaped for HTML and the terminal
            assert "Host&lt;Down&gt;\\x1b[2J" in page
            assert "\x1b" not in page


def test_the_dashboard_has_no_blockers_block_without_blockers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with serving(request, tmp_path) as client:
        assert 'id="blockers"' not in client.get("/").text


def test_stagger_server_reads_blockers_from_its_configuration(
    tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    fake, url = alertmanager
    fake.set(alert("HostDown", severity="critical"))
    config = (
        f'[[blocker]]\nname = "pager"\nkind = "alertmanager"\nurl = "{url}"\n'
        'matchers = ["severity=critical"]\ngroups = ["web"]\ninterval = "1s"\n'
    )
    with (
        server_process(tmp_path, config) as server,
        httpx.Client(base_url=server, timeout=10) as client,
    ):
        wait_for(client, checked(True))
        r = lock(client, "web-01", "web")
        assert r.json()["kind"] == "blocked"
        assert r.json()["blockers"] == ["pager"]
        assert lock(client, "db-01", "db").status_code == 200


def test_an_https_alertmanager_is_verified_with_the_blockers_ca_cert(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with serving_alertmanager(tls) as (_, url):
        untrusted = am_blocker(url)
        trusted = replace(untrusted, name="trusted", ca_cert=str(tmp_path / "ca.pem"))
        with serving(request, tmp_path, untrusted, trusted) as client:
            wait_for(client, lambda docs: all(d["checked_at"] for d in docs))
            by_name = {d["name"]: d for d in blockers_doc(client)}
            assert by_name["trusted"]["blocking"] is False
            assert by_name["critical"]["blocking"] is True
            assert "CERTIFICATE_VERIFY_FAILED" in by_name["critical"]["reason"]


def test_a_ca_cert_that_cannot_be_read_stops_the_server_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[server]\nbackend = "sqlite:///{tmp_path}/s.db"\n'
        '[[blocker]]\nkind = "http"\nurl = "https://127.0.0.1:1/"\n'
        f'ca_cert = "{tmp_path}/missing.pem"\n'
    )
    r = run("server", "--config", str(config), backend=None)
    assert_one_sentence(r, 2, "blocker-1", "ca_cert", "missing.pem")


def test_stagger_status_of_one_group_lists_the_blockers_that_hold_it_back(
    request: pytest.FixtureRequest, tmp_path: Path, alertmanager: tuple[FakeAlertmanager, str]
) -> None:
    _, url = alertmanager
    web = am_blocker(url, groups=frozenset({"web"}))
    every = replace(am_blocker(url), name="every")
    with serving(request, tmp_path, web, every, blocking=False) as client:
        assert client.put("/v1/groups/db/max", json={"max": 1}).status_code == 200
        r = run("status", "--group", "db", "--json", backend=str(client.base_url))
        assert r.code == 0, r.err
        assert [b["name"] for b in r.json()["blockers"]] == ["every"]


def test_the_watch_counts_verdict_changes_only() -> None:
    """What a cached page of the verdicts (the dashboard's) is checked against."""
    blocker = am_blocker("http://127.0.0.1:9")
    watch = BlockerWatch([blocker], Metrics())
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert watch.blocked("web") is not None  # not checked yet: fail closed
    watch.record(blocker, judge_alerts(blocker, [], now))
    assert watch.version == 1
    assert watch.blocked("web") is None
    watch.record(blocker, judge_alerts(blocker, [], now + SECOND))  # same verdict, later
    assert watch.version == 1
    watch.record(blocker, judge_alerts(blocker, [Alert({"alertname": "A"}, "active")], now))
    assert watch.version == 2
    assert watch.blocked("web") is not None

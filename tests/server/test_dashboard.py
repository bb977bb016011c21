"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real
server on SQLite, fed by real clients: node reports through the FleetLock client backend and
a FleetLock-only node (as Zincati) through the raw protocol."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import WAIT_MS, needs_chromium
from server_support import PROTO, RunningServer, body, running
from stagger.backends.fleetlock import FleetLockBackend
from stagger.core.cycle.node_state import CheckResult, State
from stagger.core.node_report import NodeReport
from stagger.server.settings import ServerSettings, Token, digest

STAGGER = str(Path(sys.executable).parent / "stagger")
ADMIN = "admin-secret"
NODE = "node-secret"

pytestmark = needs_chromium


def report(server: RunningServer, r: NodeReport, token: str = ADMIN) -> None:
    """Sent with the admin token: a node token acts only for its own node."""

    async def send() -> None:
        b = FleetLockBackend.from_url(f"fleetlock+{server.url}/", token=token, retries=0)
        try:
            await b.report(r)
        finally:
            await b.close()

    # Playwright's sync API keeps an event loop running in this thread: use another one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, send()).result(30)


def admin(server: RunningServer, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN}"}
    return httpx.request(method, server.url + path, headers=headers, **kw)


def fleetlock(server: RunningServer, op: str, node_id: str, group: str) -> httpx.Response:
    headers = {**PROTO, "authorization": f"Bearer {ADMIN}"}  # for any node
    return httpx.post(f"{server.url}/v1/{op}", json=body(node_id, group), headers=headers)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[RunningServer]:
    """A server with auth on, groups web (max 2) and db (max 1), two reporting agents (one
    holding a slot in web), a halted node in db, and a Zincati-like node holding in web."""
    tokens = (
        Token("admin:ops", digest(ADMIN), admin=True),
        Token("nodes", digest(NODE), admin=False, groups=frozenset({"*"})),
    )
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db", tokens=tokens, groups={"web": 2, "db": 1}
    )
    now = datetime.now(UTC)
    with running(settings) as srv:
        assert fleetlock(srv, "pre-reboot", "web-1", "web").status_code == 200
        assert fleetlock(srv, "pre-reboot", "zincati-9", "web").status_code == 200
        report(
            srv,
            NodeReport(
                "web-1",
                "web",
                State.DRAINING,
                reason="pre-reboot hooks run",
                needed_since=now - timedelta(hours=1),
                detector="file",
                next_window=now + timedelta(hours=20),
                version="0.1.0",
            ),
        )
        report(srv, NodeReport("web-2", "web", State.WAITING, needed_since=now, detector="file"))
        assert fleetlock(srv, "pre-reboot", "db-1", "db").status_code == 200
        report(
            srv,
            NodeReport(
                "db-1",
                "db",
                State.HALTED,
                reason="health failed after the reboot",
                needed_since=now - timedelta(hours=2),
                last_reboot=now - timedelta(minutes=30),
                last_health=CheckResult(False, "postgres did not answer", now),
            ),
        )
        yield srv


def status_through_the_cli(server: RunningServer) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "STAGGER_BACKEND"}
    url = server.url.replace("http://", f"http://admin:{ADMIN}@") + "/"
    r = subprocess.run(
        [STAGGER, "status", "--server", url, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_the_page_shows_groups_holders_and_nodes(fleet: RunningServer, page: Any) -> None:
    page.goto(fleet.url + "/")
    web = page.locator("tbody.group[data-group=web]")
    assert web.locator(".count").inner_text() == "2 of max 2 slot(s) held"
    assert web.locator("tr.hold").all_inner_texts()[0].startswith("web-1")
    assert web.locator("tr[data-holder=zincati-9]").count() == 1
    nodes = page.locator("table.nodes")
    assert nodes.locator("tr[data-node=web-1] .state").inner_text() == "draining"
    assert nodes.locator("tr[data-node=web-2] .state").inner_text() == "waiting"
    assert nodes.locator("tr[data-node=zincati-9] .state").inner_text() == "holding"
    halted = nodes.locator("tr[data-node=db-1]")
    assert halted.locator(".state").inner_text() == "halted"
    assert "FAILED" in halted.inner_text()
    assert "postgres did not answer" in halted.inner_text()
    rollout = page.locator("[data-rollout=db]").inner_text()
    assert "1 halted" in rollout


def test_the_read_only_view_needs_no_javascript(fleet: RunningServer, browser: Any) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        pg = context.new_page()
        pg.goto(fleet.url + "/?group=db")
        assert pg.locator("table.nodes tr.node").all_inner_texts()[0].startswith("db-1")
        assert pg.locator("table.nodes tr.node").count() == 1
        web = pg.locator("#groups tbody.group[data-group=web] .count").inner_text()
        assert web == "2 of max 2 slot(s) held"
    finally:
        context.close()


def test_the_node_filters_narrow_the_table_by_group_and_state(
    fleet: RunningServer, page: Any
) -> None:
    page.goto(fleet.url + "/")
    rows = page.locator("table.nodes tr.node")
    assert rows.count() == 4
    page.select_option("select[name=group]", "web")
    page.wait_for_function("document.querySelectorAll('table.nodes tr.node').length === 3")
    page.select_option("select[name=state]", "waiting")
    page.wait_for_function("document.querySelectorAll('table.nodes tr.node').length === 1")
    assert rows.first.get_attribute("data-node") == "web-2"
    assert "group=web" in page.url
    assert "state=waiting" in page.url


def test_the_page_refreshes_itself_from_the_server(fleet: RunningServer, page: Any) -> None:
    page.goto(fleet.url + "/")
    assert page.locator("tr[data-node=late-1]").count() == 0
    report(fleet, NodeReport("late-1", "db", State.WAITING, needed_since=datetime.now(UTC)))
    page.locator("tr[data-node=late-1]").wait_for(timeout=WAIT_MS)


def test_without_a_token_no_control_is_shown_and_the_admin_api_refuses(
    fleet: RunningServer, page: Any
) -> None:
    page.goto(fleet.url + "/")
    page.locator("#admin-enter").wait_for()
    assert page.locator("button[data-action]").count() == 0
    r = httpx.post(fleet.url + "/v1/groups/web/pause", json={"reason": "from a stranger"})
    assert (r.status_code, r.json()["kind"]) == (401, "unauthorized")
    r = httpx.post(
        fleet.url + "/v1/groups/web/pause",
        json={"reason": "from a node"},
        headers={"authorization": f"Bearer {NODE}"},
    )
    assert (r.status_code, r.json()["kind"]) == (403, "forbidden")


def test_a_token_that_is_not_an_admins_shows_no_control(fleet: RunningServer, page: Any) -> None:
    answers = iter([NODE, "mallory"])
    page.on("dialog", lambda d: d.accept(next(answers)))
    page.goto(fleet.url + "/")
    page.click("#admin-enter")
    page.wait_for_function("document.getElementById('admin-who').textContent.includes('refused')")
    assert page.locator("button[data-action]").count() == 0


def enter_admin_mode(page: Any, fleet: RunningServer, answers: list[str]) -> None:
    queue = iter([ADMIN, "alice", *answers])
    page.on("dialog", lambda d: d.accept(next(queue)))
    page.goto(fleet.url + "/")
    page.click("#admin-enter")
    page.locator("button[data-action=pause][data-group=web]").wait_for()


def test_an_admin_pausing_a_group_through_the_page_shows_in_stagger_status(
    fleet: RunningServer, page: Any
) -> None:
    enter_admin_mode(page, fleet, ["bad kernel 6.9", "yes"])
    page.click("button[data-action=pause][data-group=web]")
    page.locator("tbody.group[data-group=web] [data-pause]").wait_for()
    status = status_through_the_cli(fleet)
    web = next(g for g in status["groups"] if g["group"] == "web")
    assert web["pause"]["reason"] == "bad kernel 6.9"
    assert web["pause"]["by"] == "operator:alice"
    assert "paused by operator:alice" in page.locator("tbody.group[data-group=web]").inner_text()


def test_an_admin_sets_max_and_releases_a_hold_recorded_as_themselves(
    fleet: RunningServer, page: Any
) -> None:
    enter_admin_mode(page, fleet, ["3", "yes", "yes"])
    page.click("button[data-action=set-max][data-group=web]")
    page.wait_for_function(
        "document.querySelector('tbody.group[data-group=web] .count').textContent.includes('max 3')"
    )
    page.click("button[data-action=release][data-id=zincati-9]")
    page.locator("tbody.group[data-group=web] tr[data-holder=zincati-9]").wait_for(state="detached")
    events = admin(fleet, "GET", "/v1/groups/web/history").json()["events"]
    assert [(e["action"], e["by"]) for e in events[:2]] == [
        ("released", "operator:alice"),
        ("max_changed", "operator:alice"),
    ]


def test_an_admin_who_dismisses_the_confirmation_changes_nothing(
    fleet: RunningServer, page: Any
) -> None:
    queue = iter([ADMIN, "alice", "maintenance"])

    def answer(d: Any) -> None:
        if d.type == "confirm":
            d.dismiss()
        else:
            d.accept(next(queue))

    page.on("dialog", answer)
    page.goto(fleet.url + "/")
    page.click("#admin-enter")
    page.locator("button[data-action=pause][data-group=web]").click()
    page.wait_for_timeout(300)  # room for a wrong request to land; nothing is awaited on it
    web = admin(fleet, "GET", "/v1/groups/web").json()
    assert web["paused"] is False


def test_the_page_fits_a_phone_screen(fleet: RunningServer, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        pg = context.new_page()
        pg.goto(fleet.url + "/")
        width = pg.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
    finally:
        context.close()


def test_real_agents_appear_on_the_page_with_their_cycle_and_slot(
    tmp_path: Path, page: Any
) -> None:
    from agent_support import Fleet, Node

    tokens = (
        Token("admin:ops", digest(ADMIN), admin=True),
        Token("agent-a", digest(NODE + "-a"), admin=False, groups=frozenset({"default"})),
        Token("agent-b", digest(NODE + "-b"), admin=False, groups=frozenset({"default"})),
    )
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db", tokens=tokens)) as srv:
        url = f"fleetlock+http://node:{NODE}-a@127.0.0.1:{srv.port}/"
        url_b = f"fleetlock+http://node:{NODE}-b@127.0.0.1:{srv.port}/"
        fleet = Fleet(url)
        a, b = Node("agent-a", tmp_path / "a", url), Node("agent-b", tmp_path / "b", url_b)
        fleet.nodes = [a, b]
        try:
            a.flag("hold-drain", True)  # agent-a stays in its drain, holding the slot
            a.start()
            b.start()
            a.need_reboot()
            fleet.wait("agent-a drains", lambda: a.cycle() == "draining")
            page.goto(srv.url + "/")
            page.locator("tr[data-node=agent-a] .state", has_text="draining").wait_for()
            page.locator("tr[data-node=agent-b] .state", has_text="idle").wait_for()
            holders = page.locator("tbody.group[data-group=default] tr.hold")
            assert holders.all_inner_texts()[0].startswith("agent-a")
            assert "1 in progress" in page.locator("[data-rollout=default]").inner_text()
        finally:
            a.flag("hold-drain", False)
            for node in fleet.nodes:
                node.stop()


def test_a_window_open_at_the_nodes_last_report_reads_open_not_a_past_time(
    fleet: RunningServer,
) -> None:
    opened = datetime.now(UTC) - timedelta(minutes=3)
    report(fleet, NodeReport("web-3", "web", State.WAITING, next_window=opened))
    html = httpx.get(f"{fleet.url}/dashboard/live").text
    row = html[html.index('data-node="web-3"') :].split("</tr>", 1)[0]
    assert ">open</span>" in row
    assert 'data-node="web-1"' in html  # web-1's window is 20 h away: shown as a time
    web1 = html[html.index('data-node="web-1"') :].split("</tr>", 1)[0]
    assert ">open</span>" not in web1


def test_a_halted_holder_says_halted_everywhere_not_ok(fleet: RunningServer) -> None:
    """db-1 holds its slot and reports halted: the group card, /v1/status, /v1/groups/db and
    `stagger status` (table and --json, through the server) all say so."""
    card = httpx.get(fleet.url + "/dashboard/live").text
    row = card[card.index('data-holder="db-1"') :]
    row = row[: row.index("</tr>")]
    assert 'data-condition="halted"' in row
    assert ">HALTED<" in row
    assert ">ok<" not in row.replace(" ", "")
    (db,) = [g for g in admin(fleet, "GET", "/v1/status").json()["groups"] if g["group"] == "db"]
    assert (db["holds"][0]["condition"], db["holds"][0]["node_state"]) == ("halted", "halted")
    web = admin(fleet, "GET", "/v1/groups/web").json()
    assert {h["id"]: h["condition"] for h in web["holds"]} == {"web-1": "ok", "zincati-9": "ok"}
    doc = status_through_the_cli(fleet)
    (db_doc,) = [g for g in doc["groups"] if g["group"] == "db"]
    assert (db_doc["holds"][0]["condition"], db_doc["holds"][0]["node_state"]) == (
        "halted",
        "halted",
    )
    env = {k: v for k, v in os.environ.items() if k != "STAGGER_BACKEND"}
    url = fleet.url.replace("http://", f"http://admin:{ADMIN}@") + "/"
    table = subprocess.run(
        [STAGGER, "status", "--group", "db", "--server", url],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=60,
        check=True,
    ).stdout
    line = next(ln for ln in table.splitlines() if "db-1" in ln)
    assert "HALTED" in line
    assert " ok " not in line


def test_an_idle_page_is_refreshed_with_304s_and_its_times_keep_counting(
    fleet: RunningServer, page: Any
) -> None:
    """Nothing changes: the script's refreshes are answered 304 with no body (the part in
    view is kept), and the "held for" times still move, counted in the browser."""
    page.goto(fleet.url + "/")
    held = "document.querySelector('tbody.group[data-group=web] tr[data-holder=web-1] .ago')"
    before = page.evaluate(f"{held}.textContent")
    for _ in range(2):
        with page.expect_response(lambda r: "dashboard/live" in r.url, timeout=WAIT_MS) as info:
            pass
        assert info.value.status == 304
    page.wait_for_function(f"{held}.textContent !== {before!r}")
    assert page.locator("tr[data-node=web-1]").count() == 1

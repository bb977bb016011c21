"""`stagger need-reboot --now`: an emergency reboot that skips the window (a blackout only with
--ignore-blackouts, a pause never) but still takes a slot and drains. Through the real CLI, a
real agent process (simulated rebooter) and a real SQLite store."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_support import STAGGER, stagger
from explain_support import NODE, Node, make_node, on_backend, reboots
from server_support import running
from stagger.agent.reboot import SIMULATED_REBOOT_EXIT
from stagger.backends.fleetlock import server_backend_url
from stagger.backends.protocol import Backend
from stagger.core.errors import InvalidInput
from stagger.core.notices import from_event
from stagger.core.semaphore import FLEET, Action, Event
from stagger.server.settings import ServerSettings

OP = "operator:alice"


def closed_window() -> str:
    """A daily window that opens six hours from now: closed now, and no blackout."""
    start = (datetime.now(UTC) + timedelta(hours=6)).strftime("%H:%M")
    days = '["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]'
    return f'[[window]]\ndays = {days}\nstart = "{start}"\nlength = "1h"\n'


def blackout_now() -> str:
    now = datetime.now(UTC)
    return (
        f'[[blackout]]\nstart = "{(now - timedelta(hours=1)).isoformat()}"\n'
        f'end = "{(now + timedelta(hours=2)).isoformat()}"\nreason = "freeze"\n'
    )


def agent(node: Node, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [STAGGER, "agent", "--config", str(node.config), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def need_now(node: Node, *extra: str) -> None:
    run = stagger(
        "need-reboot", "--config", str(node.config), "--reason", "kernel CVE-2026-9", *extra
    )
    assert run.code == 0, run


def test_an_urgent_reboot_skips_a_closed_window_takes_a_slot_and_history_says_who(
    tmp_path: Path,
) -> None:
    node = make_node(tmp_path, closed_window())
    need_now(node, "--now")
    doc = node.explain()
    assert doc["window"]["open"] is False
    assert doc["urgent"]["reason"] == "kernel CVE-2026-9"
    assert doc["urgent"]["skips_window_now"] is True
    assert doc["decision"]["verdict"] == "acquire"
    assert "urgent reboot asked by" in doc["decision"]["sentence"]
    run = agent(node)
    assert run.returncode == SIMULATED_REBOOT_EXIT, run.stderr
    assert reboots(node) == 1
    events = on_backend(node.backend, lambda b: b.history("default", 10))
    (grant,) = [e for e in events if e.action is Action.ACQUIRED]
    assert grant.id == NODE
    assert grant.detail.startswith("urgent: asked by ")
    assert grant.detail.endswith(": kernel CVE-2026-9")


def test_without_now_the_same_need_waits_for_the_window(tmp_path: Path) -> None:
    node = make_node(tmp_path, closed_window())
    need_now(node)
    assert agent(node, "--once").returncode == 0
    assert not (tmp_path / "reboots").exists()
    assert node.explain()["decision"]["reason"] == "window_closed"


def test_an_urgent_reboot_waits_out_a_blackout_unless_told_to_ignore_it(tmp_path: Path) -> None:
    node = make_node(tmp_path, blackout_now())
    need_now(node, "--now")
    assert agent(node, "--once").returncode == 0
    assert not (tmp_path / "reboots").exists()
    doc = node.explain()
    assert (doc["urgent"]["skips_window_now"], doc["decision"]["verdict"]) == (False, "wait")
    need_now(node, "--now", "--ignore-blackouts")
    assert node.explain()["decision"]["verdict"] == "acquire"
    run = agent(node)
    assert run.returncode == SIMULATED_REBOOT_EXIT, run.stderr


def test_an_urgent_reboot_never_skips_a_pause(tmp_path: Path) -> None:
    node = make_node(tmp_path, closed_window())
    on_backend(node.backend, lambda b: b.pause("default", by=OP, reason="incident"))
    need_now(node, "--now", "--ignore-blackouts")
    assert agent(node, "--once").returncode == 0
    assert not (tmp_path / "reboots").exists()
    assert node.explain()["decision"]["reason"] == "paused"


def test_ignore_blackouts_without_now_is_a_usage_error(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    run = stagger(
        "need-reboot", "--config", str(node.config), "--reason", "x", "--ignore-blackouts"
    )
    assert run.code == 2
    assert "--now" in run.err
    assert "Traceback" not in run.err


# --- asked through the store or a server: need-reboot --now --node ID ---------------------


async def test_an_ask_is_stored_for_the_node_and_cleared_only_once_it_rebooted(
    backend: Backend,
) -> None:
    u = await backend.ask_reboot("web-07", by=OP, reason="kernel CVE", ignore_blackouts=True)
    assert (u.reason, u.by, u.ignore_blackouts) == ("kernel CVE", OP, True)
    assert (await backend.status()).urgent_reboots == {"web-07": u}
    assert (await backend.status("web")).groups[0].urgent_reboots == {"web-07": u}
    (event,) = [e for e in await backend.history(None, 10) if e.id == "web-07"]
    assert (event.action, event.by, event.detail) == (
        Action.REBOOT_ASKED,
        OP,
        "kernel CVE (blackouts ignored too)",
    )
    # A reboot before the ask did not do it: the ask stays.
    assert await backend.clear_reboot("web-07", done_by=u.since - timedelta(seconds=1)) is None
    assert "web-07" in (await backend.status()).urgent_reboots
    assert await backend.clear_reboot("web-07", done_by=u.since + timedelta(seconds=1)) == u
    assert (await backend.status()).urgent_reboots == {}


async def test_an_ask_needs_a_reason_and_a_valid_node_id(backend: Backend) -> None:
    with pytest.raises(InvalidInput, match="reason"):
        await backend.ask_reboot("web-07", by=OP, reason=" ")
    with pytest.raises(InvalidInput, match="node id"):
        await backend.ask_reboot("web 07", by=OP, reason="x")


def test_an_agent_takes_an_ask_stored_for_it_reboots_once_and_clears_it(tmp_path: Path) -> None:
    node = make_node(tmp_path, closed_window())
    asked = stagger(
        "need-reboot", "--now", "--node", NODE, "--reason", "kernel CVE-2026-9",
        "--backend", node.backend, "--json",
    )  # fmt: skip
    assert asked.code == 0, asked
    assert asked.json()["node"] == NODE
    status = stagger("status", "--json", "--backend", node.backend).json()
    assert status["urgent_reboots"][NODE]["reason"] == "kernel CVE-2026-9"
    screen = stagger("status", "--backend", node.backend).out
    assert f"URGENT REBOOT of node {NODE}" in screen
    run = agent(node)
    assert run.returncode == SIMULATED_REBOOT_EXIT, run.stderr
    assert "urgent reboot asked" in run.stderr
    node.boot("boot-2")
    again = agent(node, "--once")
    assert again.returncode == 0, again.stderr
    assert reboots(node) == 1
    snap = on_backend(node.backend, lambda b: b.status())
    assert snap.urgent_reboots == {}
    assert node.explain()["decision"]["reason"] in ("not_needed", "window_closed")


def test_need_reboot_node_without_now_is_a_usage_error(tmp_path: Path) -> None:
    run = stagger(
        "need-reboot", "--node", NODE, "--reason", "x", "--backend", f"sqlite:///{tmp_path}/s.db"
    )
    assert run.code == 2
    assert "--now" in run.err


def test_an_ask_goes_through_a_server_to_the_client_backend(tmp_path: Path) -> None:
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")) as srv:
        url = srv.url + "/"
        r = stagger(
            "need-reboot", "--now", "--node", "web-07", "--reason", "CVE", "--server", url,
            "--json",
        )  # fmt: skip
        assert r.code == 0, r
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            group = client.get("/v1/groups/web").json()
            assert group["urgent_reboots"]["web-07"]["reason"] == "CVE"
            assert client.get("/v1/status").json()["urgent_reboots"]["web-07"]["by"]
            assert 'data-urgent-reboot="web-07"' in client.get("/dashboard/live").text

        async def seen_and_cleared(b: Backend) -> tuple[Any, Any]:
            snap = await b.status("web")
            u = snap.urgent_reboots["web-07"]
            return u, await b.clear_reboot("web-07", done_by=u.since, group="web")

        u, cleared = on_backend(server_backend_url(url), seen_and_cleared)
        assert cleared == u
        events = on_backend(server_backend_url(url), lambda b: b.history(None, 10))
        assert any(e.action is Action.REBOOT_ASKED and e.id == "web-07" for e in events)


def test_an_ask_is_told_to_people_with_who_and_why() -> None:
    when = datetime(2026, 1, 5, 12, tzinfo=UTC)
    event = Event(when, FLEET, Action.REBOOT_ASKED, OP, "web-07", "kernel CVE")
    told = from_event(event)
    assert told is not None
    assert told.sentence() == (
        "an emergency reboot of node web-07 was asked by operator:alice: kernel CVE"
    )


def test_an_agent_waits_on_its_own_node_pause_without_asking_for_a_slot(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    on_backend(node.backend, lambda b: b.pause_node(NODE, by=OP, reason="quarter-end batch"))
    (tmp_path / "reboot-required").touch()
    assert agent(node, "--once").returncode == 0
    state = node.explain()["agent"]["state"]
    assert state["cycle"] == "waiting"
    # Waiting on the pause itself, not retrying a denied slot ("no slot: node ... is paused").
    assert state["reason"].startswith("a reboot is needed, but reboots are paused")
    assert "quarter-end batch" in state["reason"]
    assert not (tmp_path / "reboots").exists()

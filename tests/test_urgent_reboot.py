"""`stagger need-reboot --now`: an emergency reboot that skips the window (a blackout only with
--ignore-blackouts, a pause never) but still takes a slot and drains. Through the real CLI, a
real agent process (simulated rebooter) and a real SQLite store."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stagger.agent.reboot import SIMULATED_REBOOT_EXIT
from stagger.core.semaphore import Action
from test_explain import NODE, STAGGER, Node, make_node, on_backend, reboots, stagger

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

"""Notifications from a real server (SQLite) to a real HTTP receiver on 127.0.0.1: the JSON and
Slack payloads of a granted/released/halted sequence, retries of a failing receiver, and a
lock that answers while the receiver hangs."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from server_support import PROTO, RunningServer, body, running, server_process
from stagger.backends.factory import open_backend
from stagger.backends.fleetlock import FleetLockBackend
from stagger.config.model import StaggerConfig
from stagger.core.cycle.node_state import CheckResult, State
from stagger.core.errors import InvalidInput
from stagger.core.node_report import NodeReport
from stagger.server.notify import NotifyTarget
from stagger.server.settings import ServerSettings
from webhook_support import WAIT, Receiver

STALE = timedelta(milliseconds=300)  # a group whose holds turn stale quickly


def target(receiver: Receiver, path: str, fmt: str = "json", **kw: Any) -> NotifyTarget:
    defaults: dict[str, Any] = {
        "events": frozenset({"granted", "released", "halted"}),
        "retries": 3,
        "backoff": 0.05,
        "timeout": 5.0,
    }
    defaults.update(kw)
    return NotifyTarget(name=path.strip("/"), url=receiver.url(path), format=fmt, **defaults)


def serve(tmp_path: Path, *targets: NotifyTarget) -> Any:
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db", notify=targets, notify_interval=0.05
    )
    return running(settings)


def pre_reboot(server: RunningServer, node_id: str, group: str = "web") -> httpx.Response:
    return httpx.post(server.url + "/v1/pre-reboot", json=body(node_id, group), headers=PROTO)


def steady_state(server: RunningServer, node_id: str, group: str = "web") -> httpx.Response:
    return httpx.post(server.url + "/v1/steady-state", json=body(node_id, group), headers=PROTO)


def halt(server: RunningServer, node_id: str) -> None:
    async def send() -> None:
        b = FleetLockBackend.from_url(f"fleetlock+{server.url}/", retries=0)
        try:
            await b.report(
                NodeReport(
                    node_id,
                    "web",
                    State.HALTED,
                    reason="health checks failed after the reboot",
                    last_health=CheckResult(False, "nginx answered 502", datetime.now(UTC)),
                )
            )
        finally:
            await b.close()

    asyncio.run(send())


def test_a_granted_released_halted_sequence_arrives_as_json(
    tmp_path: Path, receiver: Receiver
) -> None:
    with serve(tmp_path, target(receiver, "/hook")) as srv:
        assert pre_reboot(srv, "web-1").status_code == 200
        receiver.wait_for("/hook", 1)
        assert steady_state(srv, "web-1").status_code == 200
        receiver.wait_for("/hook", 2)
        halt(srv, "web-1")
        docs = receiver.wait_for("/hook", 3)
    assert [(d["event"], d["group"], d["id"]) for d in docs] == [
        ("granted", "web", "web-1"),
        ("released", "web", "web-1"),
        ("halted", "web", "web-1"),
    ]
    assert docs[2]["detail"] == "nginx answered 502"
    assert docs[2]["text"].startswith("stagger: web-1 in group web is HALTED")
    assert all(d["source"] == "stagger" for d in docs)
    assert all(d["time"].endswith("Z") for d in docs)  # RFC 3339 in UTC, as every document


def test_slack_targets_get_slack_shaped_payloads(tmp_path: Path, receiver: Receiver) -> None:
    with serve(tmp_path, target(receiver, "/slack", fmt="slack")) as srv:
        pre_reboot(srv, "web-1")
        receiver.wait_for("/slack", 1)
        steady_state(srv, "web-1")
        receiver.wait_for("/slack", 2)
        halt(srv, "web-1")
        docs = receiver.wait_for("/slack", 3)
    assert [set(d) for d in docs] == [{"text"}] * 3
    assert docs[0]["text"] == "stagger: web-1 took a reboot slot in group web"
    assert docs[1]["text"] == "stagger: web-1 released its slot in group web"
    assert "HALTED" in docs[2]["text"]


def test_a_target_gets_only_the_events_it_asked_for_with_its_headers(
    tmp_path: Path, receiver: Receiver
) -> None:
    only_halted = target(
        receiver, "/halted", events=frozenset({"halted"}), headers={"X-Token": "s3cret"}
    )
    with serve(tmp_path, only_halted) as srv:
        pre_reboot(srv, "web-1")
        halt(srv, "web-1")
        docs = receiver.wait_for("/halted", 1)
    assert [d["event"] for d in docs] == ["halted"]
    assert [h.get("X-Token") for p, _, h in receiver.received] == ["s3cret"]


def test_a_failing_receiver_is_retried_until_it_takes_the_notification(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    with serve(tmp_path, target(receiver, "/flaky", retries=3)) as srv:
        pre_reboot(srv, "web-1")
        docs = receiver.wait_for("/flaky", 1)
        metrics = httpx.get(srv.url + "/metrics").text
    assert [d["event"] for d in docs] == ["granted"]
    assert receiver.attempts == 3
    assert 'stagger_notify_failures_total{target="flaky"} 2.0' in metrics
    assert 'stagger_notify_sent_total{event="granted",target="flaky"} 1.0' in metrics


def test_a_receiver_that_hangs_does_not_hold_up_a_lock(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.hang.set()
    with serve(tmp_path, target(receiver, "/slow", timeout=WAIT)) as srv:
        assert pre_reboot(srv, "web-1").status_code == 200
        assert receiver.hanging.wait(WAIT), "the first notification never reached the receiver"
        started = time.perf_counter()
        second = pre_reboot(srv, "db-1", group="db")
        took = time.perf_counter() - started
        # The lock answered while the receiver was still hanging on the first notification.
        assert second.status_code == 200
        assert receiver.hanging.is_set()
        receiver.release.set()
        receiver.hang.clear()
        docs = receiver.wait_for("/slow", 2)
    with capsys.disabled():
        print(f"\npre-reboot while the receiver hangs: {took * 1000:.1f} ms")
    assert [(d["event"], d["id"]) for d in docs] == [("granted", "web-1"), ("granted", "db-1")]


def test_a_node_denied_by_a_pause_is_told_once_per_pause(
    tmp_path: Path, receiver: Receiver
) -> None:
    denied = target(receiver, "/denied", events=frozenset({"denied_paused", "paused"}))
    with serve(tmp_path, denied) as srv:
        r = httpx.post(srv.url + "/v1/groups/web/pause", json={"reason": "bad kernel"})
        assert r.status_code == 200
        for _ in range(3):
            assert pre_reboot(srv, "web-1").status_code == 423
        docs = receiver.wait_for("/denied", 2)
        time.sleep(0.3)  # room for a wrong second denial to arrive
        docs = receiver.docs("/denied")
    assert sorted(d["event"] for d in docs) == ["denied_paused", "paused"]
    denial = next(d for d in docs if d["event"] == "denied_paused")
    assert "bad kernel" in denial["detail"]


def test_notify_entries_are_read_from_the_config() -> None:
    config = StaggerConfig.model_validate(
        {
            "notify": [
                {"url": "https://hooks.example.com/x", "format": "slack", "events": ["halted"]},
                {"url": "http://127.0.0.1:9/h", "headers": {"Authorization": "Bearer x"}},
            ]
        }
    )
    assert [(n.format, n.events) for n in config.notify] == [
        ("slack", ["halted"]),
        (
            "json",
            [
                "halted",
                "stale",
                "paused",
                "resumed",
                "denied_paused",
                "max_changed",
                "stage_done",
                "rollout_halted",
            ],
        ),
    ]


@pytest.mark.parametrize(
    "entry",
    [
        {"url": "ftp://x/"},
        {"url": "http://x/", "events": ["rebooted"]},
        {"url": "http://x/", "format": "xml"},
        {"url": "http://x/", "backoff": "soon"},
        {"url": "http://x/", "colour": "red"},
    ],
)
def test_a_wrong_notify_entry_is_refused(entry: dict[str, Any]) -> None:
    with pytest.raises((ValueError, InvalidInput)):
        StaggerConfig.model_validate({"notify": [entry]})


def test_a_real_agent_that_halts_after_its_reboot_is_notified(
    tmp_path: Path, receiver: Receiver
) -> None:
    from agent_support import Fleet, Node

    halted = target(receiver, "/halted", events=frozenset({"halted", "granted"}))
    with serve(tmp_path, halted) as srv:
        url = f"fleetlock+{srv.url}/"
        fleet = Fleet(url)
        node = Node("node-1", tmp_path / "node-1", url)
        fleet.nodes = [node]
        try:
            node.flag("broken", True)  # its health check fails after the reboot
            node.start()
            node.need_reboot()
            fleet.wait("the node halted", lambda: node.cycle() == "halted")
            docs = receiver.wait_for("/halted", 2)
        finally:
            node.stop()
    assert [(d["event"], d["id"]) for d in docs] == [("granted", "node-1"), ("halted", "node-1")]
    assert docs[1]["group"] == "default"


def test_a_hold_that_turns_stale_is_told_once(tmp_path: Path, receiver: Receiver) -> None:
    async def configure() -> None:
        b = open_backend(f"sqlite:///{tmp_path}/s.db")
        try:
            await b.configure("web", by="operator:test", hold_ttl=None, stale_after=STALE)
        finally:
            await b.close()

    asyncio.run(configure())
    stale = target(receiver, "/stale", events=frozenset({"stale"}))
    with serve(tmp_path, stale) as srv:
        assert pre_reboot(srv, "web-1").status_code == 200
        docs = receiver.wait_for("/stale", 1)
        time.sleep(0.3)  # room for a wrong second one
        docs = receiver.docs("/stale")
    assert [(d["event"], d["id"]) for d in docs] == [("stale", "web-1")]
    assert docs[0]["text"].startswith("stagger: web-1's hold in group web is stale: not seen for")


def test_stagger_server_reads_notify_entries_from_its_config_file(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = f"""silent_after = "5m"

[[notify]]
name = "from-file"
url = "{receiver.url("/file")}"
events = ["granted"]
"""
    with server_process(tmp_path, config) as url:
        r = httpx.post(url + "/v1/pre-reboot", json=body("web-1", "web"), headers=PROTO)
        assert r.status_code == 200
        docs = receiver.wait_for("/file", 1)
    assert [(d["event"], d["id"]) for d in docs] == [("granted", "web-1")]

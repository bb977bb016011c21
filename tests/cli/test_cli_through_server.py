"""The operator commands reach the semaphores through a stagger server with --server URL:
the same commands, the same output, the server recording who acted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server_support import RunningServer, running
from stagger.server.settings import ServerSettings

STAGGER = str(Path(sys.executable).parent / "stagger")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")) as srv:
        yield srv


def stagger(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STAGGER_BACKEND"}
    env.update(LOGNAME="alice", USER="alice")
    return subprocess.run(
        [STAGGER, *args, "--server", server.url + "/"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def doc(server: RunningServer, *args: str) -> Any:
    r = stagger(server, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_set_max_lock_and_status_go_through_the_server(server: RunningServer) -> None:
    doc(server, "set-max", "2", "--group", "web")
    doc(server, "lock", "--group", "web", "--id", "node-a")
    status = doc(server, "status", "--group", "web")
    (group,) = status["groups"]
    assert group["max"] == 2
    assert [h["id"] for h in group["holds"]] == ["node-a"]


def test_status_through_the_server_says_a_group_never_written_does_not_exist_yet(
    server: RunningServer,
) -> None:
    (api,) = doc(server, "status", "--group", "api")["groups"]
    assert (api["exists"], api["max"]) == (False, 1)
    assert "group api does not exist yet" in stagger(server, "status", "--group", "api").stdout


def test_hold_ttl_and_stale_after_are_set_through_the_server(server: RunningServer) -> None:
    group = doc(
        server, "set-max", "2", "--group", "web", "--hold-ttl", "30m", "--stale-after", "5m"
    )
    assert (group["max"], group["hold_ttl"], group["stale_after"]) == (2, 1800.0, 300.0)
    group = doc(server, "set-max", "2", "--group", "web", "--hold-ttl", "none")
    assert (group["hold_ttl"], group["stale_after"]) == (None, 300.0)  # stale-after kept
    (web,) = doc(server, "status", "--group", "web")["groups"]
    assert (web["hold_ttl"], web["stale_after"]) == (None, 300.0)
    configured = [e for e in doc(server, "history")["events"] if e["action"] == "configured"]
    assert [e["by"] for e in configured] == ["operator:alice", "operator:alice"]


def test_a_bad_hold_ttl_sent_to_the_admin_api_is_refused(server: RunningServer) -> None:
    for body in ({"hold_ttl": 0, "stale_after": 60}, {"hold_ttl": 1e300, "stale_after": 60},
                 {"stale_after": 60}):  # fmt: skip
        r = httpx.put(server.url + "/v1/groups/web/config", json=body)
        assert (r.status_code, r.json()["kind"]) == (400, "invalid_request"), body


def test_a_pause_set_through_the_server_denies_a_lock_with_its_reason(
    server: RunningServer,
) -> None:
    doc(server, "pause", "--group", "web", "--reason", "bad kernel")
    r = stagger(server, "lock", "--group", "web", "--id", "node-a")
    assert r.returncode == 1
    assert "bad kernel" in r.stderr + r.stdout
    doc(server, "resume", "--group", "web")
    assert stagger(server, "lock", "--group", "web", "--id", "node-a").returncode == 0


def test_an_operator_unlock_through_the_server_is_recorded_as_the_operator(
    server: RunningServer,
) -> None:
    doc(server, "lock", "--group", "web", "--id", "node-a")
    doc(server, "unlock", "--group", "web", "--id", "node-a")
    events = doc(server, "history", "--group", "web")["events"]
    released = next(e for e in events if e["action"] == "released")
    assert released["id"] == "node-a"
    assert released["by"] == "operator:alice"


def test_a_server_that_does_not_answer_exits_3(tmp_path: Path) -> None:
    r = subprocess.run(
        [STAGGER, "status", "--server", "http://127.0.0.1:9/"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr

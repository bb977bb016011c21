"""Every FleetLock answer of `stagger server` on etcd reflects every write acknowledged before
its request came in (docs/server.md), while its batched reads go through the etcd read lane
(backends/etcd/lane.py) and other callers keep reads in flight: the write coming from
another server, or from another process, on the same etcd. Real servers, a real etcd."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import backend_url
from server_support import PROTO, RunningServer, body, running
from stagger.backends.etcd import EtcdBackend
from stagger.server.settings import ServerSettings

GROUP = "web"


def post(client: httpx.Client, path: str, node_id: str) -> int:
    return client.post(path, json=body(node_id, GROUP), headers=PROTO).status_code


def holders(client: httpx.Client) -> list[str]:
    return [h["id"] for h in client.get(f"/v1/groups/{GROUP}").json()["holds"]]


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url("etcd", request, tmp_path)


@pytest.fixture
def busy(url: str) -> Iterator[tuple[RunningServer, httpx.Client, httpx.Client]]:
    """Server A (under test) and server B (the other writer) on one etcd prefix; while the
    test runs, four clients keep A's batched reads of the group in flight (releases by
    nodes that hold nothing: each is answered from a read)."""
    settings = ServerSettings(backend_url=url)
    stop = threading.Event()

    def hammer(n: int, base: str) -> None:
        with httpx.Client(base_url=base, timeout=10) as c:
            while not stop.is_set():
                assert post(c, "/v1/steady-state", f"idle-{n}") == 200

    with (
        running(settings) as a,
        running(settings) as b,
        httpx.Client(base_url=a.url, timeout=10) as ca,
        httpx.Client(base_url=b.url, timeout=10) as cb,
    ):
        assert cb.put(f"/v1/groups/{GROUP}/max", json={"max": 1}).status_code == 200
        threads = [threading.Thread(target=hammer, args=(n, a.url)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            yield a, ca, cb
        finally:
            stop.set()
            for t in threads:
                t.join(10)


def lane_answered(server: RunningServer) -> bool:
    """Whether the server's etcd reads go through an open read lane."""
    backend = server.app.state.backend
    assert isinstance(backend, EtcdBackend)
    members = backend._client._members.values()
    return any(m.lane._connection is not None and m.lane._connection.ready for m in members)


def test_a_write_by_another_server_is_seen_by_the_next_answer(
    busy: tuple[RunningServer, httpx.Client, httpx.Client],
) -> None:
    a, ca, cb = busy
    for _ in range(25):
        assert post(cb, "/v1/pre-reboot", "h") == 200  # B's write is acknowledged...
        # ...so A's answer must come from a read that sees it: releasing it releases it
        # (a stale read would find nothing held and answer 200 without a write).
        assert post(ca, "/v1/steady-state", "h") == 200
        assert holders(cb) == []
        assert post(cb, "/v1/pre-reboot", "h") == 200
        assert post(ca, "/v1/pre-reboot", "x") == 423  # the slot is taken
        assert post(cb, "/v1/steady-state", "h") == 200
        assert post(ca, "/v1/pre-reboot", "x") == 200  # and free again
        assert post(ca, "/v1/steady-state", "x") == 200
    assert lane_answered(a)


def test_a_write_by_another_process_is_seen_by_the_next_answer(
    url: str, busy: tuple[RunningServer, httpx.Client, httpx.Client]
) -> None:
    a, ca, cb = busy
    stagger = [sys.executable, "-m", "stagger"]
    for _ in range(2):
        subprocess.run(
            [*stagger, "lock", "--group", GROUP, "--id", "h", "--backend", url],
            check=True,
            capture_output=True,
        )
        assert post(ca, "/v1/steady-state", "h") == 200
        assert holders(cb) == []
    assert lane_answered(a)

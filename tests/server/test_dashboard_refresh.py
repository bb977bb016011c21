"""The dashboard's live refresh sends only what changed: its live part carries an ETag, and a
refresh that sends it back while nothing changed is answered 304 Not Modified with no body.
Anything that changes what the page says gives a new part: a write (through this server or
straight to the store by another process), time alone (a node going silent), another filter
or page, admin mode. Real servers on loopback over a real SQLite file and a real etcd."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from conftest import backend_url
from server_support import RunningServer, running
from stagger.backends.factory import open_backend
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.server import dashboard
from stagger.server.settings import ServerSettings, Token, digest

ADMIN = "admin-secret"
LIVE = "/dashboard/live"


def report(srv: RunningServer, node_id: str, state: str = "waiting", group: str = "web") -> None:
    doc = {"group": group, "state": state}
    headers = {"authorization": f"Bearer {ADMIN}"}
    r = httpx.post(f"{srv.url}/v1/nodes/{node_id}/report", json=doc, headers=headers, timeout=10)
    assert r.status_code == 200, r.text


@pytest.fixture(params=["sqlite", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    tokens = (Token("admin:ops", digest(ADMIN), admin=True),)
    url = backend_url(request.param, request, tmp_path)
    with running(ServerSettings(backend_url=url, tokens=tokens)) as srv:
        report(srv, "web-1")
        report(srv, "db-1", "halted", group="db")
        yield srv


def get(srv: RunningServer, path: str = LIVE, etag: str = "", **headers: str) -> httpx.Response:
    if etag:
        headers["if-none-match"] = etag
    return httpx.get(srv.url + path, headers=headers, timeout=10)


def test_a_refresh_while_nothing_changed_is_304_with_no_body(server: RunningServer) -> None:
    first = get(server)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert 'data-node="web-1"' in first.text
    for _ in range(3):
        again = get(server, etag=etag)
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag


def test_the_page_names_the_etag_of_its_live_part(server: RunningServer) -> None:
    """The first refresh after loading the page is already a 304."""
    page = get(server, "/")
    etag = page.text.split('data-etag="', 1)[1].split('"', 1)[0].replace("&#34;", '"')
    assert get(server, etag=etag).status_code == 304


def test_a_write_through_the_server_sends_the_new_live_part(server: RunningServer) -> None:
    etag = get(server).headers["etag"]
    report(server, "web-2")
    changed = get(server, etag=etag)
    assert changed.status_code == 200
    assert 'data-node="web-2"' in changed.text
    assert changed.headers["etag"] != etag
    assert get(server, etag=changed.headers["etag"]).status_code == 304


def test_a_write_by_another_process_straight_to_the_store_is_seen(server: RunningServer) -> None:
    etag = get(server).headers["etag"]

    async def write() -> None:
        other = open_backend(server.settings.backend_url)
        try:
            await other.report(NodeReport("web-3", "web", State.DRAINING))
        finally:
            await other.close()

    asyncio.run(write())
    changed = get(server, etag=etag)
    assert changed.status_code == 200
    assert 'data-node="web-3"' in changed.text


def test_another_filter_or_page_is_not_answered_by_an_old_etag(server: RunningServer) -> None:
    etag = get(server).headers["etag"]
    halted = get(server, LIVE + "?state=halted", etag=etag)
    assert halted.status_code == 200
    assert 'data-node="db-1"' in halted.text
    assert 'data-node="web-1"' not in halted.text
    assert get(server, LIVE + "?state=halted", etag=halted.headers["etag"]).status_code == 304
    assert get(server, LIVE + "?page=2", etag=etag).status_code == 200


def test_admin_mode_is_not_answered_by_the_anonymous_etag(server: RunningServer) -> None:
    etag = get(server).headers["etag"]
    admin = get(server, etag=etag, authorization=f"Bearer {ADMIN}")
    assert admin.status_code == 200
    assert 'data-action="pause-all"' in admin.text
    refused = get(server, etag=admin.headers["etag"], authorization="Bearer wrong")
    assert refused.status_code == 200
    assert 'data-action="pause-all"' not in refused.text


def test_a_node_going_silent_with_no_write_sends_the_new_live_part(tmp_path: Path) -> None:
    """Time alone changes the page: the board is kept only until its first threshold."""
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db", silent_after=timedelta(seconds=1)
    )
    with running(settings) as srv:
        report(srv, "web-1")
        first = get(srv)
        assert "SILENT" not in first.text
        time.sleep(1.2)
        later = get(srv, etag=first.headers["etag"])
    assert later.status_code == 200
    assert "SILENT" in later.text
    assert later.headers["etag"] != first.headers["etag"]


def test_the_live_part_is_compressed_for_a_browser_that_asks(server: RunningServer) -> None:
    plain = get(server, **{"accept-encoding": "identity"})
    zipped = get(server, **{"accept-encoding": "gzip"})
    assert zipped.headers.get("content-encoding") == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.text.count("data-node=") == plain.text.count("data-node=")


def test_a_costly_board_is_kept_a_while_through_writes_unless_asked_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big fleet's board (here: any board, as if each build had been costly) is kept for
    a few times its build even when the store changes, so a fleet that writes all the time
    does not rebuild it at every refresh; the script's refresh right after an act asks
    `Cache-Control: no-cache` and gets the store as it is now."""
    monkeypatch.setattr(dashboard, "KEPT_FROM_SECONDS", 0.0)
    monkeypatch.setattr(dashboard, "KEEP_FACTOR", 1_000_000)
    tokens = (Token("admin:ops", digest(ADMIN), admin=True),)
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db", tokens=tokens)) as srv:
        report(srv, "web-1")
        etag = get(srv).headers["etag"]
        report(srv, "web-2")
        assert get(srv, etag=etag).status_code == 304
        fresh = get(srv, etag=etag, **{"cache-control": "no-cache"})
    assert fresh.status_code == 200
    assert 'data-node="web-2"' in fresh.text

"""`stagger history` pages: --all streams every event newest first page by page, --prefix
and --since filter, on a temp SQLite file and the session's real etcd."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from cli_support import run
from stagger.backends.factory import open_backend
from stagger.cli import pages


def cycles(url: str, *ids: str) -> None:
    async def go() -> None:
        b = open_backend(url)
        try:
            for node_id in ids:
                await b.acquire("web", node_id)
                await b.release("web", node_id)
        finally:
            await b.close()

    asyncio.run(go())


def test_all_streams_every_event_newest_first(
    any_backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "HISTORY_PAGE", 3)
    cycles(any_backend_url, *(f"web-{i}" for i in range(5)))
    whole = run("history", "--limit", "1000", "--json", backend=any_backend_url).json()
    r = run("history", "--all", "--json", backend=any_backend_url)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc == {"events": whole["events"], "next_cursor": None}
    assert len(doc["events"]) == 10
    table = run("history", "--all", backend=any_backend_url)
    assert table.out.count("acquired") == 5


def test_prefix_and_since_filter_the_history(any_backend_url: str) -> None:
    cycles(any_backend_url, "web-1", "web-2", "db-1")
    doc = run("history", "--prefix", "web-2", "--json", backend=any_backend_url).json()
    assert [(e["id"], e["action"]) for e in doc["events"]] == [
        ("web-2", "released"),
        ("web-2", "acquired"),
    ]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert run("history", "--since", later, "--json", backend=any_backend_url).json() == {
        "events": [],
        "next_cursor": None,
    }
    assert (
        len(run("history", "--since", "1h", "--json", backend=any_backend_url).json()["events"])
        == 6
    )


def test_all_with_reverse_is_refused_in_one_sentence(any_backend_url: str) -> None:
    cycles(any_backend_url, "web-1")
    r = run("history", "--all", "--reverse", backend=any_backend_url)
    assert r.code == 2
    assert "--all prints every event newest first" in r.err

"""No report, pause or duration can break a shared view: every time and duration is checked
at the boundary (the API answers 400, the CLI exits 2 with one sentence), and every reader
shows a stored value it cannot render as invalid instead of failing (docs/configuration.md,
"Times and durations"). Through a real server on loopback, the real CLI and real SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli_support import assert_one_sentence, run
from conftest import created
from server_support import RunningServer, running
from stagger.server.settings import ServerSettings

FAR = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC: no datetime can hold it
EARLY = "0001-01-01T00:30:00+14:00"  # year 0 in UTC
HUGE = "99999999999999999999d"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


@pytest.fixture
def server(db: Path) -> Iterator[RunningServer]:
    with running(ServerSettings(backend_url=f"sqlite:///{db}")) as srv:
        yield srv


def assert_views_work(srv: RunningServer) -> None:
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        for path in ("/", "/dashboard/live", "/v1/nodes"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.text[:300])
    r = run("nodes", backend=srv.url)
    assert r.code == 0, r.err
    assert "Traceback" not in r.out + r.err


# --- the API refuses them ----------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("next_window", FAR), ("needed_since", EARLY)])
def test_a_report_with_a_time_out_of_range_is_400_and_the_views_keep_working(
    server: RunningServer, field: str, value: str
) -> None:
    doc = {"group": "web", "state": "waiting", field: value}
    r = httpx.post(f"{server.url}/v1/nodes/web-1/report", json=doc, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["kind"] == "invalid_request"
    assert field in r.json()["value"]
    assert "out of range" in r.json()["value"]
    assert_views_work(server)


@pytest.mark.parametrize("until", [FAR, "2030-01-01T00:00:00"])
def test_a_pause_until_out_of_range_or_without_offset_is_400(
    server: RunningServer, until: str
) -> None:
    doc = {"reason": "freeze", "until": until}
    r = httpx.post(f"{server.url}/v1/groups/web/pause", json=doc, timeout=10)
    assert r.status_code == 400, r.text
    assert "pause end" in r.json()["value"]
    assert run("status", backend=server.url).code == 0


@pytest.mark.parametrize("limit", ["9" * 5000, "²", "-1", "0", " 5"])
def test_a_history_limit_that_is_not_a_plain_number_in_range_is_400(
    server: RunningServer, limit: str
) -> None:
    r = httpx.get(f"{server.url}/v1/history", params={"limit": limit}, timeout=10)
    assert r.status_code == 400, r.text
    assert "limit must be a whole number" in r.json()["value"]


# --- the CLI refuses them ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (("pause", "--reason", "r", "--until", FAR), "--until"),
        (("pause", "--reason", "r", "--for", "3000000d"), "--for"),
        (("pause", "--reason", "r", "--for", HUGE), "--for"),
        (("set-max", "2", "--hold-ttl", "3000000d"), "--hold-ttl"),
        (("set-max", "2", "--stale-after", HUGE), "--stale-after"),
        (("nodes", "--silent-after", HUGE), "--silent-after"),
    ],
)
def test_the_cli_refuses_a_time_or_duration_out_of_range(
    db: Path, args: tuple[str, ...], word: str
) -> None:
    url = created(f"sqlite:///{db}")
    r = run(*args, backend=url)
    assert_one_sentence(r, 2, word)
    assert run("status", backend=url).code == 0  # nothing was written that breaks it


def test_windows_from_a_time_out_of_range_is_one_sentence(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    r = run("windows", "--config", str(cfg), "--from", "9999-12-31T00:00:00Z", backend=None)
    assert_one_sentence(r, 2, "--from", "out of range")


def test_a_duration_too_large_for_any_clock_in_the_config_is_one_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[cycle]\nretry = "{HUGE}"\n')
    r = run("config", "check", "--config", str(cfg), backend=None)
    assert_one_sentence(r, 2, "retry", "10 years")


# --- readers survive what is already stored ----------------------------------------------------


def store_report(db: Path, node_id: str, **times: str) -> None:
    doc = {"version_format": 1, "id": node_id, "group": "web", "state": "waiting"}
    doc.update(times, updated_at="2026-12-01T00:00:00+00:00")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO nodes (id, grp, updated_at, data) VALUES (?, 'web', ?, ?)",
            (node_id, doc["updated_at"], json.dumps(doc)),
        )


def edit_group(db: Path, group: str, **changes: object) -> None:
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute("SELECT data FROM groups WHERE name = ?", (group,)).fetchone()
        doc = {**json.loads(raw), **changes}
        conn.execute("UPDATE groups SET data = ? WHERE name = ?", (json.dumps(doc), group))


def test_a_stored_report_with_an_unshowable_time_leaves_every_view_working(
    server: RunningServer, db: Path
) -> None:
    assert run("set-max", "1", "--group", "web", backend=server.url).code == 0
    store_report(db, "bad-1", next_window=FAR)
    store_report(db, "bad-2", needed_since=EARLY)
    assert_views_work(server)
    doc = run("nodes", "--json", backend=server.url).json()
    assert {u["key"] for u in doc["unreadable"]} == {"bad-1", "bad-2"}


def test_a_stored_pause_until_an_unshowable_time_is_shown_as_invalid(db: Path) -> None:
    url = f"sqlite:///{db}"
    assert run("pause", "--group", "web", "--reason", "r", "--for", "1h", backend=url).code == 0
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute("SELECT data FROM groups WHERE name = 'web'").fetchone()
    pause = {**json.loads(raw)["pause"], "until": FAR}
    edit_group(db, "web", pause=pause)
    r = run("status", backend=url)
    assert r.code == 0, r.err
    assert f"invalid time ({FAR})" in r.out
    with running(ServerSettings(backend_url=url)) as srv:
        assert_views_work(srv)


def test_a_stored_hold_ttl_beyond_the_limit_does_not_break_locking(db: Path) -> None:
    url = f"sqlite:///{db}"
    assert run("set-max", "2", "--group", "web", "--hold-ttl", "1h", backend=url).code == 0
    edit_group(db, "web", hold_ttl=3_000_000 * 86400)
    assert run("lock", "--group", "web", "--id", "n1", backend=url).code == 0
    with running(ServerSettings(backend_url=url)) as srv:
        r = httpx.post(
            f"{srv.url}/v1/pre-reboot",
            json={"client_params": {"id": "n2", "group": "web"}},
            headers={"fleet-lock-protocol": "true"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert_views_work(srv)

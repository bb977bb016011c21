"""What only the SQLite backend promises: its URLs, its file, its schema, its errors.
The behaviours every backend shares are in test_backend_contract.py."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clock_support import ManualClock
from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend
from stagger.backends.sqlite import SqliteBackend, parse_sqlite_url
from stagger.backends.sqlite_file import APPLICATION_ID
from stagger.core.errors import BackendUnavailable, ConfigError, InvalidInput
from stagger.core.semaphore import HISTORY_LIMIT, Denied, Granted


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    b = SqliteBackend.from_url(f"sqlite:///{tmp_path}/s/stagger.db")
    yield b
    await b.close()


def rows(path: str | Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


# --- URLs ------------------------------------------------------------------------------


def test_three_slashes_name_an_absolute_path() -> None:
    assert parse_sqlite_url("sqlite:///var/lib/stagger/stagger.db") == "/var/lib/stagger/stagger.db"


def test_four_slashes_also_name_an_absolute_path() -> None:
    assert parse_sqlite_url("sqlite:////tmp/x/stagger.db") == "/tmp/x/stagger.db"


def test_memory_url_names_a_private_in_memory_store() -> None:
    assert parse_sqlite_url("sqlite:///:memory:") == ":memory:"
    assert parse_sqlite_url("sqlite://:memory:") == ":memory:"


def test_a_path_without_the_third_slash_is_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_sqlite_url("sqlite://data/stagger.db") == str(tmp_path / "data" / "stagger.db")
    assert parse_sqlite_url("sqlite://./stagger.db") == str(tmp_path / "stagger.db")


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite:///x.db?mode=ro", "sqlite:///x.db#frag", "mysql://x"]
)
def test_a_malformed_url_is_a_config_error_that_shows_the_right_form(url: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("sqlite:///path/to.db")):
        parse_sqlite_url(url)


def test_the_factory_opens_a_sqlite_backend(tmp_path: Path) -> None:
    b = open_backend(f"sqlite:///{tmp_path}/stagger.db")
    assert isinstance(b, SqliteBackend)
    assert isinstance(b, Backend)


def test_an_option_of_another_backend_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_cert"):
        SqliteBackend.from_url(f"sqlite:///{tmp_path}/s.db", ca_cert="/x.pem")


def test_options_given_as_none_are_ignored(tmp_path: Path) -> None:
    b = SqliteBackend.from_url(f"sqlite:///{tmp_path}/s.db", ca_cert=None, default_max=None)
    assert b.default_max == 1


def test_a_bad_default_max_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="default_max"):
        SqliteBackend.from_url(f"sqlite:///{tmp_path}/s.db", default_max=-1)


# --- the file -----------------------------------------------------------------------------


async def test_first_use_creates_the_parent_directory_and_the_schema(
    store: SqliteBackend, tmp_path: Path
) -> None:
    await store.ping()
    db = tmp_path / "s" / "stagger.db"
    assert db.is_file()
    tables = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"groups", "events"} <= tables


async def test_the_file_is_in_wal_mode(store: SqliteBackend, tmp_path: Path) -> None:
    await store.ping()
    assert rows(tmp_path / "s" / "stagger.db", "PRAGMA journal_mode") == [("wal",)]


async def test_an_unwritable_path_is_a_config_error_that_says_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    b = SqliteBackend.from_url(f"sqlite:///{blocker}/sub/stagger.db")
    with pytest.raises(ConfigError, match="choose another path with --backend"):
        await b.ping()


async def test_a_store_written_by_a_newer_stagger_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # a stagger store
    b = SqliteBackend.from_url(f"sqlite:///{db}")
    with pytest.raises(BackendUnavailable, match="newer stagger"):
        await b.ping()


async def test_an_unreadable_group_row_is_reported_not_overwritten(
    store: SqliteBackend, tmp_path: Path
) -> None:
    await store.acquire("web", "a")
    db = tmp_path / "s" / "stagger.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE groups SET data = '{broken' WHERE name = 'web'")
    with pytest.raises(BackendUnavailable, match="inspect it by hand"):
        await store.acquire("web", "b")
    assert rows(db, "SELECT data FROM groups WHERE name = 'web'") == [("{broken",)]


async def test_the_in_memory_store_works_without_a_file() -> None:
    b = SqliteBackend.from_url("sqlite:///:memory:")
    assert isinstance(await b.acquire("web", "a"), Granted)
    assert (await b.status("web")).groups[0].semaphore.holders(datetime.now(UTC)) == ("a",)
    await b.close()


async def test_two_backend_objects_on_one_file_share_the_semaphore(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    one, two = SqliteBackend.from_url(url), SqliteBackend.from_url(url)
    assert isinstance(await one.acquire("web", "a"), Granted)
    denied = await two.acquire("web", "b")
    assert isinstance(denied, Denied)
    assert denied.holders == ("a",)
    await one.close()
    await two.close()


# --- what gets written --------------------------------------------------------------------


async def test_each_write_bumps_the_group_row_version(store: SqliteBackend, tmp_path: Path) -> None:
    db = tmp_path / "s" / "stagger.db"
    await store.acquire("web", "a")
    await store.release("web", "a")
    assert rows(db, "SELECT version FROM groups WHERE name = 'web'") == [(2,)]


async def test_an_operation_that_changes_nothing_leaves_the_row_untouched(
    store: SqliteBackend, tmp_path: Path
) -> None:
    db = tmp_path / "s" / "stagger.db"
    await store.acquire("web", "a")
    await store.acquire("web", "a")
    await store.release("web", "nobody")
    await store.set_max("web", 1, by="operator:x")
    await store.resume("web", by="operator:x")
    assert rows(db, "SELECT version FROM groups WHERE name = 'web'") == [(1,)]
    assert rows(db, "SELECT COUNT(*) FROM events") == [(1,)]


async def test_a_denied_acquire_on_an_unknown_group_does_not_create_it(
    store: SqliteBackend, tmp_path: Path
) -> None:
    await store.pause(None, by="operator:x", reason="incident")
    assert isinstance(await store.acquire("web", "a"), Denied)
    names = rows(tmp_path / "s" / "stagger.db", "SELECT name FROM groups")
    assert names == [("*",)]


async def test_the_fleet_pause_is_stored_as_the_pseudo_group_star(
    store: SqliteBackend, tmp_path: Path
) -> None:
    await store.pause(None, by="operator:x", reason="incident")
    assert [r[0] for r in rows(tmp_path / "s" / "stagger.db", "SELECT name FROM groups")] == ["*"]
    assert (await store.status()).groups == ()


async def test_the_default_max_option_sizes_new_groups(tmp_path: Path) -> None:
    b = SqliteBackend.from_url(f"sqlite:///{tmp_path}/s.db", default_max=2)
    assert isinstance(await b.acquire("web", "a"), Granted)
    assert isinstance(await b.acquire("web", "b"), Granted)
    assert isinstance(await b.acquire("web", "c"), Denied)
    await b.close()


async def test_history_is_trimmed_per_group_in_the_same_transaction(
    store: SqliteBackend, tmp_path: Path
) -> None:
    await store.acquire("other", "x")
    for i in range(HISTORY_LIMIT + 3):
        await store.set_max("web", 2 + i % 2, by="operator:x")
    db = tmp_path / "s" / "stagger.db"
    counts = dict(rows(db, "SELECT grp, COUNT(*) FROM events GROUP BY grp"))
    assert counts == {"web": HISTORY_LIMIT, "other": 1}
    newest = await store.history("web", limit=1)
    last = HISTORY_LIMIT + 2
    assert newest[0].detail == f"{2 + (last - 1) % 2} -> {2 + last % 2}"


async def test_a_bad_history_limit_is_invalid_input(store: SqliteBackend) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        await store.history(limit=0)


async def test_expiry_is_judged_by_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    b = SqliteBackend.from_url(f"sqlite:///{tmp_path}/s.db", clock=clock)
    await b.configure("web", by="operator:x", hold_ttl=timedelta(minutes=10))
    await b.acquire("web", "a")
    clock.advance(timedelta(minutes=11))
    assert isinstance(await b.acquire("web", "b"), Granted)
    assert [e.action.value for e in await b.history("web", limit=2)] == ["acquired", "expired"]
    await b.close()

"""One group's read on the event loop's thread (backends/sqlite_reader.py): as fresh as the
worker thread's, never waiting for a lock, and handing anything unusual to the worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stagger.backends.sqlite import SqliteBackend
from stagger.backends.sqlite_file import FileId
from stagger.backends.sqlite_reader import LoopReader
from stagger.core.errors import StoreUnusable


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    backend = SqliteBackend(str(tmp_path / "stagger.db"))
    await backend.set_max("web", 1, by="test")
    yield backend
    await backend.close()


def no_worker(backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every call that goes to the worker thread fail the test, by name."""
    calls: list[str] = []

    async def refused(fn: Any) -> Any:
        calls.append(getattr(fn, "__qualname__", repr(fn)))
        raise AssertionError("this read went to the worker thread")

    monkeypatch.setattr(backend, "_run", refused)
    return calls


def set_max_elsewhere(path: str, group: str, value: int) -> None:
    """Another process writes the store, as an agent or `stagger set-max` would."""
    subprocess.run(
        [sys.executable, "-m", "stagger", "set-max", str(value), "--group", group,
         "--backend", f"sqlite://{path}"],
        check=True, capture_output=True,
    )  # fmt: skip


async def test_a_group_read_runs_on_the_loop_and_sees_another_process_write(
    store: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = no_worker(store, monkeypatch)
    assert (await store.status("web")).groups[0].semaphore.max == 1
    set_max_elsewhere(store.path, "web", 3)
    assert (await store.status("web")).groups[0].semaphore.max == 3
    assert calls == []


async def test_a_read_of_every_group_still_goes_to_the_worker_thread(
    store: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = no_worker(store, monkeypatch)
    with pytest.raises(AssertionError, match="worker thread"):
        await store.status()
    assert len(calls) == 1


async def test_a_removed_store_is_reported_not_read_as_empty(store: SqliteBackend) -> None:
    await store.status("web")
    os.remove(store.path)
    with pytest.raises(StoreUnusable, match="was removed"):
        await store.status("web")


async def test_a_read_from_another_thread_goes_through_the_worker(store: SqliteBackend) -> None:
    await store.set_max("db", 2, by="test")
    assert (await store.status("web")).groups[0].semaphore.max == 1  # the loop's connection
    seen: list[int] = []

    def elsewhere() -> None:
        seen.append(asyncio.run(store.status("db")).groups[0].semaphore.max)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(timeout=60)
    assert seen == [2]


def locked_file(tmp_path: Path) -> tuple[str, FileId, sqlite3.Connection]:
    """A database (rollback journal, where a writer's exclusive lock stops readers) and a
    connection holding that lock."""
    path = str(tmp_path / "locked.db")
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA page_size = 4096")
    setup.execute("CREATE TABLE t (x)")
    setup.execute("INSERT INTO t VALUES (1)")
    setup.close()
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO t VALUES (2)")
    info = os.stat(path)
    return path, FileId(info.st_dev, info.st_ino), writer


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


def test_a_locked_file_is_not_waited_for(tmp_path: Path) -> None:
    path, file, writer = locked_file(tmp_path)
    reader = LoopReader(path)
    try:
        assert reader.read(file, 4096, count) is None  # busy: at once, for the worker
        writer.execute("COMMIT")
        assert reader.read(file, 4096, count) == 2
    finally:
        writer.close()
        reader.close()


def test_another_file_at_the_path_or_a_cut_file_is_left_to_the_worker(tmp_path: Path) -> None:
    path, file, writer = locked_file(tmp_path)
    writer.execute("COMMIT")
    writer.close()
    reader = LoopReader(path)
    try:
        assert reader.read(file, 4096, count) == 2
        assert reader.read(FileId(file.device, file.inode + 1), 4096, count) is None
        assert reader.read(None, 4096, count) is None  # the backend has not opened it
        shutil.copy(path, path + ".copy")
        os.replace(path + ".copy", path)
        assert reader.read(file, 4096, count) is None  # the old file's id
        info = os.stat(path)
        with open(path, "ab") as f:
            f.write(b"\0" * 100)
        assert reader.read(FileId(info.st_dev, info.st_ino), 4096, count) is None
    finally:
        reader.close()


def test_nothing_is_written_through_it(tmp_path: Path) -> None:
    path, file, writer = locked_file(tmp_path)
    writer.execute("COMMIT")
    writer.close()
    reader = LoopReader(path)

    def write(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t VALUES (3)")
        return 1

    try:
        assert reader.read(file, 4096, write) is None
        assert reader.read(file, 4096, count) == 2  # the two rows locked_file wrote
    finally:
        reader.close()


def test_a_named_read_is_not_made_again_until_something_is_committed(tmp_path: Path) -> None:
    path, file, writer = locked_file(tmp_path)
    writer.execute("COMMIT")
    reader = LoopReader(path)
    made: list[int] = []

    def counted(conn: sqlite3.Connection) -> int:
        made.append(1)
        return count(conn)

    try:
        assert reader.read(file, 4096, counted, unchanged="t") == 2
        assert reader.read(file, 4096, counted, unchanged="t") == 2
        assert len(made) == 1  # nothing committed in between
        writer.execute("INSERT INTO t VALUES (3)")  # another connection commits
        assert reader.read(file, 4096, counted, unchanged="t") == 3
        assert len(made) == 2
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO t VALUES (4)")
        assert reader.read(file, 4096, counted, unchanged="t") == 3  # not committed yet
        writer.execute("COMMIT")
        assert reader.read(file, 4096, counted, unchanged="t") == 4
        assert reader.read(file, 4096, count) == 4  # an unnamed read is always made
    finally:
        writer.close()
        reader.close()


async def test_the_backends_own_writes_are_seen_by_the_next_read(store: SqliteBackend) -> None:
    for value in (2, 3, 1):
        await store.set_max("web", value, by="test")
        assert (await store.status("web")).groups[0].semaphore.max == value

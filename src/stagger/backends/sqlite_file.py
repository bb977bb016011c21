"""Whether a file is a stagger store, and how one is created: a damaged or foreign file is
reported, never read as an empty fleet and never replaced (docs/backends.md, "A store is
never replaced").

A stagger store carries a marker in its SQLite header, `PRAGMA application_id` =
APPLICATION_ID ("STGR"). Files written before the marker existed have application_id 0,
user_version 1 and a `groups` table; they are recognised by those and marked when opened.
Nothing is written to a file before it is recognised (`recognise` only reads), so a file
that is not ours is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stagger.core.errors import StoreUnusable

APPLICATION_ID = 0x53544752  # "STGR"
_HEADER = 100

KEEP_IT = (
    "stagger does not replace it: restore it from a backup (with every stagger process "
    "using it stopped), or move it away so a stagger command that writes creates an empty "
    "store (every hold, pause and event it held is then lost)"
)


@dataclass(frozen=True)
class FileId:
    """Which file a path names (so a file swapped under an open store is noticed)."""

    device: int
    inode: int


@dataclass(frozen=True)
class FileInfo:
    id: FileId
    size: int


def unusable(path: str, what: str) -> StoreUnusable:
    return StoreUnusable(f"the SQLite file {path} {what}; {KEEP_IT}")


def inspect(path: str) -> FileInfo | None:
    """What is at `path`, by os.stat alone; None when nothing is. Raises StoreUnusable for a
    file that cannot be a store: not a regular file, empty, shorter than a SQLite header.

    The file is never opened here: closing any descriptor of a file drops every POSIX lock
    this process holds on it, SQLite's own included, which would let another process write
    (or delete the journal) under a transaction. SQLite reads the header (recognise)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise unusable(path, "is not a regular file, so it is not a stagger store")
    if info.st_size == 0:
        raise unusable(path, "is empty (0 bytes), so it is not a stagger store: it was truncated")
    if info.st_size < _HEADER:
        raise unusable(path, f"is only {info.st_size} bytes, so it is not a stagger store")
    return FileInfo(FileId(info.st_dev, info.st_ino), info.st_size)


def check_pages(path: str, size: int, page: int) -> None:
    """A SQLite file is whole pages (in WAL mode too); anything else was cut short."""
    if page < 512 or size < page or size % page:
        raise unusable(
            path, f"is damaged: its {size} bytes are not whole {page}-byte pages (truncated?)"
        )


def recognise(path: str, conn: sqlite3.Connection, size: int) -> int:
    """Raise StoreUnusable unless the file SQLite opened is a stagger store: a SQLite
    database, whole pages, marked, or unmarked but written before the marker existed
    (user_version 1 and a groups table), and not damaged inside (quick_check). Reads only.
    Returns its page size."""
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise unusable(
            path, f"is not a SQLite database ({exc}), so it is not a stagger store"
        ) from exc
    if app not in (0, APPLICATION_ID):
        raise unusable(
            path,
            f"is another program's SQLite database (application_id {app:#x}), not a stagger "
            "store: check the path given to --backend",
        )
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    check_pages(path, size, page)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if app != APPLICATION_ID and (version < 1 or "groups" not in tables):
        raise unusable(
            path,
            "is a SQLite database but not a stagger store (no stagger marker, no groups "
            "table): check the path given to --backend",
        )
    problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
    if problems != ["ok"]:
        raise unusable(path, f"is damaged ({'; '.join(problems)})")
    return int(page)


def create(path: str, initialise: Callable[[sqlite3.Connection], None]) -> None:
    """Create a new store at `path`, atomically and only where no file is: the store is
    written complete under a temporary name, then linked to `path`, which fails if a file
    appeared there meanwhile (another process created it first: that one is used)."""
    target = Path(path)
    if Path(path + "-wal").exists():
        raise unusable(
            path + "-wal",
            f"is left without its store {path} (the store was removed?), and a new store "
            "there would read it",
        )
    temp = target.with_name(f".{target.name}.new-{secrets.token_hex(4)}")
    try:
        conn = sqlite3.connect(temp, isolation_level=None)
        try:
            initialise(conn)  # the schema and the marker, in one committed transaction
        finally:
            conn.close()
        with contextlib.suppress(FileExistsError):
            os.link(temp, target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    finally:
        for leftover in (temp, temp.with_name(temp.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()

"""Whether a file is a stagger store, and how one is created: a damaged or foreign file is
reported, never read as an empty fleet and never replaced (docs/backends.md, "A store is
never replaced").

A stagger store carries a marker in its SQLite header, `PRAGMA application_id` =
APPLICATION_ID ("STGR"). Files written before the marker existed have application_id 0,
user_version 1 and a `groups` table; they are recognised by those and marked when opened.
The header is read here with plain file I/O, before SQLite touches the file, so SQLite never
"repairs" or initialises a file that is not ours.
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
_MAGIC = b"SQLite format 3\x00"
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


def unusable(path: str, what: str) -> StoreUnusable:
    return StoreUnusable(f"the SQLite file {path} {what}; {KEEP_IT}")


def inspect(path: str) -> FileId | None:
    """The file at `path` if its header is a stagger store's (or an unmarked SQLite database,
    which the caller must still recognise by its tables); None when there is no file. Raises
    StoreUnusable for anything else: empty, truncated, not SQLite, another program's; and
    OSError when the file cannot be read at all."""
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            head = f.read(_HEADER) if stat.S_ISREG(info.st_mode) else b""
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise unusable(path, "is not a regular file, so it is not a stagger store")
    if info.st_size == 0:
        raise unusable(path, "is empty (0 bytes), so it is not a stagger store: it was truncated")
    if len(head) < _HEADER or not head.startswith(_MAGIC):
        raise unusable(path, "is not a SQLite database, so it is not a stagger store")
    app = int.from_bytes(head[68:72], "big", signed=True)
    if app not in (0, APPLICATION_ID):
        raise unusable(
            path,
            f"is another program's SQLite database (application_id {app:#x}), not a stagger "
            "store: check the path given to --backend",
        )
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or info.st_size % page:
        raise unusable(
            path,
            f"is damaged: its {info.st_size} bytes are not whole {page}-byte pages (truncated?)",
        )
    return FileId(info.st_dev, info.st_ino)


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

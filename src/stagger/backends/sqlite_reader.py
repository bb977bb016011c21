"""A read of the SQLite store on the event loop's own thread, for the reads a server answers
FleetLock from (one group's record and the fleet's, docs/backends.md "SQLite reads on the
event loop").

Every other call of the SQLite backend runs on a worker thread, where it may wait up to the
busy timeout for another process's lock. Handing each read of one small row to a worker
thread and back costs more than the read itself: the thread's wake-up, the interpreter lock
passed between the two threads, and the loop's wake-up when the answer comes back. A store
in WAL mode lets a reader go on while another connection writes, so such a read can run
where it is asked, on a connection of its own that never waits:

- its busy timeout is 0: whenever SQLite would wait (a lock, a WAL being recovered) the
  read gives up at once and the caller makes the same read on the worker thread, which
  waits as every call does, and so does any other SQLite error (the worker thread's read
  reports it as the backend always does);
- it is used only from the thread that opened it (the event loop's); a call from another
  thread goes to the worker thread; the backend closes it when it closes;
- it is opened only once the backend's own connection has opened and checked the file,
  with `mode=rw` (SQLite never creates a file here) and `query_only`, so
  nothing is ever written through it; before each read the file at the path must still be
  the one the backend opened (a restored backup swapped in under the store is reopened by
  the worker thread's next call, and then this connection too).

A read that begins after a request arrived sees every transaction committed before that
(WAL readers see the newest commit), so answers stay as fresh as on the worker thread. And a
read asked again while nothing was committed to the file since the last one (`PRAGMA
data_version`, one small statement) returns what the last one found: a busy group's record
(~71 KB with a full queue) is then neither read nor decoded again for every batch.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar, cast
from urllib.parse import quote

from stagger.backends import sqlite_file
from stagger.backends.sqlite_file import FileId
from stagger.core.errors import StaggerError

T = TypeVar("T")
KEPT_READS = 1_000  # named reads kept (a server's groups); beyond it, start over


def _same_file(path: str, opened: FileId | None, page: int) -> FileId | None:
    """`opened` when the file at `path` is still that one and whole pages; else None."""
    if opened is None:
        return None
    try:
        found = sqlite_file.inspect(path)
        if found is None or found.id != opened:
            return None
        sqlite_file.check_pages(path, found.size, page)
    except (OSError, StaggerError):
        return None
    return opened


class LoopReader:
    """A read-only connection to one store file for one thread, that never waits."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._file: FileId | None = None
        self._thread = 0
        # What each named read returned, with the data_version it was read at.
        self._kept: dict[str, tuple[int, object]] = {}

    def read(
        self,
        opened: FileId | None,
        page: int,
        fn: Callable[[sqlite3.Connection], T],
        *,
        unchanged: str = "",
    ) -> T | None:
        """`fn` run on this thread's connection, or None when the caller must make the read
        on its worker thread: the file at the path is not the one the backend opened
        (`opened`, of `page`-byte pages) or not whole, another thread asks, or SQLite
        fails in any way (busy included). The worker thread's read then reopens a swapped
        file, or reports a removed or damaged one, as every call of the backend does.

        With `unchanged` (a name for what `fn` reads), what `fn` returned the last time is
        returned again, without running it, while no transaction was committed to the file
        since (`PRAGMA data_version` is the same: it moves with every commit of any other
        connection, this process's own writer included)."""
        file = _same_file(self.path, opened, page)
        if file is None:
            return None
        thread = threading.get_ident()
        conn = self._conn
        if conn is None or self._file != file or self._thread != thread:
            if conn is not None and self._thread != thread:
                return None  # opened by another thread: only that one uses it
            conn = self._open(file, thread)
            if conn is None:
                return None
        try:
            if not unchanged:
                return fn(conn)
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            kept = self._kept.get(unchanged)
            if kept is not None and kept[0] == version:
                return cast(T, kept[1])
            result = fn(conn)
            if unchanged not in self._kept and len(self._kept) >= KEPT_READS:
                self._kept.clear()
            self._kept[unchanged] = (version, result)
            return result
        except sqlite3.Error:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self.close()
            return None

    def _open(self, file: FileId, thread: int) -> sqlite3.Connection | None:
        self.close()
        try:
            conn = sqlite3.connect(
                f"file:{quote(self.path)}?mode=rw",
                uri=True,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,  # the thread is checked in `read`; closed from any
            )
        except sqlite3.Error:
            return None
        try:
            conn.execute("PRAGMA query_only = 1")
        except sqlite3.Error:
            conn.close()
            return None
        self._conn, self._file, self._thread = conn, file, thread
        self._kept.clear()  # data_version is the connection's own
        return conn

    def close(self) -> None:
        conn, self._conn, self._file = self._conn, None, None
        if conn is not None:
            conn.close()

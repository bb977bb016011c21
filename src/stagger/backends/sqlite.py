"""The embedded default backend: every semaphore of a fleet in one SQLite file.

Safe for several processes on one host (the agent, the CLI, the server): the file is in WAL
mode, every read-apply-write runs inside `BEGIN IMMEDIATE` (which takes the single write lock
up front, so two writers can never both read the same state and both write), and a busy
timeout makes a writer wait for the lock instead of failing. Because writes are serialized by
SQLite itself there is no compare-and-swap to lose, and so nothing to retry.

The file is marked as stagger's (`PRAGMA application_id`, see sqlite_file.py) and checked
before every use: a damaged, emptied or foreign file is an error (StoreUnusable), never an
empty fleet, and it is never replaced. A store is created only where no file is, and only by
an opener that asks for it (`create`).

Layout (schema version 3, kept in `PRAGMA user_version`; a version 1 or 2 store is migrated
when opened, and an older stagger refuses a version 3 store rather than write reports that the
summary would not count):
- `groups(name, version, data)`: one row per group; `data` is the codec's JSON of the
  Semaphore, `version` counts its writes. The fleet-wide pause is the row of the pseudo-group
  `*` (core.semaphore.FLEET).
- `events(id, grp, seq, time, data)`: history; `seq` numbers each group's events, `id` orders
  all of them. Trimmed to HISTORY_LIMIT per group in the same transaction that adds to it.
- `nodes(id, grp, updated_at, data, state, seen, needs)`: each node's last report
  (core.node_report.NodeReport's JSON), replaced by the next; `state`, `seen` (updated_at
  in seconds since the epoch) and `needs` are copied out of it for the indexes that page and
  filter the fleet view (core/listing.py) and judge a rollout without reading every report
  (sqlite_summary.py).
- `node_counts(grp, state, n)`: how many reports are in each group and state, kept by
  triggers on `nodes` in the transaction of every report write and forget, so a summary
  (the totals of a page, /metrics) reads one row per group and state.
- `roles(name, data)`: a job one server does at a time (core.roles.Role's JSON: owner,
  expires_at by this process's clock, and the holder's mark). Added without a schema bump,
  like `nodes`.

Expiry (a group's hold_ttl) is judged by this process's clock at the moment it holds the
write lock: one clock for a host, which is the only place this file is shared.

Why this file is long (~800 lines): it holds the SQL of the store's records, history, reports
and roles, so that a change to a table and every query that reads it are made and reviewed
together; the summary of the reports (its schema, migration and reads) is sqlite_summary.py,
and what is not SQL lives in semaphore_store.py, node_pages.py and sqlite_file.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from stagger.backends import sqlite_file
from stagger.backends.codec import decode_events, decode_semaphore, encode_event, encode_semaphore
from stagger.backends.node_pages import read_node_page
from stagger.backends.protocol import (
    Clock,
    Snapshot,
    UnreadableReports,
    snapshot_of,
    utcnow,
    validate_limit,
)
from stagger.backends.semaphore_store import Op, SemaphoreStore, Settle, check_default_max
from stagger.backends.sqlite_reader import LoopReader
from stagger.backends.sqlite_summary import (
    IN_CHUNK,
    RawGroupNodes,
    read_counts,
    read_group_nodes,
    seconds,
    summarise,
    summary_columns,
)
from stagger.core import roles
from stagger.core.errors import (
    BackendUnavailable,
    ConfigError,
    NoStore,
    StaggerError,
    StoreUnusable,
)
from stagger.core.forget import check_forget, forgotten
from stagger.core.listing import (
    SILENT,
    HistoryPage,
    HistoryQuery,
    NodeCounts,
    NodePage,
    NodeQuery,
    ReportPage,
)
from stagger.core.node_report import NodeReport, StoredReports, decode_reports
from stagger.core.roles import Role
from stagger.core.rollout_reads import GroupNodes
from stagger.core.secrets import mask_url
from stagger.core.semaphore import (
    DEFAULT_MAX,
    FLEET,
    HISTORY_LIMIT,
    Event,
    Semaphore,
    validate_group,
    validate_id,
)

MEMORY = ":memory:"
SCHEMA_VERSION = 3
# How long a writer waits for another process's transaction before giving up. Transactions
# here last a millisecond or so; a lock held this long means a stuck process.
DEFAULT_BUSY_TIMEOUT = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    name    TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    grp  TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    time TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (grp, seq)
);
CREATE TABLE IF NOT EXISTS nodes (
    id         TEXT PRIMARY KEY,
    grp        TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    data       TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT '',
    seen       REAL NOT NULL DEFAULT 0,
    needs      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS roles (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
"""


T = TypeVar("T")


def parse_sqlite_url(url: str) -> str:
    """The database path a `sqlite://` URL names (or ":memory:").

    - `sqlite:///abs/path.db` (and `sqlite:////abs/path.db`): an absolute path.
    - `sqlite:///:memory:` or `sqlite://:memory:`: a private in-memory store (one process,
      gone when the backend is closed; for tests and demos).
    - `sqlite://rel/path.db`, `sqlite://./rel.db`, `sqlite://~/stagger.db`: relative to the
      current directory (or the home directory), resolved when the URL is opened.
    """
    scheme, sep, rest = url.partition("://")
    if scheme != "sqlite" or not sep:
        raise ConfigError(
            f"backend URL {mask_url(url)!r} is not a sqlite URL: write sqlite:///path/to.db"
        )
    if "?" in rest or "#" in rest:
        raise ConfigError(
            f"backend URL {mask_url(url)!r} has a query or fragment, which sqlite URLs do not "
            "take: "
            "write sqlite:///path/to.db and pass options separately"
        )
    if rest in (MEMORY, "/" + MEMORY):
        return MEMORY
    if rest.strip("/") == "":
        raise ConfigError(
            f"backend URL {mask_url(url)!r} names no file: write sqlite:///path/to.db"
        )
    if rest.startswith("/"):
        return "/" + rest.lstrip("/")
    return str(Path(rest).expanduser().resolve())


class SqliteBackend(SemaphoreStore):
    """The Backend Protocol on one SQLite file. One connection per object, used from worker
    threads (asyncio.to_thread) one call at a time."""

    def __init__(
        self,
        path: str,
        *,
        url: str | None = None,
        default_max: int = DEFAULT_MAX,
        clock: Clock = utcnow,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        inline: bool = False,
        create: bool = True,
    ) -> None:
        check_default_max(default_max)
        if busy_timeout <= 0:
            raise ConfigError("busy_timeout must be a positive number of seconds, like 10")
        self.path = path
        self.url = url or ("sqlite:///" + MEMORY if path == MEMORY else f"sqlite://{path}")
        self.default_max = default_max
        self.clock = clock
        self.busy_timeout = busy_timeout
        # inline: run each call on the caller's thread, without a hop to a worker thread. For
        # one-thread users only (the simulator's virtual clock makes thousands of calls).
        self.inline = inline
        # create: make the store when no file is at `path` (never over an existing file);
        # commands that only read, or change nothing in a missing store, pass False.
        self.create = create
        self._ident: sqlite_file.FileId | None = None
        self._page = 0  # the open store's page size
        self._conn: sqlite3.Connection | None = None
        self._reader = LoopReader(path)  # one group's read on the event loop's thread
        self._lock = threading.Lock()
        self._unreadable = UnreadableReports(self._inspect_report)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SqliteBackend:
        """Options: default_max (slots of a group never configured, default 1), clock (a
        callable returning an aware UTC datetime; tests inject one), busy_timeout (seconds),
        inline (no worker thread per call; the simulator's), create (make the store if no
        file is there; default True).
        Options given as None are ignored, so callers can pass every flag they have."""
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - {"default_max", "clock", "busy_timeout", "inline", "create"})
        if unknown:
            raise ConfigError(
                f"the sqlite backend does not take the option(s) {', '.join(unknown)}: "
                "they belong to another backend; drop them or use that backend's URL"
            )
        return cls(parse_sqlite_url(url), url=url, **given)

    def _inspect_report(self, node_id: str) -> str:
        return f"sqlite3 {self.path} \"SELECT data FROM nodes WHERE id = '{node_id}'\""

    # --- the connection -------------------------------------------------------------------

    def _where(self) -> str:
        return "the in-memory SQLite store" if self.path == MEMORY else f"SQLite file {self.path}"

    def _not_writable(self, exc: BaseException) -> ConfigError:
        return ConfigError(
            f"cannot write {self._where()} ({exc}): run stagger as a user who may write "
            f"{Path(self.path).parent} (root for /var/lib/stagger), or choose another path "
            "with --backend sqlite:///path/to/stagger.db"
        )

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            if self.path != MEMORY:
                self._check_file()
            if self._conn is not None:
                return self._conn
        if self.path == MEMORY:
            conn = sqlite3.connect(
                MEMORY, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._initialise(conn)
            self._conn = conn
            return conn
        found = self._inspect()
        if found is None:
            self._create_store()
            found = self._inspect()
            if found is None:  # removed between its creation and now
                raise self._removed()
        try:
            # mode=rw: SQLite itself must never create the file (only _create_store does)
            conn = sqlite3.connect(
                f"file:{quote(self.path)}?mode=rw",
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # used from worker threads, one at a time (_lock)
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            # before anything is written to the file
            page = sqlite_file.recognise(self.path, conn, found.size)
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed grant survives a power cut; losing one could let a
            # second node take the same slot after the store's host comes back.
            conn.execute("PRAGMA synchronous = FULL")
            self._initialise(conn)
        except StaggerError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        self._conn, self._ident, self._page = conn, found.id, page
        self.create = False  # once opened, a store that disappears is an error, not re-made
        return conn

    def _initialise(self, conn: sqlite3.Connection) -> None:
        """Check the schema version, add any missing table and set the marker, in one
        transaction."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise BackendUnavailable(
                    f"{self._where()} was written by a newer stagger (schema {version}); "
                    "upgrade this stagger before using it"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            summarise(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(f"PRAGMA application_id = {sqlite_file.APPLICATION_ID}")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _create_store(self) -> None:
        if not self.create:
            raise NoStore(
                f"there is no stagger store at {self.path}: check the path in --backend (or "
                "$STAGGER_BACKEND, or [agent].backend); a store is created by the first "
                "`stagger lock`, `set-max` or `pause`, or by `stagger agent` or `stagger server`"
            )
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            sqlite_file.create(self.path, self._initialise)
        except sqlite3.Error as exc:
            raise self._not_writable(exc) from exc
        except OSError as exc:
            raise self._not_writable(exc) from exc

    def _removed(self) -> StoreUnusable:
        return StoreUnusable(
            f"the SQLite file {self.path} was removed while stagger was using it: restore it "
            "from a backup; stagger does not create a new one in its place, since every hold "
            "and pause it held would be lost (a stagger server or agent creates one only when "
            "it starts)"
        )

    def _inspect(self) -> sqlite_file.FileInfo | None:
        try:
            return sqlite_file.inspect(self.path)
        except OSError as exc:
            raise self._not_writable(exc) from exc

    def _check_file(self) -> None:
        """Before each use of an open store: the file is still there, still a store, and
        still the same file. One swapped in (a restored backup) is checked and used."""
        found = self._inspect()
        if found is None:
            raise self._removed()
        if found.id != self._ident and self._conn is not None:
            self._conn.close()
            self._conn = None
            return
        sqlite_file.check_pages(self.path, found.size, self._page)

    def _error(self, exc: sqlite3.Error) -> StaggerError:
        text = str(exc).lower()
        if "readonly" in text or "unable to open" in text or "read-only" in text:
            return self._not_writable(exc)
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return sqlite_file.unusable(self.path, f"is damaged ({exc})")
        if "locked" in text or "busy" in text:
            return BackendUnavailable(
                f"{self._where()} stayed locked by another process for {self.busy_timeout:g} s; "
                "is a stagger process stuck? (check with `fuser` on the file) then try again"
            )
        return BackendUnavailable(
            f"{self._where()} failed ({exc}); check the file and the disk, then try again"
        )

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                conn = self._connect()
                try:
                    return fn(conn)
                except sqlite3.Error as exc:
                    raise self._error(exc) from exc
                finally:
                    if conn.in_transaction:
                        # the error that got us here is the one worth reporting
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")

        if self.inline:
            return call()
        return await asyncio.to_thread(call)

    # --- rows -----------------------------------------------------------------------------

    def _load(self, conn: sqlite3.Connection, group: str) -> Semaphore | None:
        row = conn.execute("SELECT data FROM groups WHERE name = ?", (group,)).fetchone()
        if row is None:
            return None
        return decode_semaphore(row[0], f"group {group!r} in {self._where()}")

    def _new(self, group: str) -> Semaphore:
        return Semaphore(group, max=self.default_max, stored=False)

    def _store(self, conn: sqlite3.Connection, sem: Semaphore, exists: bool) -> None:
        data = encode_semaphore(sem)
        if exists:
            conn.execute(
                "UPDATE groups SET version = version + 1, data = ? WHERE name = ?",
                (data, sem.group),
            )
        else:
            conn.execute(
                "INSERT INTO groups (name, version, data) VALUES (?, 1, ?)", (sem.group, data)
            )

    def _record(self, conn: sqlite3.Connection, events: Iterable[Event]) -> None:
        for e in events:
            last = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE grp = ?", (e.group,)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO events (grp, seq, time, data) VALUES (?, ?, ?, ?)",
                (e.group, last + 1, e.time.isoformat(), encode_event(e)),
            )
            conn.execute(
                "DELETE FROM events WHERE grp = ? AND seq <= ?", (e.group, last + 1 - HISTORY_LIMIT)
            )

    def _fleet(self, conn: sqlite3.Connection) -> Semaphore | None:
        return self._load(conn, FLEET)

    async def _apply(
        self,
        group: str,
        op: Op[T],
        *,
        what: str,
        with_fleet: bool = False,
        settle: Settle[T] | None = None,
    ) -> T:
        """Load `group`, apply `op` at the backend's now, and write the result (and its
        events) in one transaction; an op that changes nothing writes nothing. A SQLite
        transaction either commits or raises, so no outcome is ever unknown: `settle` (and
        `what`, which names a change in etcd's retry errors) are not needed here."""

        def txn(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            now = self.clock()
            stored = self._load(conn, group)
            fleet = self._fleet(conn) if with_fleet else None
            change = op(stored if stored is not None else self._new(group), now, fleet)
            if not change.changed:
                conn.execute("ROLLBACK")
                return change.outcome
            self._store(conn, change.semaphore, stored is not None)
            self._record(conn, change.events)
            conn.execute("COMMIT")
            return change.outcome

        return await self._run(txn)

    # --- reads (the changes are SemaphoreStore's) ---------------------------------------

    async def status(self, group: str | None = None) -> Snapshot:
        if group is not None:
            validate_group(group)

        def read(conn: sqlite3.Connection) -> tuple[datetime, list[Semaphore], Semaphore | None]:
            # One read transaction, so the groups and the fleet pause are one consistent view.
            conn.execute("BEGIN")
            now = self.clock()
            fleet = self._fleet(conn)
            if group is None:
                rows = conn.execute(
                    "SELECT name, data FROM groups WHERE name != ? ORDER BY name", (FLEET,)
                ).fetchall()
                sems = [decode_semaphore(d, f"group {n!r} in {self._where()}") for n, d in rows]
            else:
                sems = [self._load(conn, group) or self._new(group)]
            conn.execute("COMMIT")
            return now, sems, fleet

        if group is not None and self._conn is not None and not self.inline:
            # One group's read (every batched FleetLock read): on this thread when it can be,
            # and not read again while nothing was committed since (sqlite_reader.py).
            here = self._reader.read(self._ident, self._page, read, unchanged=group)
            if here is not None:
                return snapshot_of(self.clock(), here[1], here[2])
        return snapshot_of(*await self._run(read))

    async def history(self, group: str | None = None, limit: int = 100) -> list[Event]:
        """Newest first. `group=None`: every group's events and the fleet-wide ones."""
        if group is not None:
            validate_group(group)
        validate_limit(limit)

        def read(conn: sqlite3.Connection) -> list[Event]:
            if group is None:
                rows = conn.execute(
                    "SELECT data FROM events ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT data FROM events WHERE grp = ? ORDER BY seq DESC LIMIT ?",
                    (group, limit),
                ).fetchall()
            return self._decode_events(r[0] for r in rows)

        return await self._run(read)

    async def report(self, report: NodeReport) -> NodeReport:
        def write(conn: sqlite3.Connection) -> NodeReport:
            conn.execute("BEGIN IMMEDIATE")
            stored = report.stamped(self.clock())
            # An upsert, not INSERT OR REPLACE: a replace deletes the old row without running
            # its delete trigger, and node_counts would count the node twice.
            conn.execute(
                "INSERT INTO nodes (id, grp, updated_at, data, state, seen, needs) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "grp = excluded.grp, updated_at = excluded.updated_at, data = excluded.data, "
                "state = excluded.state, seen = excluded.seen, needs = excluded.needs",
                (
                    stored.id,
                    stored.group,
                    _iso(stored.updated_at),
                    json.dumps(stored.to_dict(), separators=(",", ":"), sort_keys=True),
                    *summary_columns(stored),
                ),
            )
            conn.execute("COMMIT")
            return stored

        stored = await self._run(write)
        await self._reported(stored)
        return stored

    async def read_nodes(self, group: str | None = None) -> StoredReports:
        if group is not None:
            validate_group(group)

        def read(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            if group is None:
                return conn.execute("SELECT id, data FROM nodes ORDER BY grp, id").fetchall()
            return conn.execute(
                "SELECT id, data FROM nodes WHERE grp = ? ORDER BY id", (group,)
            ).fetchall()

        return self._unreadable.tell(decode_reports(await self._run(read)))

    async def nodes(self, group: str | None = None) -> list[NodeReport]:
        return list((await self.read_nodes(group)).reports)

    # --- pages and summaries (core/listing.py) ---------------------------------------------

    async def report_page(self, query: NodeQuery) -> ReportPage:
        """One keyset page of reports in (group, id) order, through the indexes on
        (grp, id) and (state, grp, id): it reads the page's rows, not the fleet's."""
        if not query.wants_reports:
            return ReportPage((), False)
        where: list[str] = []
        args: list[Any] = []
        if query.group is not None:
            where.append("grp = ?")
            args.append(query.group)
        if query.state == SILENT:
            where.append("seen < ?")
            args.append(seconds(query.silent_before))
        elif query.state is not None:
            where.append("state = ?")
            args.append(query.state)
        if query.q:
            where.append("id >= ? AND id < ?")
            args += [query.q, query.q + "\U0010ffff"]
        if query.since is not None:
            where.append("seen >= ?")
            args.append(seconds(query.since))
        if query.after is not None:
            where.append("(grp, id) > (?, ?)")
            args += list(query.after)
        sql = "SELECT id, data FROM nodes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY grp, id LIMIT ?"
        args.append(query.limit + 1)

        def read(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return conn.execute(sql, args).fetchall()

        rows = await self._run(read)
        found = self._unreadable.tell(decode_reports(rows[: query.limit]))
        return ReportPage(found.reports, len(rows) > query.limit, found.unreadable)

    async def node_counts(self, silent_before: datetime) -> NodeCounts:
        def read(conn: sqlite3.Connection) -> NodeCounts:
            conn.execute("BEGIN")
            counts = read_counts(conn, silent_before)
            conn.execute("COMMIT")
            return counts

        return await self._run(read)

    async def group_nodes(
        self, named: Mapping[str, Collection[str] | None]
    ) -> dict[str, GroupNodes]:
        """In one read transaction, through the summary (sqlite_summary.read_group_nodes)."""

        def read(conn: sqlite3.Connection) -> dict[str, RawGroupNodes]:
            conn.execute("BEGIN")
            found = read_group_nodes(conn, named)
            conn.execute("COMMIT")
            return found

        raw = await self._run(read)
        return {
            g: GroupNodes.read(
                self._unreadable.tell(decode_reports(r.busy)).reports, r.idle, r.idle_count
            )
            for g, r in raw.items()
        }

    async def reported(self, ids: Iterable[str]) -> frozenset[str]:
        wanted = sorted(set(ids))

        def read(conn: sqlite3.Connection) -> frozenset[str]:
            found: set[str] = set()
            for i in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[i : i + IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT id FROM nodes WHERE id IN ({marks})", chunk)
                found.update(r[0] for r in rows)
            return frozenset(found)

        return await self._run(read)

    async def reports_of(self, ids: Iterable[str]) -> StoredReports:
        wanted = sorted(set(ids))

        def read(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows: list[tuple[str, str]] = []
            for i in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[i : i + IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(f"SELECT id, data FROM nodes WHERE id IN ({marks})", chunk)
            return rows

        return self._unreadable.tell(decode_reports(await self._run(read)))

    async def node_page(self, query: NodeQuery, silent_after: timedelta) -> NodePage:
        return await read_node_page(self, query, silent_after)

    async def history_page(self, query: HistoryQuery) -> HistoryPage:
        """Newest first by row id (the order events were written), read in chunks until the
        page is full: the history is bounded (HISTORY_LIMIT per group), so is the walk."""
        chunk = max(2 * query.limit, 200)

        def read(conn: sqlite3.Connection) -> HistoryPage:
            conn.execute("BEGIN")
            shown: list[tuple[int, Event]] = []
            before = query.before[0] if query.before is not None else None
            while len(shown) <= query.limit:
                sql = "SELECT id, data FROM events"
                where: list[str] = []
                args: list[Any] = []
                if query.group is not None:
                    where.append("grp = ?")
                    args.append(query.group)
                if before is not None:
                    where.append("id < ?")
                    args.append(before)
                if where:
                    sql += " WHERE " + " AND ".join(where)
                rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, chunk]).fetchall()
                events = self._decode_events(r[1] for r in rows)
                shown += [(r[0], e) for r, e in zip(rows, events, strict=True) if query.matches(e)]
                if len(rows) < chunk:
                    break
                before = rows[-1][0]
            conn.execute("COMMIT")
            page = shown[: query.limit]
            more = len(shown) > query.limit
            return HistoryPage(
                tuple(e for _, e in page), (page[-1][0], "") if more and page else None
            )

        return await self._run(read)

    def _decode_events(self, raw: Iterable[str]) -> list[Event]:
        try:
            return decode_events(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendUnavailable(
                f"the history in {self._where()} holds an event stagger cannot read "
                f"({exc}); inspect the events table by hand"
            ) from exc

    async def forget(self, node_id: str, *, by: str) -> bool:
        """One transaction: the hold check, the delete and the event, so a node cannot take a
        slot between the check and the delete."""
        validate_id(node_id)

        def txn(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            now = self.clock()
            rows = conn.execute(
                "SELECT name, data FROM groups WHERE name != ?", (FLEET,)
            ).fetchall()
            sems = [decode_semaphore(d, f"group {n!r} in {self._where()}") for n, d in rows]
            check_forget(node_id, {s.group: s.live_holds(now) for s in sems})
            row = conn.execute("SELECT grp FROM nodes WHERE id = ?", (node_id,)).fetchone()
            if row is None:
                conn.execute("ROLLBACK")
                return False
            conn.execute("DELETE FROM nodes WHERE id = ?", (node_id,))
            if any(s.group == row[0] for s in sems):  # a group never written has no history
                self._record(conn, [forgotten(node_id, row[0], now, by=by)])
            conn.execute("COMMIT")
            return True

        return await self._run(txn)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def revision(self) -> str:
        """protocol.Revisions: SQLite's data_version changes when another connection (another
        process) commits, total_changes when this one writes; the file's identity covers a
        restored file swapped in."""

        def read(conn: sqlite3.Connection) -> str:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            ident = self._ident
            where = "memory" if ident is None else f"{ident.device}.{ident.inode}"
            return f"{where}:{version}:{conn.total_changes}"

        return await self._run(read)

    async def close(self) -> None:
        def shut() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        self._reader.close()
        await asyncio.to_thread(shut)

    # --- roles (base.Roles) -----------------------------------------------------------------

    def _load_role(self, conn: sqlite3.Connection, name: str) -> Role | None:
        row = conn.execute("SELECT data FROM roles WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        try:
            return Role.from_dict(json.loads(row[0]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendUnavailable(
                f"the role {name!r} in {self._where()} cannot be read ({exc}); remove it "
                f"(sqlite3 {self.path} \"DELETE FROM roles WHERE name = '{name}'\") and "
                "the servers take it again"
            ) from exc

    @staticmethod
    def _store_role(conn: sqlite3.Connection, role: Role) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO roles (name, data) VALUES (?, ?)",
            (role.name, json.dumps(role.to_dict(), separators=(",", ":"), sort_keys=True)),
        )

    async def claim_role(
        self, name: str, owner: str, ttl: timedelta, mark: str | None = None
    ) -> tuple[Role, bool]:
        """One transaction: read the role, claim it at this process's now, write it when ours."""

        def txn(conn: sqlite3.Connection) -> tuple[Role, bool]:
            conn.execute("BEGIN IMMEDIATE")
            role, mine = roles.claim(
                self._load_role(conn, name), name, owner, self.clock(), ttl, mark
            )
            if not mine:
                conn.execute("ROLLBACK")
                return role, False
            self._store_role(conn, role)
            conn.execute("COMMIT")
            return role, True

        return await self._run(txn)

    async def release_role(self, name: str, owner: str) -> None:
        roles.validate_role(name)

        def txn(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            freed = roles.release(self._load_role(conn, name), owner, self.clock())
            if freed is None:
                conn.execute("ROLLBACK")
                return
            self._store_role(conn, freed)
            conn.execute("COMMIT")

        await self._run(txn)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""

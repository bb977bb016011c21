"""The SQLite store's summary of its node reports: the schema that keeps it (columns, indexes,
the `node_counts` triggers), its migration, and the reads that use it instead of every report
(the totals of a page and /metrics; what a rollout is judged from). sqlite.py runs these inside
its own connection and transactions; see docs/backends.md.

- `nodes.state` and `nodes.seen` (updated_at in seconds since the epoch) are copied out of the
  report for the indexes of a page (`nodes_by_group`, `nodes_by_state`, `nodes_by_seen`);
- `nodes.needs` is 1 when the report needs a reboot or is in its cycle
  (core.rollout_reads.needs_reboot), indexed by `nodes_needing` (only those rows): a rollout reads
  those reports and counts the rest (`read_group_nodes`);
- `node_counts(grp, state, n)`, kept by triggers in the transaction of each report write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from stagger.core.cycle.node_state import State
from stagger.core.listing import NodeCounts
from stagger.core.node_report import NodeReport, decode_reports
from stagger.core.rollout_reads import needs_reboot

# The summary of `nodes` and the indexes of its pages; made (and filled from the reports)
# by summarise once the nodes table has its state, seen and needs columns.
SUMMARY = """
CREATE TABLE IF NOT EXISTS node_counts (
    grp   TEXT NOT NULL,
    state TEXT NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (grp, state)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nodes_by_group ON nodes (grp, id);
CREATE INDEX IF NOT EXISTS nodes_by_state ON nodes (state, grp, id);
CREATE INDEX IF NOT EXISTS nodes_by_seen ON nodes (seen, grp, state);
CREATE INDEX IF NOT EXISTS nodes_needing ON nodes (grp, id) WHERE needs = 1;
CREATE TRIGGER IF NOT EXISTS node_counted AFTER INSERT ON nodes BEGIN
    INSERT INTO node_counts (grp, state, n) VALUES (NEW.grp, NEW.state, 1)
        ON CONFLICT (grp, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS node_uncounted AFTER DELETE ON nodes BEGIN
    UPDATE node_counts SET n = n - 1 WHERE grp = OLD.grp AND state = OLD.state;
    DELETE FROM node_counts WHERE grp = OLD.grp AND state = OLD.state AND n <= 0;
END;
CREATE TRIGGER IF NOT EXISTS node_recounted AFTER UPDATE OF grp, state ON nodes
WHEN OLD.grp != NEW.grp OR OLD.state != NEW.state BEGIN
    UPDATE node_counts SET n = n - 1 WHERE grp = OLD.grp AND state = OLD.state;
    DELETE FROM node_counts WHERE grp = OLD.grp AND state = OLD.state AND n <= 0;
    INSERT INTO node_counts (grp, state, n) VALUES (NEW.grp, NEW.state, 1)
        ON CONFLICT (grp, state) DO UPDATE SET n = n + 1;
END;
"""
# The most ids one `IN (...)` asks for (SQLite's default limit of variables is far above).
IN_CHUNK = 500
# A group's record naming more nodes than this: its idle ids are read in one index walk
# (ids only) rather than asked for by id.
BY_ID_MAX = 4 * IN_CHUNK
_IDLE = State.IDLE.value


def seconds(value: datetime | None) -> float:
    """A report's time as the `seen` column holds it: seconds since the epoch (0: none)."""
    return value.timestamp() if value is not None else 0.0


def summary_columns(report: NodeReport) -> tuple[str, float, int]:
    """The (state, seen, needs) columns of a stored report."""
    return report.state.value, seconds(report.updated_at), int(needs_reboot(report))


def nested(rows: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for group, state, n in rows:
        out.setdefault(group, {})[state] = n
    return out


def _statements(script: str) -> Iterator[str]:
    """The statements of `script` one by one (a trigger's body holds semicolons)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""


def summarise(conn: sqlite3.Connection) -> None:
    """Give `nodes` its state, seen and needs columns (a version 1 store has none, a version 2
    store no needs: filled from each report) and make the summary, counted from the reports
    when it is new. Inside the caller's transaction."""
    columns = {r[1] for r in conn.execute("PRAGMA table_info(nodes)")}
    migrated = "state" not in columns
    if migrated:
        conn.execute("ALTER TABLE nodes ADD COLUMN state TEXT NOT NULL DEFAULT ''")
        conn.execute("ALTER TABLE nodes ADD COLUMN seen REAL NOT NULL DEFAULT 0")
    if "needs" not in columns:
        conn.execute("ALTER TABLE nodes ADD COLUMN needs INTEGER NOT NULL DEFAULT 0")
        rows = conn.execute("SELECT id, data FROM nodes").fetchall()
        for r in decode_reports(rows).reports:
            conn.execute(
                "UPDATE nodes SET state = ?, seen = ?, needs = ? WHERE id = ?",
                (*summary_columns(r), r.id),
            )
    new = not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'node_counts'").fetchone()
    for statement in _statements(SUMMARY):
        conn.execute(statement)
    if migrated or new:
        conn.execute("DELETE FROM node_counts")
        conn.execute(
            "INSERT INTO node_counts (grp, state, n) "
            "SELECT grp, state, COUNT(*) FROM nodes GROUP BY grp, state"
        )


def read_counts(conn: sqlite3.Connection, silent_before: datetime) -> NodeCounts:
    """The node_counts rows, and the silent reports counted through the index on seen: one
    row per group and state, plus one per silent node. Inside the caller's transaction."""
    counts = conn.execute("SELECT grp, state, n FROM node_counts WHERE state != ''")
    by_group = nested(counts.fetchall())
    # INDEXED BY: the planner would rather walk (state, grp, id) for the GROUP BY, which
    # reads every row; the seen index reads the silent ones only.
    quiet = conn.execute(
        "SELECT grp, state, COUNT(*) FROM nodes INDEXED BY nodes_by_seen "
        "WHERE seen < ? GROUP BY grp, state",
        (seconds(silent_before),),
    )
    silent = nested(r for r in quiet.fetchall() if r[1])
    return NodeCounts(by_group, silent)


@dataclass(frozen=True)
class RawGroupNodes:
    """One group's read for a rollout, before its reports are decoded (core.rollout_reads.GroupNodes
    once they are): the reports that need a reboot (id, JSON), the idle ids asked for (or every
    one), and how many reports are idle."""

    busy: list[tuple[str, str]]
    idle: set[str]
    idle_count: int


def read_group_nodes(
    conn: sqlite3.Connection, named: Mapping[str, Collection[str] | None]
) -> dict[str, RawGroupNodes]:
    """For each group: its reports that need a reboot (through `nodes_needing`), its idle
    reports among the ids named (None: every idle id, through `nodes_by_state`, ids only) and
    its count of idle reports (node_counts). Inside the caller's transaction."""
    out: dict[str, RawGroupNodes] = {}
    for group, ids in named.items():
        busy = conn.execute(
            "SELECT id, data FROM nodes INDEXED BY nodes_needing "
            "WHERE grp = ? AND needs = 1 ORDER BY id",
            (group,),
        ).fetchall()
        row = conn.execute(
            "SELECT n FROM node_counts WHERE grp = ? AND state = ?", (group, _IDLE)
        ).fetchone()
        idle: set[str] = set()
        if ids is None or len(ids) > BY_ID_MAX:
            walk = conn.execute(
                "SELECT id FROM nodes INDEXED BY nodes_by_state WHERE state = ? AND grp = ?",
                (_IDLE, group),
            )
            idle.update(r[0] for r in walk)
        else:
            wanted = sorted(ids)
            for i in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[i : i + IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                found = conn.execute(
                    f"SELECT id FROM nodes WHERE id IN ({marks}) AND grp = ? AND state = ?",
                    (*chunk, group, _IDLE),
                )
                idle.update(r[0] for r in found)
        out[group] = RawGroupNodes(busy, idle, row[0] if row else 0)
    return out

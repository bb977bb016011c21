"""The store's summary of its node reports (counts per group and state, silent ones) and its
pages of reports, on SQLite and a real etcd: they always agree with the reports themselves,
and a store written before the summary existed is given one when opened."""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from etcd_support import EtcdCluster, raw_client
from stagger.backends.etcd import EtcdBackend
from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend
from stagger.backends.sqlite import SCHEMA_VERSION, SqliteBackend
from stagger.backends.sqlite_file import APPLICATION_ID
from stagger.core.cycle.node_state import State
from stagger.core.listing import NodeCounts, NodeQuery
from stagger.core.node_report import NodeReport

FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)


async def counted(backend: Backend) -> dict[str, dict[str, int]]:
    """What the reports themselves say: per group, per state."""
    out: dict[str, dict[str, int]] = {}
    for r in await backend.nodes():
        states = out.setdefault(r.group, {})
        states[r.state.value] = states.get(r.state.value, 0) + 1
    return out


async def summary(backend: Backend, silent_before: datetime = FAR_PAST) -> NodeCounts:
    counts: NodeCounts = await backend.node_counts(silent_before)  # type: ignore[attr-defined]
    return counts


def nonzero(counts: NodeCounts) -> dict[str, dict[str, int]]:
    return {g: dict(s) for g, s in counts.by_group.items() if any(s.values())}


async def test_the_counts_follow_every_report_move_and_forget(backend: Backend) -> None:
    rng = random.Random(16)
    ids = [f"n{i}" for i in range(6)]
    for _ in range(40):
        node_id = rng.choice(ids)
        if rng.random() < 0.2:
            await backend.forget(node_id, by="operator:test")
        else:
            group = rng.choice(["web", "db", "cache"])
            state = rng.choice([State.IDLE, State.WAITING, State.HALTED, State.REBOOTING])
            await backend.report(NodeReport(node_id, group, state))
        assert nonzero(await summary(backend)) == await counted(backend)


async def test_silent_counts_are_the_reports_older_than_the_cutoff(backend: Backend) -> None:
    await backend.report(NodeReport("a", "web", State.IDLE))
    await backend.report(NodeReport("b", "web", State.HALTED))
    cut = datetime.now(UTC) + timedelta(minutes=1)
    assert (await summary(backend, cut)).silent == {"web": {"idle": 1, "halted": 1}}
    assert (await summary(backend)).silent == {}
    metric = (await summary(backend, cut)).metric_counts()
    assert metric == {("web", "silent"): 2}


async def test_a_report_page_reads_after_its_cursor_and_says_whether_more_match(
    backend: Backend,
) -> None:
    for i in range(5):
        await backend.report(NodeReport(f"n{i}", "web", State.HALTED if i % 2 else State.IDLE))
    page = await backend.report_page(NodeQuery(limit=2, after=("web", "n0")))  # type: ignore[attr-defined]
    assert ([r.id for r in page.reports], page.more) == (["n1", "n2"], True)
    halted = await backend.report_page(NodeQuery(state="halted", limit=2))  # type: ignore[attr-defined]
    assert ([r.id for r in halted.reports], halted.more) == (["n1", "n3"], False)


# A version 1 store: the nodes table before its state and seen columns, no summary.
_V1 = """
CREATE TABLE groups (name TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL,
    seq INTEGER NOT NULL, time TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (grp, seq));
CREATE TABLE nodes (id TEXT PRIMARY KEY, grp TEXT NOT NULL, updated_at TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE TABLE roles (name TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


def version_1_store(path: Path, reports: list[NodeReport]) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(_V1)
    for r in reports:
        conn.execute(
            "INSERT INTO nodes (id, grp, updated_at, data) VALUES (?, ?, ?, ?)",
            (
                r.id,
                r.group,
                r.updated_at.isoformat() if r.updated_at else "",
                json.dumps(r.to_dict()),
            ),
        )
    conn.execute("PRAGMA user_version = 1")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.commit()
    conn.close()


async def test_a_version_1_store_gets_its_summary_when_opened(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(hours=1)
    version_1_store(
        tmp_path / "s.db",
        [
            NodeReport("web-1", "web", State.HALTED, updated_at=now),
            NodeReport("web-2", "web", State.IDLE, updated_at=old),
            NodeReport("db-1", "db", State.IDLE, updated_at=now),
        ],
    )
    b = SqliteBackend(str(tmp_path / "s.db"), create=False)
    try:
        counts = await b.node_counts(now - timedelta(minutes=15))
        assert nonzero(counts) == {"web": {"halted": 1, "idle": 1}, "db": {"idle": 1}}
        assert counts.silent == {"web": {"idle": 1}}
        halted = await b.report_page(NodeQuery(state="halted"))
        assert [r.id for r in halted.reports] == ["web-1"]
        await b.report(NodeReport("web-2", "web", State.HALTED))
        assert nonzero(await b.node_counts(FAR_PAST)) == {"web": {"halted": 2}, "db": {"idle": 1}}
    finally:
        await b.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_an_etcd_store_written_before_the_index_is_indexed_when_first_paged(
    etcd_server: EtcdCluster,
) -> None:
    url = f"{etcd_server.url}?prefix=test-{uuid.uuid4().hex[:12]}/"
    b = open_backend(url)
    assert isinstance(b, EtcdBackend)
    now = datetime.now(UTC)
    try:
        async with raw_client(etcd_server.members[0]) as etcd:  # as a stagger before the index
            for r in (
                NodeReport("web-1", "web", State.HALTED, updated_at=now),
                NodeReport("web-2", "web", State.IDLE, updated_at=now - timedelta(hours=1)),
                NodeReport("db-1", "db", State.IDLE, updated_at=now),
            ):
                await etcd.put(b.layout.node_key(r.id), json.dumps(r.to_dict()).encode())
        halted = await b.report_page(NodeQuery(state="halted"))
        assert [r.id for r in halted.reports] == ["web-1"]
        counts = await b.node_counts(now - timedelta(minutes=15))
        assert nonzero(counts) == {"web": {"halted": 1, "idle": 1}, "db": {"idle": 1}}
        assert counts.silent == {"web": {"idle": 1}}
        await b.report(NodeReport("web-2", "db", State.HALTED))
        halted = await b.report_page(NodeQuery(state="halted"))
        assert [(r.group, r.id) for r in halted.reports] == [("db", "web-2"), ("web", "web-1")]
        assert nonzero(await b.node_counts(FAR_PAST)) == {
            "web": {"halted": 1},
            "db": {"idle": 1, "halted": 1},
        }
    finally:
        await b.close()


async def test_etcd_pages_follow_group_order_when_one_group_name_starts_another(
    etcd_server: EtcdCluster,
) -> None:
    b = open_backend(f"{etcd_server.url}?prefix=test-{uuid.uuid4().hex[:12]}/")
    try:
        for r in (NodeReport("a", "web-x", State.IDLE), NodeReport("z", "web", State.IDLE)):
            await b.report(r)
        first = await b.report_page(NodeQuery(limit=1))  # type: ignore[attr-defined]
        assert [(r.group, r.id) for r in first.reports] == [("web", "z")]
        rest = await b.report_page(NodeQuery(limit=1, after=("web", "z")))  # type: ignore[attr-defined]
        assert [(r.group, r.id) for r in rest.reports] == [("web-x", "a")]
    finally:
        await b.close()


async def test_pages_read_while_the_fleet_changes_never_repeat_nor_skip_a_steady_node(
    backend: Backend,
) -> None:
    """Random adds, moves and forgets between pages: a node is shown twice only when it moved
    to another group (a new row, later in the order), and a node that stayed as it was from
    the first page to the last is shown."""
    for seed in range(4):
        rng = random.Random(seed)
        prefix = f"s{seed}-"
        ids = [f"{prefix}{i:03d}" for i in range(40)]
        for node_id in ids[:25]:
            await backend.report(NodeReport(node_id, rng.choice(["db", "web"]), State.IDLE))
        touched: set[str] = set()
        shown: list[str] = []
        query = NodeQuery(q=prefix, limit=4)
        for _ in range(50):
            page = await backend.node_page(query, timedelta(minutes=15))
            shown += [v.id for v in page.nodes]
            for _ in range(rng.randint(0, 3)):  # the fleet changes between two pages
                node_id = rng.choice(ids)
                touched.add(node_id)
                if rng.random() < 0.3:
                    await backend.forget(node_id, by="operator:test")
                else:
                    group = rng.choice(["db", "web"])
                    await backend.report(NodeReport(node_id, group, State.WAITING))
            if page.next is None:
                break
            query = replace(query, after=page.next)
        twice = {n for n in shown if shown.count(n) > 1}
        assert twice <= touched, seed
        steady = set(ids[:25]) - touched
        assert steady <= set(shown), seed

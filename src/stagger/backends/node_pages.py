"""One page of the fleet view, read from a store that keeps summaries of its node reports
(sqlite.py, etcd/): the page of reports, the holds and the recent history (for the nodes
known from their locks alone), and the summary counts for the totals. What the page shows is
core/listing.py's decision; this module only reads.

Cost: one page of reports, the groups, the newest HISTORY_LIMIT events and the summary: never
every report, so a page costs the same in a fleet of 500 nodes and of 50,000.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from stagger.backends.protocol import Backend, Snapshot
from stagger.core.cycle.node_state import State
from stagger.core.fleet_view import NodeView, Source, fleet_nodes
from stagger.core.listing import (
    MAX_PAGE,
    MAX_PAGES,
    NodeCounts,
    NodePage,
    NodeQuery,
    ReportPage,
    page_nodes,
    totals_of,
)
from stagger.core.node_report import DEFAULT_SILENT_AFTER, NodeReport, StoredReports, Unreadable
from stagger.core.semaphore import HISTORY_LIMIT, Event

log = logging.getLogger("stagger.backends")


@runtime_checkable
class SummarisedReports(Protocol):
    """A store whose node reports are indexed for pages and counted in a summary."""

    async def status(self, group: str | None = None) -> Snapshot: ...

    async def history(self, group: str | None = None, limit: int = 100) -> list[Event]: ...

    async def report_page(self, query: NodeQuery) -> ReportPage:
        """The reports matching `query` after its cursor, in (group, id) order, at most
        `query.limit` of them, and whether more match."""
        ...

    async def node_counts(self, silent_before: datetime) -> NodeCounts:
        """The summary: reports per group and state, and those older than `silent_before`."""
        ...

    async def reported(self, ids: Iterable[str]) -> frozenset[str]:
        """Which of `ids` have a stored report."""
        ...

    async def reports_of(self, ids: Iterable[str]) -> StoredReports:
        """The stored reports of `ids` (those that have one), read by id."""
        ...


@runtime_checkable
class WatchedSummary(Protocol):
    """A store that can keep its summary's counts in memory from a watch (etcd), for a reader
    that may lag a moment behind the store: /metrics. The API's totals keep reading the store,
    so a client that has sent a report sees it counted."""

    def watch_counts(self) -> None:
        """Start keeping the counts (on the running loop; stopped by close())."""
        ...

    async def watched_counts(self, silent_before: datetime) -> tuple[NodeCounts, bool]:
        """node_counts, from the watch when it is in sync (True) or else read (False)."""
        ...


async def scrape_counts(
    store: SummarisedReports, silent_before: datetime
) -> tuple[NodeCounts, bool]:
    """The summary for /metrics, which may lag a moment: the watched counts when the store
    keeps them and they are in sync (True), else read from the store (False)."""
    if isinstance(store, WatchedSummary):
        counts, watched = await store.watched_counts(silent_before)
    else:
        counts, watched = await store.node_counts(silent_before), False
    log.debug("node counts for /metrics %s", "watched" if watched else "read from the store")
    return counts, watched


async def lock_only_nodes(
    store: SummarisedReports, snap: Snapshot, group: str | None, silent_after: timedelta
) -> list[NodeView]:
    """The rows of nodes known from their locks alone (core/fleet_view.py): from the holds in
    `snap` and the newest history, less the ids that report."""
    events = await store.history(group, HISTORY_LIMIT)
    holds = {g.group: g.holds for g in snap.groups}
    candidates = fleet_nodes((), holds, events, snap.now, silent_after, snap.node_pauses)
    reporting = await store.reported(v.id for v in candidates)
    return [v for v in candidates if v.source is Source.LOCKS and v.id not in reporting]


async def read_node_page(
    store: SummarisedReports, query: NodeQuery, silent_after: timedelta
) -> NodePage:
    snap = await store.status(query.group)
    silent_before = snap.now - silent_after
    query = replace(query, silent_before=silent_before)
    found = await store.report_page(query)
    holds = {g.group: g.holds for g in snap.groups}
    views = fleet_nodes(found.reports, holds, (), snap.now, silent_after, snap.node_pauses)
    reported = [v for v in views if v.source is Source.REPORT]
    lock_only = await lock_only_nodes(store, snap, query.group, silent_after)
    rows, after = page_nodes(reported, found.more, lock_only, query)
    totals, silent = totals_of(await store.node_counts(silent_before), lock_only, query.group)
    return NodePage(
        now=snap.now,
        silent_after=silent_after,
        nodes=rows,
        next=after,
        totals=totals,
        silent=silent,
        unreadable=found.unreadable,
    )


HOLDER_PAGES = 8  # a holder's one-row pages asked at once (holder_reports)


async def holder_reports(store: Backend, snap: Snapshot) -> StoredReports:
    """The last reports of the holders in `snap` (a hold says when its node is halted), never
    every report of the fleet: read by id from a store that can, else (a stagger server's
    API) one page of one row per holder, of its group and with its id as the prefix (`q`),
    whose first row is the holder's own (an id sorts before every longer one it prefixes)."""
    holds = [(g.group, h.id) for g in snap.groups for h in g.holds]
    if isinstance(store, SummarisedReports):
        return await store.reports_of({node_id for _, node_id in holds})
    slots = asyncio.Semaphore(HOLDER_PAGES)

    async def one(group: str, node_id: str) -> NodePage:
        async with slots:
            query = NodeQuery(group=group, q=node_id, limit=1)
            return await store.node_page(query, DEFAULT_SILENT_AFTER)

    pages = await asyncio.gather(*(one(group, node_id) for group, node_id in holds))
    reports: dict[str, NodeReport] = {}
    unreadable: list[Unreadable] = []
    for (_, node_id), page in zip(holds, pages, strict=True):
        reports.update((v.id, v.report) for v in page.nodes if v.report and v.id == node_id)
        unreadable += (u for u in page.unreadable if u not in unreadable)
    return StoredReports(tuple(reports.values()), tuple(unreadable))


async def reports_in_state(store: Backend, state: State) -> StoredReports:
    """Every report in `state` (the halted ones, for notifications): read page by page through
    the state's index from a store that keeps one, so the cost is theirs, not the fleet's;
    else every report, filtered."""
    if not isinstance(store, SummarisedReports):
        found = await store.read_nodes()
        return StoredReports(tuple(r for r in found.reports if r.state is state), found.unreadable)
    query = NodeQuery(state=state.value, limit=MAX_PAGE)
    reports: list[NodeReport] = []
    unreadable: list[Unreadable] = []
    for _ in range(MAX_PAGES):
        page = await store.report_page(query)
        reports += page.reports
        unreadable += page.unreadable
        if not page.more or not page.reports:
            break
        last = page.reports[-1]
        query = replace(query, after=(last.group, last.id))
    return StoredReports(tuple(reports), tuple(unreadable))

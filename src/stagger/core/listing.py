"""Paged, filtered listings of the fleet view and the history, and the store summaries behind
their totals.

Rules of this file:
- Pure: the stores read one page of node reports (`NodeQuery`) and their summary counts
  (`NodeCounts`); this file decides which rows a page shows, its totals and its cursor.
- Pages are keyset pages: nodes in (group, id) order, history newest first by the store's own
  position. A cursor names the last row shown, so a node added or removed between two pages
  is never shown twice and a node that did not change is never skipped.
- A cursor is opaque to clients (base64 of a small JSON), and says which listing it is for.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stagger.core.cycle.node_state import State
from stagger.core.errors import InvalidInput
from stagger.core.fleet_view import HOLDING, SEEN, NodeView
from stagger.core.node_report import NodeReport, Unreadable
from stagger.core.semaphore import MAX_ID_LEN, Event, validate_group

SILENT = "silent"  # a state filter: reporting nodes with no report for silent_after
DEFAULT_PAGE = 500  # rows of a node page when the client names no limit
MAX_PAGE = 1000  # the most rows one page holds
MAX_PAGES = 10_000  # the most pages one reader follows (ten million nodes at MAX_PAGE)
# The states a node page may be filtered on: a cycle state, a lock-only word, or silent.
STATE_FILTERS = (*(s.value for s in State), HOLDING, SEEN, SILENT)

NodeKey = tuple[str, str]  # (group, id): the order of node pages
EventKey = tuple[int, str]  # a store's position of an event, newest first (see HistoryQuery)


@dataclass(frozen=True)
class NodeQuery:
    """Which nodes one page shows: every filter given must hold. `after` is the (group, id)
    of the last row of the previous page. `silent_before`: a report older than this is
    silent (the backend's now minus silent_after), for the `silent` state filter."""

    group: str | None = None
    state: str | None = None
    q: str = ""  # a node id prefix
    since: datetime | None = None  # reported (or, lock-only, locked) at or after this
    after: NodeKey | None = None
    limit: int = DEFAULT_PAGE
    silent_before: datetime | None = None

    def __post_init__(self) -> None:
        if self.group is not None:
            validate_group(self.group)
        if self.state is not None and self.state not in STATE_FILTERS:
            raise InvalidInput(
                f"state {self.state!r} is not one a node can be in: use one of "
                f"{', '.join(STATE_FILTERS)}"
            )
        check_prefix(self.q)
        check_limit(self.limit, MAX_PAGE)

    @property
    def cycle_state(self) -> State | None:
        """The cycle state reports are filtered on (None: no such filter)."""
        return State(self.state) if self.state in {s.value for s in State} else None

    @property
    def wants_reports(self) -> bool:
        """Whether any stored report can match (holding and seen are lock-only words)."""
        return self.state not in (HOLDING, SEEN)

    def _after(self, group: str, node_id: str) -> bool:
        return self.after is None or (group, node_id) > self.after

    def matches_report(self, r: NodeReport) -> bool:
        """The filter a store applies to a report (stores may do it in their own query)."""
        if self.group is not None and r.group != self.group:
            return False
        if not r.id.startswith(self.q) or not self._after(r.group, r.id):
            return False
        if self.since is not None and (r.updated_at is None or r.updated_at < self.since):
            return False
        if self.state == SILENT:
            return r.updated_at is None or (
                self.silent_before is not None and r.updated_at < self.silent_before
            )
        return self.wants_reports and (self.state is None or r.state.value == self.state)

    def matches_view(self, v: NodeView) -> bool:
        """The filter on a row of the fleet view known from its locks alone."""
        if self.group is not None and v.group != self.group:
            return False
        if not v.id.startswith(self.q) or not self._after(v.group, v.id):
            return False
        if self.since is not None and (
            v.last_lock_activity is None or v.last_lock_activity < self.since
        ):
            return False
        return self.state is None or v.state == self.state


@dataclass(frozen=True)
class ReportPage:
    """One page of stored reports in (group, id) order, and whether more match after it."""

    reports: tuple[NodeReport, ...]
    more: bool
    unreadable: tuple[Unreadable, ...] = ()


@dataclass(frozen=True)
class NodeCounts:
    """The store's summary of its reports: how many nodes report each state, per group, and
    of those how many are silent (no report since `silent_before`)."""

    by_group: Mapping[str, Mapping[str, int]]
    silent: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def metric_counts(self) -> dict[tuple[str, str], int]:
        """(group, state) -> nodes, a silent node counted as `silent` instead of its state."""
        out: dict[tuple[str, str], int] = {}
        for group, states in self.by_group.items():
            quiet = self.silent.get(group, {})
            for state, n in states.items():
                loud = n - quiet.get(state, 0)
                if loud > 0:
                    out[(group, state)] = loud
            total = sum(quiet.values())
            if total:
                out[(group, SILENT)] = total
        return out


@dataclass(frozen=True)
class NodePage:
    """One page of the fleet view, with totals over every node of the group filter (or the
    fleet): nodes per state, and how many reporting ones are silent."""

    now: datetime
    silent_after: timedelta
    nodes: tuple[NodeView, ...]
    next: NodeKey | None
    totals: Mapping[str, int]
    silent: int
    unreadable: tuple[Unreadable, ...] = ()


def page_nodes(
    reported: Sequence[NodeView],
    more_reports: bool,
    lock_only: Iterable[NodeView],
    query: NodeQuery,
) -> tuple[tuple[NodeView, ...], NodeKey | None]:
    """The rows of one page and the key to continue after (None: this is the last page).
    `reported` are the views of the store's ReportPage for `query` (matching, after the
    cursor, at most limit of them), `more_reports` whether more reports match; `lock_only`
    every row known from locks alone, filtered here."""
    rows = sorted(
        [*reported, *(v for v in lock_only if query.matches_view(v))], key=lambda v: (v.group, v.id)
    )
    shown = tuple(rows[: query.limit])
    more = more_reports or len(rows) > query.limit
    return shown, ((shown[-1].group, shown[-1].id) if more and shown else None)


def totals_of(
    counts: NodeCounts, lock_only: Iterable[NodeView], group: str | None
) -> tuple[dict[str, int], int]:
    """Nodes per state over `group` (None: the fleet), and how many reporting ones are
    silent."""
    totals: dict[str, int] = {}
    silent = 0
    for g, states in counts.by_group.items():
        if group is not None and g != group:
            continue
        for state, n in states.items():
            totals[state] = totals.get(state, 0) + n
        silent += sum(counts.silent.get(g, {}).values())
    for v in lock_only:
        if group is None or v.group == group:
            totals[v.state] = totals.get(v.state, 0) + 1
    return {k: totals[k] for k in sorted(totals) if totals[k]}, silent


# --- history pages --------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryQuery:
    """Which events one history page shows, newest first. `before` is the store's position
    of the last event of the previous page (SQLite: the row id; etcd: the write revision and
    the key), so events added meanwhile never push an event onto the next page twice."""

    group: str | None = None
    since: datetime | None = None  # events at or after this
    q: str = ""  # a node id prefix
    before: EventKey | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if self.group is not None:
            validate_group(self.group)
        check_prefix(self.q)

    def matches(self, e: Event) -> bool:
        if self.group is not None and e.group != self.group:
            return False
        return e.id.startswith(self.q) and (self.since is None or e.time >= self.since)


@dataclass(frozen=True)
class HistoryPage:
    events: tuple[Event, ...]
    next: EventKey | None  # None: no older event matches


# --- validation and cursors -------------------------------------------------------------------


def check_prefix(q: str) -> str:
    """A node id prefix (one no id has simply matches nothing)."""
    if len(q) > MAX_ID_LEN:
        raise InvalidInput(f"q (a node id prefix) must be at most {MAX_ID_LEN} characters")
    return q


def check_limit(limit: int, high: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= high:
        raise InvalidInput(f"limit {limit!r} is not valid: give a whole number from 1 to {high}")
    return limit


NODES = "nodes"
HISTORY = "history"


def encode_cursor(kind: str, key: NodeKey | EventKey) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_node_cursor(cursor: str) -> NodeKey:
    group, node_id = _decode(cursor, NODES, str)
    return str(group), str(node_id)


def decode_history_cursor(cursor: str) -> EventKey:
    position, key = _decode(cursor, HISTORY, int)
    assert isinstance(position, int)
    if not 0 <= position < 2**63:  # a store position is a 64-bit revision or row id
        raise _refused(cursor, HISTORY)
    return position, str(key)


def _decode(cursor: str, kind: str, first: type) -> tuple[object, object]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = json.loads(raw)
    except (ValueError, binascii.Error):
        found = None
    if (
        isinstance(found, list)
        and len(found) == 3
        and found[0] == kind
        and isinstance(found[1], first)
        and not isinstance(found[1], bool)
        and isinstance(found[2], str)
    ):
        return found[1], found[2]
    raise _refused(cursor, kind)


def _refused(cursor: str, kind: str) -> InvalidInput:
    return InvalidInput(
        f"cursor {cursor[:40]!r} is not one given by a {kind} listing: pass the next_cursor "
        "of the previous page unchanged, or start again without cursor"
    )

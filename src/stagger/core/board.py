"""The dashboard's board for a fleet of any size: the counts per state, the groups ranked by
what needs attention, the nodes that need attention (halted, stale), one page of the nodes
table under the filters, and the instant at which time alone changes what is shown.

Rules of this file:
- Pure: the server reads the fleet view (core.fleet_view) and the groups at the backend's
  `now` and calls these; every size the page shows is bounded here (a page, the attention
  list), so a rendering costs the same at 100 nodes and at 50,000.
- The orders are tables (GROUP_SORTS), so a new order is one line.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stagger.core.cycle.node_state import State
from stagger.core.fleet_view import HOLDING, SEEN, NodeView
from stagger.core.times import later

SILENT = "silent"  # a node that has not reported for silent_after
STALE = "stale"  # a node whose hold has had no heartbeat for the group's stale_after
HALTED = State.HALTED.value
# Every state a node row can be in, in cycle order, then the marks: the filter's choices.
FILTER_STATES = (*(s.value for s in State), HOLDING, SEEN, SILENT, STALE)
PAGE_SIZE = 50  # rows of the nodes table per page
ATTENTION_SHOWN = 50  # halted and stale nodes listed on the first screen


@dataclass(frozen=True)
class GroupLine:
    """One row of the groups table: what a group holds and what in it needs attention."""

    group: str
    nodes: int
    held: int
    max: int
    paused: bool
    halted: int
    stale: int
    silent: int
    waiting: int
    waiting_since: datetime | None  # the oldest need among its waiting nodes


def _waiting_first(g: GroupLine) -> tuple[bool, datetime | None]:
    # A group with nobody waiting sorts after every group with someone waiting.
    return (g.waiting_since is None, g.waiting_since)


# How the groups table can be ordered (`?sort=`), each worst first, ties by name.
GROUP_SORTS: Mapping[str, Callable[[GroupLine], Any]] = {
    "attention": lambda g: (-g.halted, -g.stale, _waiting_first(g), -g.waiting, g.group),
    "halted": lambda g: (-g.halted, g.group),
    "stale": lambda g: (-g.stale, g.group),
    "waiting": lambda g: (_waiting_first(g), -g.waiting, g.group),
    "name": lambda g: g.group,
}
DEFAULT_SORT = "attention"


def sort_groups(lines: Iterable[GroupLine], sort: str) -> list[GroupLine]:
    """`lines` in the order `sort` names (an unknown name: by attention)."""
    return sorted(lines, key=GROUP_SORTS.get(sort, GROUP_SORTS[DEFAULT_SORT]))


def group_lines(
    groups: Mapping[str, tuple[int, int, bool]],
    nodes: Iterable[NodeView],
    stale: set[tuple[str, str]],
) -> list[GroupLine]:
    """One line per group: `groups` maps each known group to (slots held, max, paused);
    a group known only from its nodes' reports holds nothing, with max 0. `stale` holds the
    (group, id) of every stale hold."""
    count: dict[str, Counter[str]] = {}
    oldest: dict[str, datetime] = {}
    for n in nodes:
        c = count.setdefault(n.group, Counter())
        c["nodes"] += 1
        c[n.state] += 1
        if n.silent:
            c[SILENT] += 1
        since = n.needed_since
        if n.state == State.WAITING.value and since is not None:
            oldest[n.group] = min(since, oldest.get(n.group, since))
    for group, _ in stale:
        count.setdefault(group, Counter())[STALE] += 1
    lines = []
    for name in sorted(set(groups) | set(count)):
        held, most, paused = groups.get(name, (0, 0, False))
        c = count.get(name, Counter())
        lines.append(
            GroupLine(
                group=name,
                nodes=c["nodes"],
                held=held,
                max=most,
                paused=paused,
                halted=c[HALTED],
                stale=c[STALE],
                silent=c[SILENT],
                waiting=c[State.WAITING.value],
                waiting_since=oldest.get(name),
            )
        )
    return lines


def state_counts(nodes: Iterable[NodeView], stale: set[tuple[str, str]]) -> dict[str, int]:
    """How many nodes are in each of FILTER_STATES (SILENT and STALE are marks a node has
    besides its state), in that order."""
    c: Counter[str] = Counter()
    for n in nodes:
        c[n.state] += 1
        if n.silent:
            c[SILENT] += 1
    c[STALE] = len(stale)
    return {s: c[s] for s in FILTER_STATES}


def matches(n: NodeView, group: str, state: str, prefix: str, stale: Set[tuple[str, str]]) -> bool:
    """Whether `n` passes the filters: its group, its state (or mark) and an id prefix; an
    empty filter lets everything through."""
    if group and n.group != group:
        return False
    if prefix and not n.id.startswith(prefix):
        return False
    if state == SILENT:
        return n.silent
    if state == STALE:
        return (n.group, n.id) in stale
    return not state or n.state == state


@dataclass(frozen=True)
class Attention:
    """The nodes that need an operator, first ATTENTION_SHOWN of them: halted first, then
    stale holders; `halted` and `stale` count them all."""

    shown: tuple[tuple[NodeView, tuple[str, ...]], ...]  # each node with its marks
    halted: int
    stale: int


def needs_attention(
    nodes: Iterable[NodeView], stale: set[tuple[str, str]], limit: int = ATTENTION_SHOWN
) -> Attention:
    halted: list[tuple[NodeView, tuple[str, ...]]] = []
    stale_only: list[tuple[NodeView, tuple[str, ...]]] = []
    for n in nodes:
        is_stale = (n.group, n.id) in stale
        if n.state == HALTED:
            halted.append((n, (HALTED, STALE) if is_stale else (HALTED,)))
        elif is_stale:
            stale_only.append((n, (STALE,)))
    shown = (halted + stale_only)[:limit]
    return Attention(tuple(shown), len(halted), len(stale))


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows, its number (from 1), how many pages and rows in all."""

    rows: tuple[NodeView, ...]
    number: int
    pages: int
    total: int


def page_of(rows: Sequence[NodeView], number: int, size: int = PAGE_SIZE) -> Page:
    """Page `number` of `rows` (clamped to the pages there are)."""
    pages = max(1, -(-len(rows) // size))
    number = min(max(1, number), pages)
    start = (number - 1) * size
    return Page(tuple(rows[start : start + size]), number, pages, len(rows))


@dataclass(frozen=True)
class Timed:
    """What in the view changes with time alone: a report going silent, a hold going stale
    or expiring, a pause ending, a node's next window opening."""

    reports: Iterable[tuple[datetime | None, datetime | None]]  # (updated_at, next_window)
    holds: Iterable[tuple[datetime, timedelta, datetime | None]]  # (last_seen, stale_after, exp)
    pauses_until: Iterable[datetime | None]


def changes_at(timed: Timed, now: datetime, silent_after: timedelta) -> datetime | None:
    """The first instant after `now` at which the view read at `now` stops being true though
    nothing was written (None: never). Every time-driven mark is a threshold crossing, so a
    view can be kept until then."""
    found: list[datetime] = []
    for updated_at, next_window in timed.reports:
        if updated_at is not None:
            found.append(later(updated_at, silent_after))
        if next_window is not None:
            found.append(next_window)
    for last_seen, stale_after, expires in timed.holds:
        found.append(later(last_seen, stale_after))
        if expires is not None:
            found.append(expires)
    found.extend(u for u in timed.pauses_until if u is not None)
    ahead = [t for t in found if t > now]
    return min(ahead) if ahead else None


SELECTIONS_KEPT = 64  # filtered lists a board remembers (each tab pages through one)


class Board:
    """Everything the dashboard shows, computed once from one read of the store and then
    sliced for every rendering (any filter, any page, any tab) until the store changes.
    `nodes` is the fleet view sorted by group then id; `groups` maps each group to (slots
    held, max, paused); `stale` holds the (group, id) of every stale hold."""

    def __init__(
        self,
        nodes: Sequence[NodeView],
        groups: Mapping[str, tuple[int, int, bool]],
        stale: set[tuple[str, str]],
    ) -> None:
        self.nodes = tuple(nodes)
        self.stale = frozenset(stale)
        self.counts = state_counts(self.nodes, stale)
        self.lines = group_lines(groups, self.nodes, stale)
        self.attention = needs_attention(self.nodes, stale)
        # Each reporting node's last report, by id (what a hold's marks are read from).
        self.reports = {n.id: n.report for n in self.nodes if n.report is not None}
        self.by_group: dict[str, list[NodeView]] = {}
        self._by_state: dict[str, list[NodeView]] = {}
        for n in self.nodes:
            self.by_group.setdefault(n.group, []).append(n)
            self._by_state.setdefault(n.state, []).append(n)
            if n.silent:
                self._by_state.setdefault(SILENT, []).append(n)
            if (n.group, n.id) in stale:
                self._by_state.setdefault(STALE, []).append(n)
        self._by_id = sorted(self.nodes, key=lambda n: (n.id, n.group))
        self._ids = [n.id for n in self._by_id]
        self._selected: dict[tuple[str, str, str], tuple[NodeView, ...]] = {}

    def _with_prefix(self, prefix: str) -> list[NodeView]:
        """The nodes whose id starts with `prefix`, in table order, without a scan."""
        start = bisect_left(self._ids, prefix)
        end = start
        while end < len(self._ids) and self._ids[end].startswith(prefix):
            end += 1
        return sorted(self._by_id[start:end], key=lambda n: (n.group, n.id))

    def select(self, group: str, state: str, prefix: str) -> tuple[NodeView, ...]:
        """The nodes that pass the filters (see `matches`), in table order. The narrowest
        index is walked, and the answer is kept for the next page of the same filter."""
        key = (group, state, prefix)
        found = self._selected.get(key)
        if found is not None:
            return found
        candidates: Sequence[NodeView] = self.nodes
        if group:
            candidates = self.by_group.get(group, [])
        if state and len(self._by_state.get(state, [])) < len(candidates):
            candidates = self._by_state.get(state, [])
        if prefix and len(candidates) == len(self.nodes):
            candidates = self._with_prefix(prefix)
        found = tuple(n for n in candidates if matches(n, group, state, prefix, self.stale))
        if len(self._selected) >= SELECTIONS_KEPT:
            self._selected.pop(next(iter(self._selected)))
        self._selected[key] = found
        return found

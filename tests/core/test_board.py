"""The dashboard's board as pure functions: the counts, the groups ranked by attention, the
nodes that need attention (bounded), the pages and filters of the nodes table, and the instant
at which time alone changes what the board says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from stagger.core.board import (
    FILTER_STATES,
    Board,
    Timed,
    changes_at,
    group_lines,
    matches,
    needs_attention,
    page_of,
    sort_groups,
)
from stagger.core.cycle.node_state import State
from stagger.core.fleet_view import HOLDING, NodeView, Source
from stagger.core.node_report import NodeReport

T = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T + timedelta(minutes=minutes)


def node(
    node_id: str,
    group: str,
    state: State,
    *,
    needed_since: datetime | None = None,
    silent: bool = False,
) -> NodeView:
    report = NodeReport(node_id, group, state, needed_since=needed_since, updated_at=at(0))
    return NodeView(node_id, group, state.value, Source.REPORT, silent=silent, report=report)


def test_groups_rank_halted_then_stale_then_the_longest_wait() -> None:
    nodes = [
        node("a1", "a", State.WAITING, needed_since=at(-60)),
        node("b1", "b", State.HALTED),
        node("c1", "c", State.WAITING, needed_since=at(-600)),
        node("d1", "d", State.IDLE),
        node("e1", "e", State.WAITING, needed_since=at(-5)),
    ]
    lines = group_lines({"d": (1, 1, False)}, nodes, stale={("d", "d1")})
    assert [g.group for g in sort_groups(lines, "attention")] == ["b", "d", "c", "a", "e"]
    assert [g.group for g in sort_groups(lines, "waiting")][:3] == ["c", "a", "e"]
    assert [g.group for g in sort_groups(lines, "name")] == ["a", "b", "c", "d", "e"]
    assert sort_groups(lines, "no-such-order")[0].group == "b"
    (c,) = [g for g in lines if g.group == "c"]
    assert (c.waiting, c.waiting_since, c.max, c.held) == (1, at(-600), 0, 0)


def test_a_group_line_counts_its_nodes_by_mark() -> None:
    nodes = [
        node("w1", "web", State.HALTED),
        node("w2", "web", State.WAITING, needed_since=at(-3), silent=True),
        node("w3", "web", State.WAITING, needed_since=at(-9)),
        NodeView("z9", "web", HOLDING, Source.LOCKS, holds_slot=True),
    ]
    (web,) = group_lines({"web": (1, 2, True)}, nodes, stale={("web", "z9")})
    assert (web.nodes, web.held, web.max, web.paused) == (4, 1, 2, True)
    assert (web.halted, web.stale, web.silent, web.waiting) == (1, 1, 1, 2)
    assert web.waiting_since == at(-9)


def test_the_attention_list_puts_halted_first_and_is_bounded_but_counts_all() -> None:
    nodes = [node(f"h{i:03}", "web", State.HALTED) for i in range(70)]
    nodes += [node(f"s{i:03}", "db", State.REBOOTING) for i in range(5)]
    stale = {("db", f"s{i:03}") for i in range(5)} | {("web", "h000")}
    att = needs_attention(nodes, stale, limit=50)
    assert (att.halted, att.stale) == (70, 6)
    assert len(att.shown) == 50
    assert all(n.state == "halted" for n, _ in att.shown)
    assert att.shown[0][1] == ("halted", "stale")
    few = needs_attention(nodes[65:], stale)
    assert [n.id for n, _ in few.shown] == ["h065", "h066", "h067", "h068", "h069"] + [
        f"s{i:03}" for i in range(5)
    ]


def test_pages_cover_every_row_once_and_a_page_past_the_end_is_the_last() -> None:
    rows = [node(f"n{i:04}", "web", State.IDLE) for i in range(123)]
    pages = [page_of(rows, k, 50) for k in (1, 2, 3)]
    assert [p.pages for p in pages] == [3, 3, 3]
    assert [n.id for p in pages for n in p.rows] == [n.id for n in rows]
    assert page_of(rows, 99, 50).number == 3
    assert page_of(rows, 0, 50).number == 1
    assert page_of([], 1, 50).pages == 1


STATES = [State.IDLE, State.WAITING, State.HALTED, State.REBOOTING]


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[NodeView], set[tuple[str, str]]]:
    ids = draw(st.sets(st.text("abc12", min_size=1, max_size=4), max_size=40))
    nodes = sorted(
        (
            node(
                i,
                draw(st.sampled_from(["g1", "g2", "g3"])),
                draw(st.sampled_from(STATES)),
                silent=draw(st.booleans()),
            )
            for i in ids
        ),
        key=lambda n: (n.group, n.id),
    )
    stale = {(n.group, n.id) for n in nodes if draw(st.booleans()) and n.state == "rebooting"}
    return nodes, stale


@given(
    fleets(),
    st.sampled_from(["", "g1", "g2", "nope"]),
    st.sampled_from(["", *FILTER_STATES]),
    st.sampled_from(["", "a", "b1", "c", "zz"]),
)
def test_the_boards_indexed_selection_is_the_filter_applied_to_every_node(
    fleet: tuple[list[NodeView], set[tuple[str, str]]], group: str, state: str, prefix: str
) -> None:
    nodes, stale = fleet
    board = Board(nodes, {}, stale)
    expected = [n for n in nodes if matches(n, group, state, prefix, stale)]
    assert list(board.select(group, state, prefix)) == expected
    assert list(board.select(group, state, prefix)) == expected  # kept, same answer
    assert sum(board.counts[s] for s in FILTER_STATES if s not in ("silent", "stale")) == len(nodes)


def test_time_alone_changes_the_board_at_the_first_threshold_ahead() -> None:
    silent_after = timedelta(minutes=15)
    timed = Timed(
        reports=[(at(-10), None), (at(-30), at(120))],  # silent at +5; already silent
        holds=[(at(-2), timedelta(minutes=10), None)],  # stale at +8
        pauses_until=[at(3), None],
    )
    assert changes_at(timed, T, silent_after) == at(3)
    assert changes_at(timed, at(3), silent_after) == at(5)
    assert changes_at(timed, at(9), silent_after) == at(120)  # a window opens
    assert changes_at(Timed([], [], [None]), T, silent_after) is None


def test_a_time_too_far_to_add_to_is_no_error() -> None:
    far = datetime.max.replace(tzinfo=UTC) - timedelta(seconds=1)
    timed = Timed(reports=[(far, None)], holds=[(far, timedelta(days=9), None)], pauses_until=[])
    assert changes_at(timed, T, timedelta(days=9)) is not None

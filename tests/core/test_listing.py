"""core/listing.py: which rows a page shows, its cursor, and its totals (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagger.core.cycle.node_state import State
from stagger.core.errors import InvalidInput
from stagger.core.fleet_view import HOLDING, SEEN, NodeView, Source
from stagger.core.listing import (
    HISTORY,
    NODES,
    NodeCounts,
    NodeQuery,
    decode_history_cursor,
    decode_node_cursor,
    encode_cursor,
    page_nodes,
    totals_of,
)
from stagger.core.node_report import NodeReport

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def reported(node_id: str, group: str = "web", state: State = State.IDLE) -> NodeView:
    r = NodeReport(node_id, group, state, updated_at=NOW)
    return NodeView(node_id, group, state.value, Source.REPORT, report=r)


def locks(node_id: str, group: str = "web", state: str = HOLDING) -> NodeView:
    return NodeView(node_id, group, state, Source.LOCKS, holds_slot=state == HOLDING)


names = st.text(alphabet="abcxyz-.0", min_size=1, max_size=6)


@given(st.tuples(st.sampled_from(["web", "web-x", "db"]), names), names, st.integers(0, 2**62))
def test_a_cursor_reads_back_as_the_key_it_was_made_of(
    node: tuple[str, str], key: str, position: int
) -> None:
    assert decode_node_cursor(encode_cursor(NODES, node)) == node
    assert decode_history_cursor(encode_cursor(HISTORY, (position, key))) == (position, key)


@pytest.mark.parametrize(
    "cursor",
    ["", "!!", "bm9kZXM", encode_cursor(HISTORY, (3, "k")), encode_cursor(NODES, ("a", "b")) + "x"],
)
def test_a_cursor_not_given_by_the_nodes_listing_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="next_cursor of the previous page"):
        decode_node_cursor(cursor)


def test_a_history_cursor_beyond_any_store_position_is_refused() -> None:
    with pytest.raises(InvalidInput):
        decode_history_cursor(encode_cursor(HISTORY, (2**64, "")))


def test_a_page_merges_reports_and_lock_only_nodes_in_group_then_id_order() -> None:
    query = NodeQuery(limit=3)
    rows, after = page_nodes(
        [reported("a"), reported("c"), reported("e")],
        True,
        [locks("b"), locks("d"), locks("z", "db")],
        query,
    )
    assert [(v.group, v.id) for v in rows] == [("db", "z"), ("web", "a"), ("web", "b")]
    assert after == ("web", "b")


def test_the_last_page_has_no_cursor() -> None:
    rows, after = page_nodes([reported("a")], False, [locks("b")], NodeQuery(limit=5))
    assert [v.id for v in rows] == ["a", "b"]
    assert after is None


def test_lock_only_rows_are_filtered_like_reports() -> None:
    query = NodeQuery(state=SEEN, after=("web", "b"), q="c")
    rows, _ = page_nodes(
        [],
        False,
        [locks("b", state=SEEN), locks("c1", state=SEEN), locks("c2"), locks("d", state=SEEN)],
        query,
    )
    assert [v.id for v in rows] == ["c1"]


def test_totals_add_lock_only_nodes_to_the_summary_of_the_group() -> None:
    counts = NodeCounts({"web": {"idle": 3, "halted": 1}, "db": {"idle": 2}}, {"web": {"idle": 1}})
    lock_only = [locks("z"), locks("y", "db", SEEN)]
    assert totals_of(counts, lock_only, None) == (
        {"halted": 1, "holding": 1, "idle": 5, "seen": 1},
        1,
    )
    assert totals_of(counts, lock_only, "db") == ({"idle": 2, "seen": 1}, 0)


def test_a_silent_node_is_counted_as_silent_in_metrics_not_in_its_state() -> None:
    counts = NodeCounts({"web": {"idle": 3}}, {"web": {"idle": 3}})
    assert counts.metric_counts() == {("web", "silent"): 3}


@pytest.mark.parametrize(
    ("field", "value"), [("state", "asleep"), ("limit", 0), ("limit", 1001), ("group", "a/b")]
)
def test_a_query_a_store_cannot_answer_is_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidInput):
        NodeQuery(**{field: value})  # type: ignore[arg-type]

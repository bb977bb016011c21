"""core/notices: what is news between two looks at the store, and when the notifier writes
its mark. Pure: values in, values out (the delivery is tested in test_notify.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stagger.core.cycle.node_state import CheckResult, State
from stagger.core.node_report import NodeReport
from stagger.core.notices import MARK_REFRESH, Seen, changes, mark_body, mark_due
from stagger.core.semaphore import FLEET, Action, Event

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
OP = "operator:alice"


def ev(seconds: int, action: Action, node_id: str = "", group: str = "web") -> Event:
    by = node_id or OP
    return Event(T0 + timedelta(seconds=seconds), group, action, by, node_id)


def test_the_first_look_only_takes_a_baseline() -> None:
    halted = NodeReport("n1", "web", State.HALTED)
    seen, found = changes(None, [ev(0, Action.ACQUIRED, "n1")], {("web", "n2"): T0}, [halted], T0)
    assert found == []
    assert seen.stale == frozenset({("web", "n2")})
    assert seen.halted == frozenset({"n1"})


def test_new_history_events_are_news_in_time_order_and_configured_is_not() -> None:
    before, _ = changes(None, [ev(0, Action.ACQUIRED, "a")], {}, [], T0)
    history = [
        ev(0, Action.ACQUIRED, "a"),
        ev(9, Action.RELEASED, "a"),
        ev(5, Action.CONFIGURED),
        ev(7, Action.PAUSED, group=FLEET),
    ]
    _, found = changes(before, history, {}, [], T0 + timedelta(seconds=10))
    assert [(n.event, n.group, n.id) for n in found] == [
        ("paused", None, ""),
        ("released", "web", "a"),
    ]


def test_a_hold_that_turns_stale_is_news_once_with_how_long_it_was_silent() -> None:
    now = T0 + timedelta(minutes=20)
    before, _ = changes(None, [], {}, [], T0)
    seen, found = changes(before, [], {("web", "n1"): T0}, [], now)
    assert [(n.event, n.id, n.detail) for n in found] == [("stale", "n1", "20m")]
    assert changes(seen, [], {("web", "n1"): T0}, [], now)[1] == []


def test_a_node_that_turns_halted_is_news_with_its_health_detail() -> None:
    failed = CheckResult(False, "curl /healthz: exit 7", T0)
    report = NodeReport("n1", "web", State.HALTED, last_health=failed, updated_at=T0)
    before, _ = changes(None, [], {}, [NodeReport("n1", "web", State.VERIFYING)], T0)
    _, found = changes(before, [], {}, [report], T0)
    assert [(n.event, n.id, n.detail, n.time) for n in found] == [
        ("halted", "n1", "curl /healthz: exit 7", T0)
    ]


def test_the_mark_is_written_when_the_view_changed_or_the_last_one_is_old() -> None:
    body = mark_body(Seen())
    assert mark_due(body, None, None, T0)
    assert not mark_due(body, body, T0, T0 + MARK_REFRESH - timedelta(seconds=1))
    assert mark_due(body, body, T0, T0 + MARK_REFRESH)
    other = mark_body(Seen(halted=frozenset({"n1"})))
    assert mark_due(other, body, T0, T0 + timedelta(seconds=1))

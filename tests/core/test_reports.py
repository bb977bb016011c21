"""The fleet view and rollout progress, as pure functions of reports, holds and history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagger.core.cycle.node_state import CheckResult, Need, NodeState, State
from stagger.core.fleet_view import HOLDING, SEEN, Source, fleet_nodes, hold_conditions
from stagger.core.forget import NodeHoldsSlot, check_forget
from stagger.core.node_report import NodeReport, Unreadable, decode_reports, stored_group
from stagger.core.semaphore import Action, Event, Hold
from stagger.core.waves import current_wave, wave_start

T = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T + timedelta(minutes=minutes)


def ev(minutes: float, action: Action, node_id: str, group: str = "web") -> Event:
    return Event(at(minutes), group, action, node_id, node_id)


def hold(node_id: str, minutes: float) -> Hold:
    return Hold(node_id, at(minutes), at(minutes))


def rep(
    node_id: str,
    state: State,
    *,
    needed_since: datetime | None = None,
    last_reboot: datetime | None = None,
    updated_at: datetime | None = None,
) -> NodeReport:
    return NodeReport(
        node_id,
        "web",
        state,
        needed_since=needed_since,
        last_reboot=last_reboot,
        updated_at=updated_at or at(100),
    )


def test_a_report_is_made_from_the_agents_saved_state() -> None:
    s = NodeState(
        cycle=State.HALTED,
        reason="health failed",
        needed=Need(at(0), "file", "/run/reboot-required"),
        last_reboot=at(10),
        last_health=CheckResult(False, "503", at(11)),
    )
    r = NodeReport.of("n1", "web", s, version="0.1.0", next_window=at(60))
    assert (r.state, r.needed_since, r.detector, r.last_reboot) == (
        State.HALTED,
        at(0),
        "file",
        at(10),
    )
    assert r.last_health == CheckResult(False, "503", at(11))
    assert (r.next_window, r.version, r.updated_at) == (at(60), "0.1.0", None)


@given(
    state=st.sampled_from(list(State)),
    needed=st.none() | st.integers(0, 10_000),
    health=st.none() | st.tuples(st.booleans(), st.text(max_size=50), st.integers(0, 10_000)),
    reason=st.text(max_size=50),
)
def test_a_report_survives_its_stored_form(
    state: State, needed: int | None, health: tuple[bool, str, int] | None, reason: str
) -> None:
    r = NodeReport(
        "n1",
        "web",
        state,
        reason=reason,
        needed_since=at(needed) if needed is not None else None,
        detector="file" if needed is not None else "",
        last_health=CheckResult(health[0], health[1], at(health[2])) if health else None,
        updated_at=at(5),
    )
    assert NodeReport.from_dict(r.to_dict()) == r


def test_a_report_older_than_silent_after_is_silent() -> None:
    r = rep("n1", State.IDLE, updated_at=at(0))
    assert not r.is_silent(at(15), timedelta(minutes=15))
    assert r.is_silent(at(15.1), timedelta(minutes=15))


def test_a_fleetlock_client_is_shown_from_its_hold_and_history() -> None:
    history = [
        ev(1, Action.ACQUIRED, "z1"),
        ev(2, Action.RELEASED, "z1"),
        ev(3, Action.ACQUIRED, "z2"),
    ]
    views = fleet_nodes([], {"web": [hold("z2", 3)]}, history, at(4))
    assert [(v.id, v.state, v.source, v.holds_slot) for v in views] == [
        ("z1", SEEN, Source.LOCKS, False),
        ("z2", HOLDING, Source.LOCKS, True),
    ]
    assert views[0].last_reboot == at(2)


def test_a_reporting_node_is_shown_from_its_report_not_its_locks() -> None:
    views = fleet_nodes(
        [rep("a1", State.DRAINING)],
        {"web": [hold("a1", 3)]},
        [ev(3, Action.ACQUIRED, "a1")],
        at(100),
    )
    assert [(v.id, v.state, v.source, v.holds_slot) for v in views] == [
        ("a1", "draining", Source.REPORT, True)
    ]


def test_there_is_no_wave_when_nothing_is_held_or_needed() -> None:
    history = [ev(1, Action.ACQUIRED, "a"), ev(2, Action.RELEASED, "a")]
    assert wave_start(history, [], at(10)) is None


def test_the_wave_starts_at_the_first_grant_after_the_group_was_last_quiet() -> None:
    history = [
        ev(1, Action.ACQUIRED, "old"),
        ev(2, Action.RELEASED, "old"),  # quiet from here: nothing needed yet
        ev(30, Action.ACQUIRED, "a"),  # the wave's first grant
        ev(40, Action.RELEASED, "a"),  # holders 0 again, but b already needed: not quiet
        ev(41, Action.ACQUIRED, "b"),
    ]
    assert wave_start(history, [at(20)], at(50)) == at(30)


def test_rollout_counts_done_in_progress_waiting_and_halted() -> None:
    history = [
        ev(30, Action.ACQUIRED, "a"),
        ev(40, Action.RELEASED, "a"),
        ev(41, Action.ACQUIRED, "b"),
        ev(42, Action.ACQUIRED, "h"),
    ]
    reports = [
        rep("a", State.IDLE, last_reboot=at(35)),
        rep("b", State.VERIFYING, needed_since=at(20), last_reboot=at(43)),
        rep("h", State.HALTED, needed_since=at(20), last_reboot=at(44)),
        rep("w", State.WAITING, needed_since=at(25)),
        rep("untouched", State.IDLE, last_reboot=at(-500)),
    ]
    holds = {"web": [hold("b", 41), hold("h", 42)]}
    views = fleet_nodes(reports, holds, history, at(50))
    r = current_wave("web", views, history, at(50))
    assert r.started == at(30)
    assert (r.done, r.in_progress, r.waiting, r.halted) == (("a",), ("b",), ("w",), ("h",))
    assert r.total == 4


def test_a_group_of_fleetlock_clients_shows_its_holders_in_progress() -> None:
    history = [
        ev(1, Action.ACQUIRED, "z1"),
        ev(2, Action.RELEASED, "z1"),
        ev(3, Action.ACQUIRED, "z2"),
    ]
    views = fleet_nodes([], {"web": [hold("z2", 3)]}, history, at(4))
    r = current_wave("web", views, history, at(4))
    assert (r.started, r.in_progress) == (at(3), ("z2",))


# --- reading stored reports one by one --------------------------------------------------------


def stored(report: NodeReport, **changes: object) -> str:
    return json.dumps({**report.to_dict(), **changes})


def test_one_unreadable_report_leaves_out_only_that_node() -> None:
    good = rep("a", State.IDLE, updated_at=at(0))
    newer = stored(rep("b", State.IDLE), state="napping")  # a state a newer agent knows
    found = decode_reports([("a", stored(good)), ("b", newer), ("c", "{not json")])
    assert found.reports == (good,)
    assert [u.key for u in found.unreadable] == ["b", "c"]
    assert "napping" in found.unreadable[0].error


@given(st.one_of(st.text(), st.binary(), st.lists(st.integers()).map(json.dumps)))
def test_decoding_never_raises_whatever_is_stored(raw: str | bytes) -> None:
    found = decode_reports([("k", raw)])
    assert len(found.reports) + len(found.unreadable) == 1


def test_a_report_missing_a_field_is_unreadable_with_the_field_named() -> None:
    doc = rep("a", State.IDLE).to_dict()
    del doc["group"]
    (u,) = decode_reports([("a", json.dumps(doc))]).unreadable
    assert u == Unreadable("a", "KeyError: 'group'")


def test_the_group_of_an_otherwise_unreadable_report_is_still_known() -> None:
    assert stored_group(stored(rep("b", State.IDLE), state="napping")) == "web"
    assert stored_group("{not json") is None


# --- forgetting --------------------------------------------------------------------------------


def test_a_node_holding_a_slot_in_any_group_cannot_be_forgotten() -> None:
    with pytest.raises(NodeHoldsSlot, match="stagger unlock --group db --id a") as caught:
        check_forget("a", {"web": [hold("b", 0)], "db": [hold("a", 0)]})
    assert (caught.value.group, caught.value.exit_code) == ("db", 1)


def test_a_node_holding_nothing_may_be_forgotten() -> None:
    check_forget("a", {"web": [hold("b", 0)], "db": []})


def test_a_forgotten_node_is_not_shown_from_its_earlier_locks() -> None:
    history = [
        ev(0, Action.ACQUIRED, "z"),
        ev(5, Action.RELEASED, "z"),
        Event(at(9), "web", Action.FORGOTTEN, "operator:alice", "z"),
    ]
    assert fleet_nodes([], {}, history, at(10)) == []


def test_a_forgotten_node_that_locks_again_is_shown_again() -> None:
    history = [
        ev(0, Action.ACQUIRED, "z"),
        Event(at(5), "web", Action.FORGOTTEN, "operator:alice", "z"),
        ev(7, Action.ACQUIRED, "z"),
        ev(8, Action.RELEASED, "z"),
    ]
    (node,) = fleet_nodes([], {}, history, at(10))
    assert (node.id, node.state, node.last_lock_activity) == ("z", SEEN, at(8))


# --- what a hold says about its node ------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "group", "stale", "expected"),
    [
        (State.HALTED, "web", False, ("halted",)),
        (State.HALTED, "web", True, ("halted", "stale")),
        (State.REBOOTING, "web", False, ("ok",)),
        (State.REBOOTING, "web", True, ("stale",)),
        (State.HALTED, "db", False, ("ok",)),  # its report is about another group
        (None, "web", False, ("ok",)),  # a FleetLock-only holder has no report
        (None, "web", True, ("stale",)),
    ],
)
def test_a_hold_says_what_its_node_reports_worst_first(
    state: State | None, group: str, stale: bool, expected: tuple[str, ...]
) -> None:
    reports = {} if state is None else {"web-1": NodeReport("web-1", group, state)}
    found = hold_conditions("web", "web-1", stale, reports)
    assert tuple(c.value for c in found) == expected

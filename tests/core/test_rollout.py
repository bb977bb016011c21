"""The rollout's pure decisions (core/rollout.py, core/rollout_gate.py): the gate, the stage
timeline, judging nodes and stages, the budget, the [rollout] table, and the stored form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stagger.backends.codec import (
    decode_semaphore,
    encode_semaphore,
    rollout_from_dict,
    rollout_to_dict,
)
from stagger.config.model import StaggerConfig
from stagger.core import rollout as r
from stagger.core.cycle.node_state import State
from stagger.core.errors import InvalidInput
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import (
    LEFT_BEHIND_KEPT,
    Budget,
    Rollout,
    Stage,
    StageMark,
    gate,
    parse_budget,
    timeline,
)
from stagger.core.semaphore import (
    FLEET,
    Action,
    Denied,
    DenyReason,
    Hold,
    Semaphore,
    acquire,
    release,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
STAGES = (Stage(("canary",), bake=30 * M), Stage(("web", "api"), close_after=60 * M))


def rollout(*marks: StageMark) -> Rollout:
    return Rollout(STAGES, T0, "operator:a", marks=marks)


def test_a_group_in_no_stage_or_in_the_first_is_never_held_back() -> None:
    assert gate(rollout(), "db", T0) is None
    assert gate(rollout(), "canary", T0) is None
    assert gate(None, "web", T0) is None


def test_a_later_stage_waits_for_the_mark_and_then_the_bake() -> None:
    waiting = gate(rollout(), "web", T0)
    assert waiting is not None
    assert (waiting.stage, waiting.bake_ends) == (0, None)
    baking = rollout(StageMark(T0 + M, T0 + 31 * M))
    held = gate(baking, "api", T0 + 10 * M)
    assert held is not None
    assert held.bake_ends == T0 + 31 * M
    assert gate(baking, "api", T0 + 31 * M) is None


def test_close_after_opens_the_next_stage_without_a_write() -> None:
    stages = (Stage(("canary",), close_after=5 * M), Stage(("web",)))
    ro = Rollout(stages, T0, "a")
    assert gate(ro, "web", T0 + 4 * M) is not None
    assert gate(ro, "web", T0 + 5 * M) is None
    assert timeline(ro, T0 + 5 * M)[1].opened_at == T0 + 5 * M


def test_a_complete_rollout_asks_for_a_new_one() -> None:
    done = rollout(StageMark(T0, T0), StageMark(T0, T0))
    waiting = gate(done, "canary", T0 + M)
    assert waiting is not None
    assert waiting.restart


def test_acquire_denies_with_rollout_waiting_and_notes_the_node_once() -> None:
    sem = Semaphore("web", max=3)
    first = acquire(sem, "w1", T0, rollout=rollout())
    assert first.outcome.reason is DenyReason.ROLLOUT_WAITING  # type: ignore[union-attr]
    assert first.changed
    assert first.semaphore.gated == {"w1": T0}
    again = acquire(first.semaphore, "w1", T0 + M, rollout=rollout())
    assert not again.changed


def test_a_release_in_a_staged_group_records_the_node_as_finished() -> None:
    sem = Semaphore("canary", holds={"c1": Hold("c1", T0, T0)})
    done = release(sem, "c1", T0 + M, by="c1", rollout=rollout())
    assert done.semaphore.finished == {"c1": T0 + M}
    by_operator = release(sem, "c1", T0 + M, by="operator:a", rollout=rollout())
    assert by_operator.semaphore.finished == {}


def test_nodes_are_judged_from_reports_holds_and_finished_cycles() -> None:
    sem = Semaphore(
        "canary",
        holds={"held": Hold("held", T0, T0), "silent": Hold("silent", T0 - 60 * M, T0 - 60 * M)},
        finished={"zincati": T0 + M, "old": T0 - 24 * 60 * M},
    )
    reports = [
        NodeReport("needs", "canary", State.WAITING, needed_since=T0),
        NodeReport("fine", "canary", State.IDLE),
        NodeReport("broken", "canary", State.HALTED),
        NodeReport("elsewhere", "web", State.WAITING, needed_since=T0),
    ]
    judged = r.judge_nodes(rollout(), sem, reports, T0 + 2 * M)
    states = {k: j.state.value for k, j in judged.items()}
    assert states == {
        "needs": "pending",
        "fine": "done",
        "broken": "halted",
        "zincati": "done",
        "old": "pending",  # a member from an earlier rollout, silent in this one
        "held": "pending",
        "silent": "halted",  # held past stale_after
    }


def test_a_stage_ends_at_its_last_finish_and_bakes_from_there() -> None:
    views = (
        r.StageView(("c1",), (), (), T0 + 3 * M),
        r.StageView((), ("w1",), (), None),
    )
    decided = r.advance(rollout(), views, T0 + 5 * M)
    assert decided.rollout is not None
    assert decided.rollout.marks == (StageMark(T0 + 3 * M, T0 + 33 * M),)
    assert [e.action for e in decided.events] == [Action.STAGE_DONE]
    assert decided.events[0].group == FLEET


def test_a_stage_past_close_after_ends_with_its_nodes_left_behind() -> None:
    marked = rollout(StageMark(T0, T0))
    views = (r.StageView((), (), (), None), r.StageView(("w1",), ("a1", "w2"), (), None))
    decided = r.advance(marked, views, T0 + 61 * M)
    assert decided.rollout is not None
    mark = decided.rollout.marks[1]
    assert (mark.closed, mark.left_behind) == (True, ("a1", "w2"))
    assert "left behind: a1, w2" in decided.events[0].detail


def test_the_budget_halts_once_per_new_halted_node() -> None:
    ro = Rollout(STAGES, T0, "a", max_failures=Budget(count=1))
    views = (r.StageView((), (), ("c1",), None), r.StageView((), (), (), None))
    decided = r.advance(ro, views, T0)
    assert decided.halt_reason is not None
    assert "c1" in decided.halt_reason
    assert decided.rollout is not None
    assert r.advance(decided.rollout, views, T0 + M).halt_reason is None


@pytest.mark.parametrize(
    ("text", "limit_of_40"), [("1", 1), (3, 3), ("5%", 2), ("1%", 1), ("100%", 40)]
)
def test_a_budget_is_a_count_or_a_share_of_at_least_one_node(
    text: str | int, limit_of_40: int
) -> None:
    assert parse_budget(text).limit(40) == limit_of_40


@pytest.mark.parametrize("bad", ["0", "0%", "101%", "-1", "x", "", True, None, "nan%"])
def test_a_bad_budget_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInput, match="max_failures"):
        parse_budget(bad)


def test_the_rollout_table_is_read_with_durations_down_to_one_second() -> None:
    stages, budget = r.plan_from_table(
        {
            "max_failures": "5%",
            "stage": [{"groups": ["canary"], "bake": "1s", "close_after": "1s"}, {"groups": []}],
        }
    )
    assert stages[0] == Stage(("canary",), timedelta(seconds=1), timedelta(seconds=1))
    assert stages[1] == Stage(())
    assert budget == Budget(percent=5)


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"stage": []}, "at least one stage"),
        ({"stage": [{"groups": ["a"]}, {"groups": ["a"]}]}, "one stage only"),
        ({"stage": [{"groups": ["a"], "bake": "30"}]}, "with a unit"),
        ({"stage": [{"groups": ["a"], "close_after": "0s"}]}, "at least 1s"),
        ({"stage": [{"groups": ["a"], "wait": "1m"}]}, "does not take wait"),
        ({"stage": [{"groups": ["no/slash"]}]}, "not valid"),
    ],
)
def test_a_bad_rollout_table_is_refused_naming_the_problem(
    table: dict[str, object], words: str
) -> None:
    with pytest.raises(InvalidInput, match=words):
        r.plan_from_table(table)


def test_the_config_reads_a_rollout_table() -> None:
    config = StaggerConfig.model_validate(
        {"rollout": {"max_failures": 1, "stage": [{"groups": ["canary"], "bake": "30m"}]}}
    )
    assert config.rollout is not None
    assert config.rollout.plan() == ((Stage(("canary",), 30 * M),), Budget(count=1))
    with pytest.raises(ValueError, match="one stage only"):
        StaggerConfig.model_validate({"rollout": {"stage": [{"groups": ["a"]}, {"groups": ["a"]}]}})


def test_the_rollout_and_the_groups_progress_survive_the_store_encoding() -> None:
    ro = Rollout(
        STAGES,
        T0,
        "a",
        Budget(percent=2.5),
        generation=4,
        marks=(StageMark(T0, T0 + M, ("x",), closed=True),),
        tripped_by=("y",),
    )
    fleet = Semaphore(FLEET, rollout=ro)
    group = Semaphore(
        "web",
        finished={"a": T0},
        gated={"b": T0},
        max_failures=Budget(count=2),
        budget_tripped=("c",),
    )
    for sem in (fleet, group):
        back = decode_semaphore(encode_semaphore(sem), "test")
        assert back == sem
        assert (back.finished, back.gated, back.budget_tripped) == (
            sem.finished,
            sem.gated,
            sem.budget_tripped,
        )


def test_a_fleetlock_client_queued_for_a_full_stage_group_keeps_the_stage_open() -> None:
    """A FleetLock client refused because its group is full says nothing else: its place in
    the fair queue is what tells the rollout that it still needs a reboot."""
    sem = acquire(Semaphore("canary", max=1), "first", T0 + M).semaphore
    queued = acquire(sem, "zincati", T0 + M)
    assert isinstance(queued.outcome, Denied)
    judged = r.judge_nodes(rollout(), queued.semaphore, [], T0 + 2 * M)
    assert judged["zincati"].state.value == "pending"
    assert judged["first"].state.value == "pending"  # holds its slot


def test_a_stage_closed_with_many_nodes_left_keeps_the_first_names_and_counts_them_all() -> None:
    """The mark is in the fleet record, which every lock reads: it stays small."""
    pending = tuple(f"w{i:04}" for i in range(LEFT_BEHIND_KEPT + 150))
    marked = rollout(StageMark(T0, T0))
    views = (r.StageView((), (), (), None), r.StageView((), pending, ("h1",), None))
    decided = r.advance(marked, views, T0 + 61 * M)
    assert decided.rollout is not None
    mark = decided.rollout.marks[1]
    behind = tuple(sorted((*pending, "h1")))
    assert mark.left_behind == behind[:LEFT_BEHIND_KEPT]
    assert mark.behind_count == LEFT_BEHIND_KEPT + 151
    assert f"{LEFT_BEHIND_KEPT + 151} node(s) left behind" in decided.events[0].detail
    again = rollout_from_dict(rollout_to_dict(decided.rollout)).marks[1]
    assert again == mark
    older = StageMark(T0, T0, ("a", "b"), closed=True)  # written before the count
    assert rollout_from_dict(rollout_to_dict(rollout(older))).marks[0].behind_count == 2

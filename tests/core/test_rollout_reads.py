"""Judging a rollout from the store's summary read (core/rollout.py GroupNodes: the reports
that need a reboot, the idle nodes the group records name, the count of the rest) decides what
judging it from every report does: stage ends, the budgets, the counts, the status."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rollout_reads_support import (
    T0,
    case,
    cut_from,
    fleet,
    judgments,
    listed,
    named,
    summary_read,
)
from stagger.core import rollout as r
from stagger.core import rollout_reads as reads
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.semaphore import Semaphore


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_the_summary_read_judges_as_every_report_does(seed: int) -> None:
    rng = random.Random(seed)
    reports = fleet(rng)
    c = case(rng, reports)
    every = judgments(c, reports)
    assert judgments(c, summary_read(reports, named(c))) == every
    assert judgments(c, summary_read(reports, dict.fromkeys(c.groups))) == every
    assert listed(c, summary_read(reports, dict.fromkeys(c.groups))) == listed(c, reports)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.sampled_from([1, 2, 5, 100]))
def test_the_status_read_counts_every_node_and_names_the_first(seed: int, names: int) -> None:
    """What `rollout status` reads (staged_reads: the ids its stages' records name) counts
    every list as a read of every report names it, and names the first `names` of each."""
    rng = random.Random(seed)
    reports = fleet(rng)
    c = case(rng, reports)
    read = summary_read(reports, reads.staged_reads(c.rollout, c.groups))
    cut_from(listed(c, reports), listed(c, read, names), names)


def test_nodes_at_rest_that_no_record_names_are_counted_done_not_named() -> None:
    reports = [NodeReport(f"w{i}", "web", State.IDLE, updated_at=T0) for i in range(5)]
    reports.append(NodeReport("w9", "web", State.HALTED, updated_at=T0))
    sem = Semaphore("web", finished={"w1": T0})
    nodes = summary_read(reports, {"web": reads.record_ids(sem)})["web"]
    assert nodes.resting == {"w1"}
    assert nodes.at_rest == 5
    judged, unnamed = r.judge_group(r.Rollout((), T0, "a"), sem, nodes, T0)
    assert sorted(judged) == ["w1", "w9"]
    assert unnamed == 4


def test_an_idle_report_kept_as_needing_a_reboot_is_judged_once() -> None:
    """A store may keep an idle report among those that need a reboot (its needed_since set,
    or flagged by an older write): judged from the report, and not counted again."""
    idle = NodeReport("w1", "web", State.IDLE, updated_at=T0)
    nodes = reads.GroupNodes.read([idle], ["w1", "w2"], 2)
    assert nodes.resting == {"w2"}
    assert nodes.at_rest == 1
    judged, unnamed = r.judge_group(r.Rollout((), T0, "a"), Semaphore("web"), nodes, T0)
    assert judged == {"w1": r.Judged(r.NodeState.DONE), "w2": r.Judged(r.NodeState.DONE)}
    assert unnamed == 0

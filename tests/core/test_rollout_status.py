"""Where a rollout is (core/rollout_status.py): each stage's lists name at most
MAX_STAGE_NAMES nodes, the first by id, and `totals` counts every node of each, however the
nodes at rest were read (named, or only counted: GroupNodes). The counts equal the whole
lists' lengths for any fleet: tests/core/test_rollout_reads.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Rollout, Stage, StageMark, StageState
from stagger.core.rollout_reads import GroupNodes, group_nodes
from stagger.core.rollout_status import MAX_STAGE_NAMES, StageTotals, status
from stagger.core.semaphore import Semaphore

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
N = MAX_STAGE_NAMES


def big_stage() -> list[NodeReport]:
    """More nodes than the bound in every list: N + 50 waiting, N + 3 halted, 2N at rest."""
    out = [NodeReport(f"w{i:04}", "web", State.WAITING, needed_since=T0) for i in range(N + 50)]
    out += [NodeReport(f"h{i:04}", "web", State.HALTED) for i in range(N + 3)]
    out += [NodeReport(f"i{i:04}", "web", State.IDLE) for i in range(2 * N)]
    return out


def test_each_list_names_its_first_nodes_up_to_the_bound_and_counts_them_all() -> None:
    rollout = Rollout((Stage(("web",)),), T0, "operator:a")
    reports = big_stage()
    (stage,) = status(rollout, {}, reports, T0 + M).stages
    assert stage.state is StageState.HALTED
    assert stage.totals == StageTotals(done=2 * N, pending=N + 50, halted=N + 3)
    assert stage.pending == tuple(f"w{i:04}" for i in range(N))
    assert stage.halted == tuple(f"h{i:04}" for i in range(N))
    assert stage.done == tuple(f"i{i:04}" for i in range(N))
    (whole,) = status(rollout, {}, reports, T0 + M, names=10 * N).stages
    assert (len(whole.pending), len(whole.halted), len(whole.done)) == (N + 50, N + 3, 2 * N)


def test_nodes_at_rest_read_as_a_count_are_counted_done_and_not_named() -> None:
    rollout = Rollout((Stage(("web",)),), T0, "operator:a")
    read = group_nodes("web", big_stage())
    counted = {"web": GroupNodes(read.busy, frozenset(), read.at_rest)}
    (stage,) = status(rollout, {}, counted, T0 + M).stages
    assert stage.done == ()
    assert stage.totals.done == 2 * N
    assert len(stage.pending) == N


def test_a_stage_closed_by_close_after_names_the_first_nodes_it_left_behind() -> None:
    behind = tuple(f"n{i:04}" for i in range(N + 20))
    mark = StageMark(T0 + 60 * M, T0 + 60 * M, behind, closed=True)
    rollout = Rollout((Stage(("web",), close_after=60 * M),), T0, "operator:a", marks=(mark,))
    (stage,) = status(rollout, {"web": Semaphore("web")}, [], T0 + 90 * M).stages
    assert stage.state is StageState.DONE
    assert stage.left_behind == behind[:N]
    assert stage.totals.left_behind == N + 20

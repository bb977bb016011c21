"""What judging a rollout reads of the node reports (docs/rollout.md, "What is read"): most
nodes are at rest (IDLE, no need) and done unless their group's record names them, so a
judgment needs the reports that need a reboot or are in their cycle, the nodes at rest the
records name, and a count of the rest (`GroupNodes`); `judged_reads` says which ids each group
is asked for. Pure: the stores read (backends/sqlite_summary.py, backends/etcd/node_index.py),
core/rollout.py judges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Rollout
from stagger.core.semaphore import Semaphore


def needs_reboot(report: NodeReport) -> bool:
    """A report the rollout judges one by one: its node needs a reboot or is in its cycle.
    Every other report says its node is at rest (IDLE, no need): done, unless its group's
    record names it (`record_ids`)."""
    return report.state is not State.IDLE or report.needed_since is not None


def record_ids(sem: Semaphore) -> frozenset[str]:
    """Every node `sem`'s record names (finished, gated, queued or holding): the only nodes
    at rest whose judgment the record can change, so the only ones read by id."""
    return frozenset({*sem.finished, *sem.gated, *sem.waiting, *sem.holds})


def judged_reads(
    rollout: Rollout | None, groups: Mapping[str, Semaphore]
) -> dict[str, frozenset[str]]:
    """What a judgment (`stage_views`, `advance`, `group_budget`) reads of the reports: for
    each group it judges (the staged ones while a stage is open or the rollout has a
    max_failures, and those with a budget of their own), the ids whose rest in that group it
    must know by name: those its record names and, for a staged group, those the records of
    its stage name (a node named in one group of a stage and at rest in another is judged as
    every report judges it). Every other node at rest is only counted (GroupNodes)."""

    out = {g: record_ids(sem) for g, sem in groups.items() if sem.max_failures is not None}
    if rollout is not None and (
        len(rollout.marks) < len(rollout.stages) or rollout.max_failures is not None
    ):
        for g, mates in staged_reads(rollout, groups).items():
            out[g] = out.get(g, frozenset()) | mates
    return dict(sorted(out.items()))


def staged_reads(rollout: Rollout, groups: Mapping[str, Semaphore]) -> dict[str, frozenset[str]]:
    """For each group of `rollout`'s stages, the ids whose rest in it the stage's judgment
    must know by name: those the records of its stage name. What the rollout's status reads
    (`SemaphoreStore.rollout_status`), whatever the stages' state: it judges every stage as
    `stage_views` does, so its nodes at rest that no record names are counted, not named."""

    def named(group: str) -> frozenset[str]:
        sem = groups.get(group)
        return record_ids(sem) if sem is not None else frozenset()

    out: dict[str, frozenset[str]] = {}
    for stage in rollout.stages:
        mates = frozenset[str]().union(*(named(g) for g in stage.groups))
        out.update(dict.fromkeys(stage.groups, mates))
    return out


@dataclass(frozen=True)
class GroupNodes:
    """What judging one group reads of its node reports (docs/rollout.md, "What is read"):
    the reports that need a reboot or are in their cycle (`busy`, `needs_reboot`), the
    group's nodes at rest that its record names, or all of them (`resting`, ids), and how many
    nodes of the group are at rest (`at_rest`, counted by the store's summary). A node at
    rest that `resting` does not name is done and only counted."""

    busy: tuple[NodeReport, ...] = ()
    resting: frozenset[str] = frozenset()
    at_rest: int = 0

    @classmethod
    def read(cls, busy: Iterable[NodeReport], idle: Iterable[str], idle_count: int) -> GroupNodes:
        """From a store's read: the reports it keeps as needing a reboot, the idle ids it
        found (named or all) and its count of idle reports. A report kept as needing a
        reboot may be idle (its needed_since set): it is judged from the report, not
        counted twice."""
        reports = tuple(busy)
        idle_busy = sum(1 for r in reports if r.state is State.IDLE)
        resting = frozenset(idle) - {r.id for r in reports}
        return cls(reports, resting, max(idle_count - idle_busy, len(resting)))


def group_nodes(group: str, reports: Iterable[NodeReport]) -> GroupNodes:
    """`group`'s GroupNodes from its reports, every node at rest named."""
    mine = [r for r in reports if r.group == group]
    resting = frozenset(r.id for r in mine if not needs_reboot(r))
    return GroupNodes(tuple(r for r in mine if needs_reboot(r)), resting, len(resting))


Reports = Sequence[NodeReport] | Mapping[str, GroupNodes]


def of_group(reports: Reports, group: str) -> GroupNodes:
    """A group's nodes from every report, or as the store read them (absent: none)."""
    if isinstance(reports, Mapping):
        return reports.get(group, GroupNodes())
    return group_nodes(group, reports)

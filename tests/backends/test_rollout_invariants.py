"""The rollout's invariants under random histories, on a real SQLite file and a real etcd
(hypothesis): nodes of three staged groups and one unstaged group ask, release, report a need,
no need or a halt, while the clock moves and the store judges the rollout.

- No grant in a stage before every earlier stage has ended (done, or closed by close_after)
  and its bake has passed, as the store's rollout recorded it.
- Once max_failures nodes of the rollout (or of a group with its own budget) are halted, no
  further grant in that scope (nobody resumes here).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagger.backends.factory import open_backend
from stagger.backends.semaphore_store import SemaphoreStore
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Budget, Rollout, Stage, timeline
from stagger.core.semaphore import Granted

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
GROUPS = ("g0", "g1", "g2", "free")
NODES = {g: tuple(f"{g}-n{i}" for i in range(3)) for g in GROUPS}
ROLLOUT_BUDGET = 2
GROUP_BUDGET = 2  # on g2


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Op:
    kind: str  # lock, unlock, need, idle, halt, tick, judge
    group: str = ""
    node: str = ""
    seconds: int = 0


def ops() -> st.SearchStrategy[Op]:
    node = st.sampled_from(GROUPS).flatmap(
        lambda g: st.tuples(st.just(g), st.sampled_from(NODES[g]))
    )
    return st.one_of(
        node.map(lambda gn: Op("lock", *gn)),
        node.map(lambda gn: Op("unlock", *gn)),
        node.map(lambda gn: Op("need", *gn)),
        node.map(lambda gn: Op("idle", *gn)),
        node.map(lambda gn: Op("halt", *gn)),
        st.integers(1, 120).map(lambda s: Op("tick", seconds=s)),
        st.just(Op("judge")),
    )


def stages_strategy() -> st.SearchStrategy[tuple[Stage, ...]]:
    stage = st.tuples(st.integers(0, 90), st.one_of(st.none(), st.integers(30, 300))).map(
        lambda bc: (timedelta(seconds=bc[0]), None if bc[1] is None else timedelta(seconds=bc[1]))
    )
    return st.tuples(stage, stage, stage).map(
        lambda s: tuple(
            Stage((g,), bake=b, close_after=c)
            for g, (b, c) in zip(("g0", "g1", "g2"), s, strict=True)
        )
    )


def passed_before(rollout: Rollout, stage: int, now: datetime) -> bool:
    """Every stage before `stage` ended and baked by `now`, as the rollout records it."""
    times = timeline(rollout, now)
    return all(times[j].passed_at is not None and times[j].passed_at <= now for j in range(stage))


async def play(url: str, stages: tuple[Stage, ...], history: list[Op]) -> None:
    clock = Clock()
    store = open_backend(url, clock=clock, default_max=2)
    assert isinstance(store, SemaphoreStore)
    try:
        await store.set_max_failures("g2", Budget(count=GROUP_BUDGET), by="operator:t")
        for group in ("g0", "g1", "g2"):  # an update arrived: the staged nodes need a reboot
            for node in NODES[group]:
                await store.report(NodeReport(node, group, State.WAITING, needed_since=T0))
        await store.set_rollout(stages, Budget(count=ROLLOUT_BUDGET), by="operator:t")
        halted: set[str] = set()
        rollout_stopped = group_stopped = False
        for op in history:
            if op.kind == "tick":
                clock.now += timedelta(seconds=op.seconds)
            elif op.kind == "judge":
                await store.advance_rollout()
            elif op.kind == "unlock":
                await store.release(op.group, op.node)
            elif op.kind in ("need", "idle", "halt"):
                state = {"need": State.WAITING, "idle": State.IDLE, "halt": State.HALTED}
                since = clock.now if op.kind == "need" else None
                await store.report(
                    NodeReport(op.node, op.group, state[op.kind], needed_since=since)
                )
                if op.kind == "halt":
                    halted.add(op.node)
                else:
                    halted.discard(op.node)
                staged = {n for n in halted if not n.startswith("free")}
                rollout_stopped = rollout_stopped or len(staged) >= ROLLOUT_BUDGET
                g2 = {n for n in halted if n.startswith("g2")}
                group_stopped = group_stopped or len(g2) >= GROUP_BUDGET
            else:
                outcome = await store.acquire(op.group, op.node)
                if not isinstance(outcome, Granted) or outcome.already_held:
                    continue
                snap = await store.status(None)
                rollout = snap.rollout
                assert rollout is not None
                index = rollout.stage_of(op.group)
                if index is not None:
                    assert passed_before(rollout, index, clock.now), (op, rollout)
                    assert not rollout_stopped, f"granted {op.node} after the rollout's budget"
                if op.group == "g2":
                    assert not group_stopped, f"granted {op.node} after g2's budget"
    finally:
        await store.close()


HISTORIES = st.lists(ops(), min_size=5, max_size=40)


@settings(max_examples=40)
@given(stages=stages_strategy(), history=HISTORIES)
def test_rollout_invariants_on_sqlite(
    tmp_path_factory: pytest.TempPathFactory, stages: tuple[Stage, ...], history: list[Op]
) -> None:
    path: Path = tmp_path_factory.mktemp("inv") / "s.db"
    asyncio.run(play(f"sqlite:///{path}", stages, history))


@settings(max_examples=20)
@given(stages=stages_strategy(), history=HISTORIES)
def test_rollout_invariants_on_etcd(
    etcd_server: object, stages: tuple[Stage, ...], history: list[Op]
) -> None:
    url = f"{etcd_server.url}?prefix=inv-{uuid.uuid4().hex[:12]}/"  # type: ignore[attr-defined]
    asyncio.run(play(url, stages, history))

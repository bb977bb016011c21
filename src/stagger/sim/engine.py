"""A fleet on a virtual clock: the real node cycle and the real semaphore, no real time.

Rules of this file:
- Every decision is core's: each node's events go through `core.cycle.decide.step`, and the
  actions it returns are carried out here, against a real Backend (SQLite in memory, whose
  clock is this simulator's). Nothing here decides who reboots, when, or with which slot.
- The clock is a heap of (time in µs, sequence, node, event); the sequence breaks ties in
  the order things were scheduled, so a seed gives the same run every time.
- Actions: RequestSlot → backend.acquire; ReleaseSlot → backend.release; Touch →
  backend.touch; RunPreRebootHooks → HooksPassed after a drain-time sample; Reboot →
  BootDetected (a new boot id, through `start_event`) after reboot + boot samples;
  RunHealthChecks → HealthFailed with the scenario's failure rate, else HealthPassed;
  WakeAt → a Tick then (replacing the earlier one). Backend calls, hooks' verdicts and health
  checks' verdicts take no virtual time; the drain does.
- A node whose health failed stays broken (the simulation has no operator): it keeps its slot
  in HALTED and its periodic health re-checks are not simulated, since each would fail again.

How a freed slot is taken: nodes poll, exactly as agents do. A denied node waits in WAITING
until its retry_at (Timings.retry_at: on its own beat) and asks again; the machine has no other
way to learn that a slot is free. Simulating every denied poll of 10,000 nodes would cost
millions of backend calls, so a node denied because its group is full is *parked*: its polls
are skipped while they could only be denied again. When a slot frees, the parked node whose
next poll (retry_at + k·retry_interval) comes first is woken at exactly that time and polls for
real. This gives the same rollout as simulating every poll, as long as a skipped poll has no
effect: it has none while the group stays full and the schedule stays open (a denial writes
nothing, and the machine only moves retry_at on by one interval). So parked nodes are also
woken, at their next poll, when the schedule closes, and then follow the machine to the next
opening.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from heapq import heappop, heappush

from stagger.backends.sqlite import MEMORY, SqliteBackend
from stagger.core.cycle.decide import step
from stagger.core.cycle.node_state import NodeState, State
from stagger.core.cycle.vocabulary import (
    BootDetected,
    Context,
    Event,
    HealthFailed,
    HealthPassed,
    HooksPassed,
    Needed,
    Persist,
    Reboot,
    RecordEvent,
    Released,
    ReleasedByOperator,
    ReleaseSlot,
    RequestSlot,
    RunHealthChecks,
    RunPreRebootHooks,
    SlotDenied,
    SlotGranted,
    Tick,
    Touch,
    WakeAt,
    beat_of,
    start_event,
)
from stagger.core.rollout_gate import budget_to_text
from stagger.core.schedule import HORIZON
from stagger.core.semaphore import DenyReason, Granted
from stagger.core.semaphore import Released as SlotReleased
from stagger.core.strategy import Strategy
from stagger.sim.distributions import Distribution
from stagger.sim.scenario import Scenario

ONE_US = timedelta(microseconds=1)
US = 1_000_000
_TICK = Tick()
_UNPARK = -1  # the heap entry that wakes every parked node when the schedule closes
_NOT_A_WAKE = -1  # the token of events that are always delivered
DETECTOR = "simulated"
# A rebooting node is down: its agent runs again only at boot. A halted node stays broken
# (see the module's docstring). Neither gets Ticks.
_NO_TICKS = frozenset({State.REBOOTING, State.HALTED})


@dataclass(frozen=True)
class Progress:
    done: int
    nodes: int
    virtual_seconds: float
    events: int


@dataclass
class GroupResult:
    name: str
    nodes: int
    max: int
    done: int = 0
    halted: list[str] = field(default_factory=list)
    waiting: int = 0  # still needing a reboot when the simulation ended
    max_holders: int = 0  # the most holds the backend reported at once
    max_down: int = 0  # the most nodes between their reboot and their boot at once
    # (seconds since start, value) at every change, for the plot
    down: list[tuple[float, int]] = field(default_factory=list)
    holders: list[tuple[float, int]] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)  # when each done node finished


@dataclass
class StageResult:
    """One rollout stage as the backend recorded it: when it opened (its previous stage
    passed its bake), when its last node finished (its end, written by the store), and its
    bake. Times are seconds since the start; None: it did not happen in the run."""

    groups: tuple[str, ...]
    nodes: int
    bake_seconds: float
    started_seconds: float | None = None
    finished_seconds: float | None = None


@dataclass
class Result:
    scenario: Scenario
    groups: list[GroupResult]
    completion_seconds: float | None  # when the last node finished; None if some never did
    last_done_seconds: float | None  # when the last node that did finish finished
    end_seconds: float  # when the last thing happened
    events: int
    backend_calls: int
    aborted: int
    wall_seconds: float
    stages: list[StageResult] = field(default_factory=list)
    stopped_by_budget: bool = False  # the rollout's max_failures halted it; the run ended

    @property
    def nodes(self) -> int:
        return sum(g.nodes for g in self.groups)

    @property
    def done(self) -> int:
        return sum(g.done for g in self.groups)

    @property
    def halted(self) -> list[str]:
        return [i for g in self.groups for i in g.halted]

    @property
    def bound_seconds(self) -> float | None:
        return self.scenario.bound_seconds()

    @property
    def ratio(self) -> float | None:
        bound = self.bound_seconds
        if bound is None or bound <= 0 or self.completion_seconds is None:
            return None
        return self.completion_seconds / bound

    @property
    def max_concurrent(self) -> int:
        return max((g.max_holders for g in self.groups), default=0)

    def to_json(self) -> dict[str, object]:
        s = self.scenario
        return {
            "nodes": self.nodes,
            "done": self.done,
            "completion_seconds": self.completion_seconds,
            "last_done_seconds": self.last_done_seconds,
            "bound_seconds": self.bound_seconds,
            "ratio": self.ratio,
            "max_concurrent": self.max_concurrent,
            "halted": self.halted,
            "waiting": sum(g.waiting for g in self.groups),
            "aborted": self.aborted,
            "end_seconds": self.end_seconds,
            "groups": [
                {
                    "name": g.name,
                    "nodes": g.nodes,
                    "max": g.max,
                    "max_percent": p.max if p.percent else None,
                    "done": g.done,
                    "halted": g.halted,
                    "waiting": g.waiting,
                    "max_holders": g.max_holders,
                    "max_down": g.max_down,
                }
                for g, p in zip(self.groups, s.groups, strict=True)
            ],
            "stages": [
                {
                    "groups": list(st.groups),
                    "nodes": st.nodes,
                    "started_seconds": st.started_seconds,
                    "finished_seconds": st.finished_seconds,
                    "bake_seconds": st.bake_seconds,
                }
                for st in self.stages
            ],
            "stopped_by_budget": self.stopped_by_budget,
            "scenario": {
                "start": s.start.isoformat(),
                "seed": s.seed,
                "drain_time": str(s.drain),
                "reboot_time": str(s.reboot),
                "boot_time": str(s.boot),
                "needed_over_seconds": s.needed_over.total_seconds(),
                "health_failure_rate": s.health_failure_rate,
                "pace_seconds": s.pace.total_seconds() if s.pace is not None else None,
                "max_failures": budget_to_text(s.max_failures),
                "windows": [w.describe() for w in s.schedule.windows],
                "blackouts": [
                    {"start": b.start.isoformat(), "end": b.end.isoformat(), "reason": b.reason}
                    for b in s.schedule.blackouts
                ],
            },
            "events": self.events,
            "backend_calls": self.backend_calls,
            "wall_seconds": self.wall_seconds,
        }


class _Node:
    __slots__ = (
        "boots", "ctx", "done_at", "group", "id", "index", "parked", "state", "token", "woken"
    )  # fmt: skip

    def __init__(
        self, index: int, node_id: str, group: int, state: NodeState, ctx: Context
    ) -> None:
        self.index = index
        self.id = node_id
        self.group = group
        self.state = state
        self.ctx = ctx  # the fleet's Context with this node's retry beat, as its agent has
        self.boots = 1
        self.token = 0  # bumped whenever the pending wake-up is replaced or cancelled
        self.parked = False
        self.woken = False  # woken from parking; its wake-up is counted in the group's pending
        self.done_at: int | None = None


class Simulator:
    def __init__(
        self,
        scenario: Scenario,
        *,
        progress: Callable[[Progress], None] | None = None,
        park: bool = True,
    ) -> None:
        """`park=False` simulates every denied poll (slow; tests compare the two)."""
        self.sc = scenario
        self.park = park
        self.progress = progress
        self.rng = random.Random(scenario.seed)
        self.ctx = Context(Strategy.LOCK, schedule=scenario.schedule, timings=scenario.timings)
        self.t = 0  # virtual µs since scenario.start
        self.backend = SqliteBackend(MEMORY, clock=self._clock, inline=True)
        self.heap: list[tuple[int, int, int, Event, int]] = []
        self.seq = 0
        self.retry_us = max(1, scenario.timings.retry_interval // ONE_US)
        self.nodes: list[_Node] = []
        self.groups = [GroupResult(g.name, g.nodes, g.slots) for g in scenario.groups]
        self.names = [g.name for g in scenario.groups]
        self.holders = [0] * len(self.groups)
        self.down = [0] * len(self.groups)
        self.pending = [0] * len(self.groups)  # woken parked nodes whose poll is still ahead
        self.parked: list[list[tuple[int, int, int]]] = [[] for _ in self.groups]
        self.unpark_at: set[int] = set()
        self.events = 0
        self.calls = 0
        self.aborted = 0
        self.done = 0
        self.always_open = scenario.always_open

    def _clock(self) -> datetime:
        return self.sc.start + self.t * ONE_US

    def _push(self, at: int, node: int, event: Event, token: int = _NOT_A_WAKE) -> None:
        self.seq += 1
        heappush(self.heap, (at, self.seq, node, event, token))

    # --- the run ----------------------------------------------------------------------------

    async def run(self) -> Result:
        began = time.perf_counter()
        sc = self.sc
        for g in sc.groups:
            await self.backend.set_max(g.name, g.slots, by="simulator")
        single = len(sc.groups) == 1
        over_us = sc.needed_over // ONE_US
        for gi, g in enumerate(sc.groups):
            for i in range(1, g.nodes + 1):
                node_id = f"node-{i}" if single else f"{g.name}-{i}"
                index = len(self.nodes)
                state = NodeState(boot_id=f"{node_id}-boot-1")
                ctx = replace(self.ctx, beat=beat_of(node_id))
                self.nodes.append(_Node(index, node_id, gi, state, ctx))
                at = int(self.rng.uniform(0, over_us)) if over_us > 0 else 0
                self._push(at, index, Needed(DETECTOR, "an update is installed"))
        limit = (sc.needed_over + HORIZON) // ONE_US
        last = 0
        while self.heap:
            at, _, index, event, token = heappop(self.heap)
            if at > limit:
                break
            self.t = at
            if index == _UNPARK:
                self._unpark_all(at)
                continue
            node = self.nodes[index]
            if token != _NOT_A_WAKE:
                if token != node.token:
                    continue  # replaced by a later WakeAt, or cancelled
                if node.woken:
                    node.woken = False
                    self.pending[node.group] -= 1
            last = at
            await self._deliver(node, event)
            self._refill(node.group, at)
            self.events += 1
            if self.progress is not None and self.events % 5000 == 0:
                self.progress(Progress(self.done, len(self.nodes), at / US, self.events))
        await self.backend.close()
        return self._result(last, time.perf_counter() - began)

    def _result(self, last: int, wall: float) -> Result:
        finished: list[int] = []
        for node in self.nodes:
            g = self.groups[node.group]
            if node.state.cycle is State.HALTED:
                g.halted.append(node.id)
            elif node.done_at is not None and node.state.needed is None:
                g.done += 1
                g.finished.append(node.done_at / US)
                finished.append(node.done_at)
            else:
                g.waiting += 1
        complete = len(finished) == len(self.nodes)
        sizes = {g.name: g.nodes for g in self.sc.groups}
        stages = [
            StageResult(st.groups, sum(sizes[n] for n in st.groups), st.bake.total_seconds())
            for st in self.sc.stages
        ]
        return Result(
            scenario=self.sc,
            groups=self.groups,
            completion_seconds=max(finished) / US if complete and finished else None,
            last_done_seconds=max(finished) / US if finished else None,
            end_seconds=last / US,
            events=self.events,
            backend_calls=self.calls,
            aborted=self.aborted,
            wall_seconds=wall,
            stages=stages,
        )

    # --- one node's event and the actions it leads to --------------------------------------

    async def _deliver(self, node: _Node, first: Event) -> None:
        now = self._clock()
        t = self.t
        gi = node.group
        group = self.names[gi]
        queue: list[Event] = [first]
        wake: datetime | None = None
        full_denial = parkable = False
        while queue:
            event = queue.pop(0)
            if type(event) is BootDetected:
                self._set_down(gi, -1)
            before = node.state.cycle
            state, actions = step(node.state, event, now, node.ctx)
            node.state = state
            wake = None
            # parkable: this step took the denial of a full group (see the module docstring)
            parkable = type(event) is SlotDenied and full_denial
            full_denial = False
            for action in actions:
                kind = type(action)
                if kind is Persist:
                    continue
                if kind is WakeAt:
                    assert isinstance(action, WakeAt)
                    wake = action.at
                elif kind is RequestSlot:
                    assert isinstance(action, RequestSlot)
                    self.calls += 1
                    got = await self.backend.acquire(group, node.id, note=action.note)
                    if isinstance(got, Granted):
                        if not got.already_held:
                            await self._measure_holders(gi)
                        queue.append(SlotGranted())
                    else:
                        full_denial = got.reason is DenyReason.FULL
                        queue.append(SlotDenied(got.sentence()))
                elif kind is ReleaseSlot:
                    self.calls += 1
                    out = await self.backend.release(group, node.id)
                    if isinstance(out, SlotReleased):
                        self._set_holders(gi, self.holders[gi] - 1)
                    queue.append(Released())
                elif kind is Touch:
                    self.calls += 1
                    if await self.backend.touch(group, node.id) is None:
                        queue.append(ReleasedByOperator("the simulator found no hold"))
                elif kind is RunPreRebootHooks:
                    self._push(t + self._sample_us(self.sc.drain), node.index, HooksPassed())
                elif kind is Reboot:
                    self._set_down(gi, +1)
                    node.boots += 1
                    took = self._sample_us(self.sc.reboot) + self._sample_us(self.sc.boot)
                    boot = start_event(node.state, f"{node.id}-boot-{node.boots}")
                    self._push(t + took, node.index, boot)
                elif kind is RunHealthChecks:
                    if self.rng.random() < self.sc.health_failure_rate:
                        queue.append(HealthFailed("the simulated health check failed"))
                    else:
                        queue.append(HealthPassed())
                elif kind is RecordEvent:
                    assert isinstance(action, RecordEvent)
                    if action.kind == "aborted":
                        self.aborted += 1
            if state.cycle is State.IDLE and before is not State.IDLE and node.boots > 1:
                node.done_at = t
                self.done += 1
        self._wake(node, wake, parkable)

    def _wake(self, node: _Node, wake: datetime | None, full_denial: bool) -> None:
        """Carry out the last WakeAt (or its absence: no wake-up), or park the node."""
        node.token += 1
        if wake is None or node.state.cycle in _NO_TICKS:
            return
        at = (wake - self.sc.start) // ONE_US
        if self.park and full_denial and node.state.cycle is State.WAITING and self._may_park():
            node.parked = True
            phase = at % self.retry_us
            bisect.insort(self.parked[node.group], (phase, node.index, node.index))
            return
        self._push(max(at, self.t), node.index, _TICK, node.token)

    def _may_park(self) -> bool:
        """Skipped polls are exact while the schedule stays open: make sure every parked node
        is woken when it closes."""
        if self.always_open:
            return True
        closes = self.sc.schedule.closes_at(self._clock())
        if closes is None:
            return self.sc.schedule.is_open(self._clock())
        at = (closes - self.sc.start) // ONE_US
        if at not in self.unpark_at:
            self.unpark_at.add(at)
            self._push(at, _UNPARK, _TICK)
        return True

    def _next_poll(self, node: _Node, t: int) -> int:
        """The first poll of a parked node at or after `t`: retry_at + k·retry_interval."""
        retry_at = node.state.retry_at
        r = t if retry_at is None else (retry_at - self.sc.start) // ONE_US
        if r >= t:
            return r
        return r + -(-(t - r) // self.retry_us) * self.retry_us

    def _refill(self, gi: int, t: int) -> None:
        """While the group has a free slot nobody is about to poll for, wake the parked node
        whose next poll comes first."""
        parked = self.parked[gi]
        limit = self.groups[gi].max
        while parked and self.holders[gi] + self.pending[gi] < limit:
            i = bisect.bisect_left(parked, (t % self.retry_us, -1, -1))
            _, _, index = parked.pop(i if i < len(parked) else 0)
            node = self.nodes[index]
            node.parked = False
            node.woken = True
            self.pending[gi] += 1
            node.token += 1
            self._push(self._next_poll(node, t), index, _TICK, node.token)

    def _unpark_all(self, t: int) -> None:
        self.unpark_at.discard(t)
        for parked in self.parked:
            for _, _, index in parked:
                node = self.nodes[index]
                node.parked = False
                node.token += 1
                self._push(self._next_poll(node, t), index, _TICK, node.token)
            parked.clear()

    # --- measurements -----------------------------------------------------------------------

    def _sample_us(self, dist: Distribution) -> int:
        return max(0, int(dist.sample(self.rng) * US))

    async def _measure_holders(self, gi: int) -> None:
        """After a grant: how many holds the backend itself reports (not our own count)."""
        self.calls += 1
        snap = await self.backend.status(self.names[gi])
        self._set_holders(gi, len(snap.groups[0].holds))

    def _set_holders(self, gi: int, value: int) -> None:
        self.holders[gi] = value
        g = self.groups[gi]
        g.max_holders = max(g.max_holders, value)
        g.holders.append((self.t / US, value))

    def _set_down(self, gi: int, delta: int) -> None:
        self.down[gi] += delta
        g = self.groups[gi]
        g.max_down = max(g.max_down, self.down[gi])
        g.down.append((self.t / US, self.down[gi]))


async def simulate_async(
    scenario: Scenario, progress: Callable[[Progress], None] | None = None
) -> Result:
    return await Simulator(scenario, progress=progress).run()


def simulate(scenario: Scenario, progress: Callable[[Progress], None] | None = None) -> Result:
    """Run a scenario to its end (every node done, halted, or stuck waiting)."""
    return asyncio.run(simulate_async(scenario, progress))

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
are skipped while they could only be denied again. When a slot frees, the parked node that
asked first (the head of the group's fair queue, core/turns.py) is woken at its next poll
(retry_at + k·retry_interval) and polls for real, as that node would take the slot. Its skipped
polls would not keep its place in the store's queue (a place lasts stale_after without an ask),
so the simulator gives its groups a stale_after longer than any run: no place lapses.
This gives the same rollout as simulating every poll, as long as a skipped poll has no effect:
it has none while the group stays full and the schedule stays open (the machine only moves
retry_at on by one interval, and the queue keeps the order of first denials). So parked nodes
are also
woken, at their next poll, when the schedule closes, and then follow the machine to the next
opening.

The other denials that only time or another node can lift are skipped the same way. A node
queued behind earlier askers (queued) is parked with the full group's. A node the full queue
has no place for (docs/rollout.md) is not parked: it asks at every poll, as an agent does,
until a place frees and it joins the queue. A node the pace holds
back (pacing, with the pace's end) sleeps to its first poll after that end, counted as about
to take the freed slot. A node a rollout stage holds back (rollout_waiting) sleeps to its first
poll after the bake's end when the denial names one; otherwise it is parked until the store
writes a stage's end (read after each release, halted report and refused ask of a staged
group: sim/stages.py) or the open stage's close_after passes, and then asks again. Once the
error budget halted the rollout, a refused node stops asking: nothing resumes it here.

Why this file is long (~660 lines): the event loop and the rules for skipping and waking
parked, queued, paced and rollout-held nodes are one argument (a skipped poll must have no
effect on the rollout), kept in one file beside this docstring; the scenario, stages, plot
and distributions have their own modules.
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
from stagger.core.durations import MAX_DURATION
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Rollout, budget_to_text
from stagger.core.schedule import HORIZON
from stagger.core.semaphore import Denied, DenyReason, Granted
from stagger.core.semaphore import Released as SlotReleased
from stagger.core.strategy import Strategy
from stagger.sim.distributions import Distribution
from stagger.sim.scenario import Scenario
from stagger.sim.stages import StageResult, StageWatch

ONE_US = timedelta(microseconds=1)
US = 1_000_000
_TICK = Tick()
_UNPARK = -1  # the heap entry that wakes every parked node when the schedule closes
_REGATE = -2  # the heap entry that wakes the nodes a rollout stage held back (close_after)
_NOT_A_WAKE = -1  # the token of events that are always delivered
DETECTOR = "simulated"
# A rebooting node is down: its agent runs again only at boot. A halted node stays broken
# (see the module's docstring). Neither gets Ticks.
_NO_TICKS = frozenset({State.REBOOTING, State.HALTED})
# Denials that leave a node waiting its turn in a full group's queue: it is parked.
_QUEUED = frozenset({DenyReason.FULL, DenyReason.QUEUED})


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
        "asked", "boots", "ctx", "done_at", "group", "id", "index", "parked", "state", "token",
        "woken",
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
        self.asked: int | None = None  # its place in the order of first denials (the queue)
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
        self.limit = [g.max for g in self.groups]  # the slots in force, as last read
        self.down = [0] * len(self.groups)
        self.asked = 0  # first denials so far: the order nodes joined their group's queue
        self.pending = [0] * len(self.groups)  # woken parked nodes whose poll is still ahead
        self.parked: list[list[tuple[int, int, int]]] = [[] for _ in self.groups]
        self.unpark_at: set[int] = set()
        self.events = 0
        self.calls = 0
        self.aborted = 0
        self.done = 0
        self.always_open = scenario.always_open
        # The rollout (sim/stages.py): the nodes its gate holds back until a stage ends, and
        # whether an event may have ended one (the store is read then).
        self.watch = StageWatch(scenario) if scenario.stages else None
        self.gated: list[int] = []
        self.judge = False
        self.rollout_set = False
        self.regate_at: set[int] = set()

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
            await self.backend.set_max(g.name, g.max, by="simulator", percent=g.percent)
            if sc.pace is not None:
                await self.backend.set_pace(g.name, sc.pace, by="simulator")
            # A waiting node keeps its place in the queue for the whole run, as a real agent
            # that asks every retry interval does, so parking (which skips those asks) stays
            # exact. Nodes that stop asking (the schedule closed) keep their places too.
            await self.backend.configure(
                g.name, by="simulator", hold_ttl=None, stale_after=MAX_DURATION
            )
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
            if index == _REGATE:
                self.regate_at.discard(at)
                self._ungate(at)
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
            if self.judge:
                await self._judge()
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
        stages: list[StageResult] = self.watch.stages if self.watch is not None else []
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
            stopped_by_budget=self.watch is not None and self.watch.halted,
        )

    # --- one node's event and the actions it leads to --------------------------------------

    async def _deliver(self, node: _Node, first: Event) -> None:
        now = self._clock()
        t = self.t
        gi = node.group
        group = self.names[gi]
        queue: list[Event] = [first]
        wake: datetime | None = None
        denied: Denied | None = None  # the denial the last step took (a SlotDenied)
        got_denial: Denied | None = None
        staged = self.watch is not None and group in self.watch.stage_of
        while queue:
            event = queue.pop(0)
            if type(event) is BootDetected:
                self._set_down(gi, -1)
            before = node.state.cycle
            had_need = node.state.needed is not None
            state, actions = step(node.state, event, now, node.ctx)
            node.state = state
            if self.watch is not None and (
                (state.needed is not None) is not had_need
                or (state.cycle is State.HALTED and before is not State.HALTED)
            ):
                await self._report(node, group)
            wake = None
            denied = got_denial if type(event) is SlotDenied else None
            got_denial = None
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
                        node.asked = None
                        self.judge = self.judge or staged  # the ask may have begun a rollout
                        queue.append(SlotGranted())
                    else:
                        got_denial = got
                        if got.reason is DenyReason.ROLLOUT_WAITING:
                            self.judge = True  # the ask may have ended a stage
                        elif node.asked is None and got.position is not None:
                            # it joined the group's queue now (a node the full queue has no
                            # place for joins at a later ask)
                            self.asked += 1
                            node.asked = self.asked
                            if self.sc.groups[gi].percent:
                                await self._measure_holders(gi)  # one more known node
                        queue.append(SlotDenied(got.sentence()))
                elif kind is ReleaseSlot:
                    self.calls += 1
                    out = await self.backend.release(group, node.id)
                    if isinstance(out, SlotReleased):
                        self._set_holders(gi, self.holders[gi] - 1)
                        self.judge = self.judge or staged
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
        self._wake(node, wake, denied)

    def _wake(self, node: _Node, wake: datetime | None, denied: Denied | None) -> None:
        """Carry out the last WakeAt (or its absence: no wake-up), or park the node, or skip
        its polls to the first one that can be granted (see the module's docstring)."""
        node.token += 1
        if wake is None or node.state.cycle in _NO_TICKS:
            return
        at = (wake - self.sc.start) // ONE_US
        reason = denied.reason if denied is not None else None
        waiting = self.park and node.state.cycle is State.WAITING
        if denied is not None and self.watch is not None and self.watch.halted:
            return  # the budget halted the rollout: nothing resumes it in a simulation
        placed = denied is not None and denied.position is not None
        if waiting and reason in _QUEUED and placed and self._may_park():
            node.parked = True
            assert node.asked is not None  # set by the denial that parks it
            bisect.insort(self.parked[node.group], (node.asked, node.index, node.index))
            return
        if waiting and reason is DenyReason.ROLLOUT_WAITING and denied is not None:
            if denied.bake_ends is None and self._may_park():
                node.parked = True  # until a stage ends (`_judge`) or closes (`_REGATE`)
                self.gated.append(node.index)
                return
            if denied.bake_ends is not None:
                at = max(at, self._skip_to(node, denied.bake_ends))
        if waiting and reason is DenyReason.PACING and denied is not None and denied.until:
            # No slot before the pace ends: ask then, counted as about to take a freed slot
            # (so a freed slot that is cooling wakes no other parked node meanwhile).
            at = max(at, self._skip_to(node, denied.until))
            node.woken = True
            self.pending[node.group] += 1
        self._push(max(at, self.t), node.index, _TICK, node.token)

    def _skip_to(self, node: _Node, until: datetime) -> int:
        """The node's first poll at or after `until`, or after the schedule closes if that
        comes first (the machine acts on a closing)."""
        if not self.always_open:
            closes = self.sc.schedule.closes_at(self._clock())
            if closes is not None and closes < until:
                until = closes
        return self._next_poll(node, (until - self.sc.start) // ONE_US)

    # --- the rollout ------------------------------------------------------------------------

    async def _report(self, node: _Node, group: str) -> None:
        """An agent's report when it learns it needs a reboot, when it no longer does, and when
        it halts: the rollout knows a stage's nodes, and judges its budget, from them. The
        rollout is set when the first node needs a reboot (set earlier, every stage would be
        done at once: no node of it would be known)."""
        self.calls += 1
        await self.backend.report(NodeReport.of(node.id, group, node.state, version="simulator"))
        if not self.rollout_set:
            self.rollout_set = True
            self.calls += 1
            rollout = await self.backend.set_rollout(
                self.sc.stages, self.sc.max_failures, by="simulator"
            )
            self._observe(rollout)
        self.judge = self.judge or node.state.cycle is State.HALTED

    async def _judge(self) -> None:
        """After an event that may have ended a stage or used up the budget: read the
        rollout the store holds; when it changed, the nodes its gate held back ask again."""
        assert self.watch is not None
        self.judge = False
        self.calls += 1
        rollout = (await self.backend.status(None)).rollout
        if rollout is not None:
            self._observe(rollout)

    def _observe(self, rollout: Rollout) -> None:
        assert self.watch is not None
        same = self.watch.seen is not None and self.watch.seen[0] == rollout.generation
        if self.watch.observe(rollout):
            # A stage ended: the next one may open (after its bake). A new rollout: any may.
            self._ungate(self.t, len(rollout.marks) if same else None)
            closes = self.watch.closes(rollout, self._clock())
            if closes is not None:
                at = (closes - self.sc.start) // ONE_US
                if at not in self.regate_at:
                    self.regate_at.add(at)
                    self._push(at, _REGATE, _TICK)

    def _ungate(self, t: int, upto: int | None = None) -> None:
        """The nodes the rollout's gate held back ask again at their next poll: those of
        stages up to `upto` (the stage after the last one ended), or all."""
        assert self.watch is not None or not self.gated
        kept: list[int] = []
        for index in self.gated:
            node = self.nodes[index]
            if not node.parked:
                continue
            stage = self.watch.stage_of[self.names[node.group]] if self.watch else 0
            if upto is not None and stage > upto:
                kept.append(index)  # an earlier stage still holds it back
                continue
            node.parked = False
            node.token += 1
            self._push(self._next_poll(node, t), index, _TICK, node.token)
        self.gated = kept

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
        that asked first."""
        parked = self.parked[gi]
        limit = self.limit[gi]
        while parked and self.holders[gi] + self.pending[gi] < limit:
            _, _, index = parked.pop(0)
            node = self.nodes[index]
            node.parked = False
            node.woken = True
            self.pending[gi] += 1
            node.token += 1
            self._push(self._next_poll(node, t), index, _TICK, node.token)

    def _unpark_all(self, t: int) -> None:
        self.unpark_at.discard(t)
        self._ungate(t)
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
        """After a grant: how many holds the backend itself reports (not our own count), and
        the slots in force (a percentage max counts the nodes known so far)."""
        self.calls += 1
        snap = await self.backend.status(self.names[gi])
        self.limit[gi] = snap.groups[0].semaphore.slots(snap.now)
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

"""A simulated rollout's stages as the backend records them, for the simulator's result and
its wake-ups.

Rules of this file:
- Nothing here decides: the backend's acquire judges the rollout's gate and writes each
  stage's end (core/rollout.py). This only reads the rollout the store holds after the events
  that can end a stage, and keeps when each stage opened and ended, for the result and for
  waking the nodes the gate held back (engine.py).
- Times are the first rollout's: a rollout that begins again (every stage passed and a node
  asked again) changes the gate, not the recorded stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stagger.core.rollout_gate import Rollout, timeline
from stagger.core.times import later
from stagger.sim.scenario import Scenario


@dataclass
class StageResult:
    """One rollout stage: when it opened (the stage before it passed its bake), when its last
    node finished (its end, as the store wrote it), and its bake. Times are seconds since the
    start; None: it did not happen in the run."""

    groups: tuple[str, ...]
    nodes: int
    bake_seconds: float
    started_seconds: float | None = None
    finished_seconds: float | None = None
    closed: bool = False  # ended by close_after rather than by its last node


class StageWatch:
    """The stages of the scenario's rollout, filled from the rollouts the store holds."""

    def __init__(self, scenario: Scenario) -> None:
        self.start = scenario.start
        sizes = {g.name: g.nodes for g in scenario.groups}
        self.stages = [
            StageResult(s.groups, sum(sizes[n] for n in s.groups), s.bake.total_seconds())
            for s in scenario.stages
        ]
        self.stage_of = {g: i for i, s in enumerate(scenario.stages) for g in s.groups}
        self.generation: int | None = None
        self.seen: tuple[int, int] | None = None  # (generation, marks) last read
        self.halted = False  # the budget halted the rollout

    def _seconds(self, at: datetime) -> float:
        return (at - self.start).total_seconds()

    def observe(self, rollout: Rollout | None) -> bool:
        """Note what the stored rollout says; True when a stage ended or a rollout began since
        the last read (so the nodes its gate held back may ask again)."""
        if rollout is None:
            return False
        if self.generation is None:
            self.generation = rollout.generation
            self.stages[0].started_seconds = self._seconds(rollout.started_at)
        if rollout.tripped_by:
            self.halted = True
        if rollout.generation == self.generation:
            for i, mark in enumerate(rollout.marks):
                stage = self.stages[i]
                if stage.finished_seconds is None:
                    stage.finished_seconds = self._seconds(mark.done_at)
                    stage.closed = mark.closed
                if i + 1 < len(self.stages) and self.stages[i + 1].started_seconds is None:
                    self.stages[i + 1].started_seconds = self._seconds(mark.bake_ends)
        seen = (rollout.generation, len(rollout.marks))
        changed = seen != self.seen
        self.seen = seen
        return changed

    def closes(self, rollout: Rollout, now: datetime) -> datetime | None:
        """When the open stage's close_after passes (None: it has none, or no stage is open):
        the gate lets the next stage through then without a write, so the nodes it held back
        must ask again at that time."""
        for i, t in enumerate(timeline(rollout, now)):
            if t.opened_at is not None and t.passed_at is None:
                close_after = rollout.stages[i].close_after
                return None if close_after is None else later(t.opened_at, close_after)
        return None

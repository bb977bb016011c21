"""The Backend Protocol's changes, written once for every store that keeps semaphores itself
(sqlite.py, etcd/backend.py): validate the input, then run ONE core operation through the store's
own load-apply-write (`_apply`). A store supplies `_apply` and the reads; the operations, their
validation and what each one means after a write with an unknown outcome live here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from stagger.backends.estimates import ETA_HISTORY
from stagger.backends.protocol import Snapshot
from stagger.core import node_controls
from stagger.core import rollout as rollouts
from stagger.core import rollout_status as rollout_now
from stagger.core import semaphore as core
from stagger.core.cycle.node_state import State
from stagger.core.errors import ConfigError, InvalidInput
from stagger.core.eta import rollout_eta
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Budget, Rollout, Stage
from stagger.core.rollout_reads import GroupNodes, judged_reads, staged_reads
from stagger.core.semaphore import (
    DEFAULT_STALE_AFTER,
    FLEET,
    Change,
    Denied,
    DenyReason,
    Event,
    Granted,
    Hold,
    NotHeld,
    Pause,
    Released,
    Semaphore,
    Urgent,
    validate_group,
    validate_id,
    validate_max,
    validate_node_id,
)
from stagger.core.turns import validate_percent

T = TypeVar("T")
# An acquire that a rollout holds back judges the rollout again (and asks again) at most this
# many times: each time another process's judgment may have raced it.
ROLLOUT_RETRIES = 3
# One core operation, given the group's value, the backend's `now`, and the FLEET record
# (the fleet-wide pause and the node pauses; None when not loaded or never written).
Op = Callable[[Semaphore, datetime, Semaphore | None], Change[T]]
# Given the group as re-read after a write with an unknown outcome and the outcome that write
# would have had: that outcome if the group shows the write took effect, else None (run the
# operation again on what is there now). Only a store whose writes can time out uses it.
Settle = Callable[[Semaphore, T], T | None]


def check_default_max(value: int) -> int:
    """The slots a never-configured group gets, checked as configuration."""
    try:
        return validate_max(value)
    except InvalidInput as exc:
        raise ConfigError(f"default_max: {exc.message}") from exc


class SemaphoreStore(ABC):
    """The changing half of the Backend Protocol over one abstract `_apply`."""

    # The reads a rollout is judged from (the Backend Protocol's; each store has them).
    @abstractmethod
    async def status(self, group: str | None = None) -> Snapshot: ...

    @abstractmethod
    async def group_nodes(
        self, named: Mapping[str, Collection[str] | None]
    ) -> dict[str, GroupNodes]:
        """For each group of `named`: its reports that need a reboot or are in their cycle,
        its nodes at rest among the ids named (None: every one) and how many nodes are at
        rest, from the store's summary (core/rollout_reads.py, GroupNodes): never every report."""

    @abstractmethod
    async def history(self, group: str | None = None, limit: int = 100) -> list[core.Event]: ...

    @abstractmethod
    async def _apply(
        self,
        group: str,
        op: Op[T],
        *,
        what: str,
        with_fleet: bool = False,
        settle: Settle[T] | None = None,
    ) -> T:
        """Load `group` (and, `with_fleet`, the FLEET record), apply `op` at the backend's now,
        and write the result and its events atomically; write nothing when `op` changes
        nothing. `what` names the change in errors."""

    async def _hold_alive(self, group: str, node_id: str) -> bool:
        """Before a touch: False when the store already knows `node_id` holds nothing (so
        touch answers None). etcd refreshes the hold's lease here."""
        return True

    async def acquire(
        self, group: str, node_id: str, *, note: str = "", by: str | None = None
    ) -> Granted | Denied:
        validate_group(group)
        validate_id(node_id)

        def settle(sem: Semaphore, planned: Granted | Denied) -> Granted | Denied | None:
            held = sem.holds.get(node_id)
            if held is not None and isinstance(planned, Granted):
                return Granted(held, already_held=planned.already_held)
            return None

        def ask() -> Awaitable[Granted | Denied]:
            return self._apply(
                group,
                lambda sem, now, fleet: core.acquire(
                    sem,
                    node_id,
                    now,
                    note=note,
                    fleet_pause=fleet.pause if fleet is not None else None,
                    node_pause=node_controls.node_pause_of(fleet, node_id, now),
                    by=by,
                    rollout=fleet.rollout if fleet is not None else None,
                ),
                what=f"acquire {group}/{node_id}",
                with_fleet=True,
                settle=settle,
            )

        outcome = await ask()
        for _ in range(ROLLOUT_RETRIES):
            if not isinstance(outcome, Denied) or outcome.reason is not DenyReason.ROLLOUT_WAITING:
                return outcome
            # The denial may be stale news: the last rollout is complete (this ask begins the
            # next one), or an earlier stage ended without a write yet (its nodes reported no
            # need). The ask that was denied noted the node as waiting, so it is known.
            if outcome.restart:
                await self._apply(
                    FLEET,
                    lambda fleet, now, _: _fleet_change(
                        fleet, *rollouts.restart(fleet, now, by=by or node_id)
                    ),
                    what="begin a new rollout",
                )
            elif not await self.advance_rollout():
                return outcome
            outcome = await ask()
        return outcome

    async def release(
        self, group: str, node_id: str, *, by: str | None = None
    ) -> Released | NotHeld:
        validate_group(group)
        validate_id(node_id)
        who = by or node_id

        def settle(sem: Semaphore, planned: Released | NotHeld) -> Released | NotHeld | None:
            return planned if node_id not in sem.holds else None

        staged = False

        def op(
            sem: Semaphore, now: datetime, fleet: Semaphore | None
        ) -> Change[Released | NotHeld]:
            nonlocal staged
            rollout = fleet.rollout if fleet is not None else None
            stage = rollout.stage_of(group) if rollout is not None else None
            # Only a release in a stage that has not ended may end it: judge the rollout then.
            staged = rollout is not None and stage is not None and stage >= len(rollout.marks)
            return core.release(sem, node_id, now, by=who, rollout=rollout)

        outcome = await self._apply(
            group, op, what=f"release {group}/{node_id}", with_fleet=True, settle=settle
        )
        if staged and isinstance(outcome, Released):
            await self.advance_rollout()
        return outcome

    async def touch(self, group: str, node_id: str) -> Hold | None:
        """Refresh the hold's last_seen (core decides how often that is written). None when
        `node_id` holds nothing (any more)."""
        validate_group(group)
        validate_id(node_id)
        if not await self._hold_alive(group, node_id):
            return None
        return await self._apply(
            group,
            lambda sem, now, _: core.touch(sem, node_id, now),
            what=f"touch {group}/{node_id}",
        )

    async def set_max(self, group: str, value: int, *, by: str, percent: bool = False) -> int:
        validate_group(group)
        if percent:
            validate_percent(value)
        else:
            validate_max(value)
        return await self._apply(
            group,
            lambda sem, now, _: core.set_max(sem, value, now, by=by, percent=percent),
            what=f"set-max {group}",
        )

    async def set_pace(self, group: str, pace: timedelta | None, *, by: str) -> timedelta | None:
        validate_group(group)
        return await self._apply(
            group,
            lambda sem, now, _: core.set_pace(sem, pace, now, by=by),
            what=f"set the pace of {group}",
        )

    async def configure(
        self,
        group: str,
        *,
        by: str,
        hold_ttl: timedelta | None,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
    ) -> Semaphore:
        validate_group(group)
        return await self._apply(
            group,
            lambda sem, now, _: core.configure(
                sem, now, by=by, hold_ttl=hold_ttl, stale_after=stale_after
            ),
            what=f"configure {group}",
        )

    async def pause(
        self, group: str | None, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause:
        target = FLEET if group is None else validate_group(group)

        def settle(sem: Semaphore, planned: Pause) -> Pause | None:
            return planned if sem.pause == planned else None

        return await self._apply(
            target,
            lambda sem, now, _: core.pause(sem, now, by=by, reason=reason, until=until),
            what=f"pause {group or 'all groups'}",
            settle=settle,
        )

    async def resume(self, group: str | None, *, by: str) -> Pause | None:
        target = FLEET if group is None else validate_group(group)

        def settle(sem: Semaphore, planned: Pause | None) -> Pause | None:
            return planned if sem.pause is None else None

        return await self._apply(
            target,
            lambda sem, now, _: core.resume(sem, now, by=by),
            what=f"resume {group or 'all groups'}",
            settle=settle,
        )

    async def pause_node(
        self, node_id: str, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause:
        """Pause one node in every group: a change to the FLEET record, which every acquire
        reads and guards, so no grant slips past it."""
        validate_node_id(node_id)

        def settle(sem: Semaphore, planned: Pause) -> Pause | None:
            return planned if sem.node_pauses.get(node_id) == planned else None

        return await self._apply(
            FLEET,
            lambda sem, now, _: node_controls.pause_node(
                sem, node_id, now, by=by, reason=reason, until=until
            ),
            what=f"pause node {node_id}",
            settle=settle,
        )

    async def resume_node(self, node_id: str, *, by: str) -> Pause | None:
        validate_id(node_id)

        def settle(sem: Semaphore, planned: Pause | None) -> Pause | None:
            return planned if node_id not in sem.node_pauses else None

        return await self._apply(
            FLEET,
            lambda sem, now, _: node_controls.resume_node(sem, node_id, now, by=by),
            what=f"resume node {node_id}",
            settle=settle,
        )

    async def ask_reboot(
        self, node_id: str, *, by: str, reason: str, ignore_blackouts: bool = False
    ) -> Urgent:
        validate_node_id(node_id)

        def settle(sem: Semaphore, planned: Urgent) -> Urgent | None:
            return planned if sem.urgent_reboots.get(node_id) == planned else None

        return await self._apply(
            FLEET,
            lambda sem, now, _: node_controls.ask_reboot(
                sem, node_id, now, by=by, reason=reason, ignore_blackouts=ignore_blackouts
            ),
            what=f"ask node {node_id} to reboot",
            settle=settle,
        )

    async def clear_reboot(
        self, node_id: str, *, done_by: datetime | None = None, group: str | None = None
    ) -> Urgent | None:
        validate_id(node_id)

        def settle(sem: Semaphore, planned: Urgent | None) -> Urgent | None:
            return planned if sem.urgent_reboots.get(node_id) != planned else None

        return await self._apply(
            FLEET,
            lambda sem, now, _: node_controls.clear_reboot(sem, node_id, now, done_by=done_by),
            what=f"clear node {node_id}'s reboot ask",
            settle=settle,
        )

    # --- the rollout (core/rollout.py), kept in the FLEET record ---------------------------

    async def set_rollout(
        self, stages: tuple[Stage, ...], budget: Budget | None, *, by: str
    ) -> Rollout:
        """Begin a rollout of `stages` (every stage starts again), and judge it at once (an
        empty first stage is done at once)."""
        rollouts.check_stages(stages)

        def op(fleet: Semaphore, now: datetime, _: Semaphore | None) -> Change[Rollout | None]:
            new, events = rollouts.begin(fleet, stages, budget, now, by=by)
            return Change(new, new.rollout, events)

        await self._apply(FLEET, op, what="set the rollout")
        await self.advance_rollout()
        made = (await self.status(None)).rollout
        assert made is not None
        return made

    async def clear_rollout(self, *, by: str) -> Rollout | None:
        """End the rollout: every group grants as if there were none. The rollout ended, or
        None when there was none (nothing written)."""

        def op(fleet: Semaphore, now: datetime, _: Semaphore | None) -> Change[Rollout | None]:
            new, events = rollouts.clear(fleet, now, by=by)
            return Change(new, fleet.rollout, events)

        return await self._apply(FLEET, op, what="clear the rollout")

    async def rollout_status(self) -> rollout_now.RolloutStatus | None:
        """Where the rollout is (None: no rollout), judged from one status read and the
        node reports every stage's judgment needs (core.rollout_reads.staged_reads): the
        nodes at rest that no record names are counted, not named, as a judgment counts them,
        and each list names at most core.rollout_status.MAX_STAGE_NAMES nodes."""
        snap = await self.status(None)
        if snap.rollout is None:
            return None
        groups = {g.group: g.semaphore for g in snap.groups}
        reports = await self.group_nodes(staged_reads(snap.rollout, groups))
        found = rollout_now.status(snap.rollout, groups, reports, snap.now)
        events = await self.history(None, limit=ETA_HISTORY)  # newest first
        return replace(found, eta=rollout_eta(found, groups, reversed(events), snap.now))

    async def set_max_failures(self, group: str, budget: Budget | None, *, by: str) -> None:
        """The group's own error budget (set-max --max-failures); None removes it."""
        validate_group(group)
        await self._apply(
            group,
            lambda sem, now, _: _fleet_change(
                sem, *rollouts.set_max_failures(sem, budget, now, by=by)
            ),
            what=f"set max_failures of {group}",
        )
        await self.advance_rollout()

    async def _reported(self, report: NodeReport) -> None:
        """After a node's report is stored: a halted node may use up an error budget, so the
        pause it calls for is written before the report is answered."""
        if report.state is State.HALTED:
            await self.advance_rollout()

    async def advance_rollout(self) -> bool:
        """Write what the rollout's and the groups' state call for: stage ends (a stage whose
        nodes are all done, or whose close_after passed), and the pause of a rollout or group
        whose halted nodes reached max_failures. Judged from a read of every group and of
        the node reports the judgment needs (core.rollout_reads.judged_reads, `group_nodes`: never
        every report; docs/rollout.md, "What is read"), then written to the FLEET record (or
        the group) guarded as every change is, and only when the rollout is still the one
        judged (another writer changed it: the next judgment sees that). True when it wrote."""
        snap = await self.status(None)
        budgets = [g.semaphore for g in snap.groups if g.semaphore.max_failures is not None]
        rollout = snap.rollout
        if rollout is None and not budgets:
            return False
        groups = {g.group: g.semaphore for g in snap.groups}
        reports = await self.group_nodes(judged_reads(rollout, groups))
        wrote = False
        if snap.rollout is not None:
            judged = snap.rollout
            views = rollouts.stage_views(judged, groups, reports, snap.now)

            def op(fleet: Semaphore, now: datetime, _: Semaphore | None) -> Change[bool]:
                rollout = fleet.rollout
                if rollout is None or rollout != judged:
                    return Change(fleet, False)
                decided = rollouts.advance(rollout, views, now)
                if decided.rollout is None:
                    return Change(fleet, False)
                new = replace(fleet, rollout=decided.rollout)
                events = decided.events
                if decided.halt_reason is not None:
                    paused = core.pause(new, now, by="stagger", reason=decided.halt_reason)
                    new, events = paused.semaphore, (*events, *paused.events)
                return Change(new, True, events)

            wrote = await self._apply(FLEET, op, what="advance the rollout")
        for sem in budgets:
            tripped = rollouts.group_budget(sem, snap.rollout, reports, snap.now)
            if tripped is None:
                continue
            trip = _trip(tripped, rollouts.group_halt_reason(sem, tripped))
            wrote = await self._apply(sem.group, trip, what=f"pause group {sem.group}") or wrote
        return wrote


def _fleet_change(old: Semaphore, new: Semaphore, events: tuple[Event, ...]) -> Change[None]:
    """A change core made as (new value, events): written when it has events."""
    return Change(new, None, events)


def _trip(tripped: tuple[str, ...], reason: str) -> Op[bool]:
    """A group's budget pause for `tripped` halted nodes (once for the same nodes)."""

    def op(g: Semaphore, now: datetime, _: Semaphore | None) -> Change[bool]:
        if tuple(g.budget_tripped) == tripped:
            return Change(g, False)
        paused = core.pause(g, now, by="stagger", reason=reason)
        new = replace(paused.semaphore, budget_tripped=tripped)
        return Change(new, True, paused.events, dirty=True)

    return op

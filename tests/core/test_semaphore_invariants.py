"""DESIGN.md's semaphore invariants, checked over random operation sequences.

The machine drives core/semaphore.py with random acquire / release / touch / set_max /
configure / pause / resume / expire steps and clock advances, and keeps a tiny model of who
holds a slot. After each step it checks:
- a grant happens only when the live holds are fewer than max (so a grant never exceeds max);
- a recursive acquire changes nothing;
- releasing what one does not hold changes nothing;
- an operation that reports no change returns the value unchanged and no events, and one that
  returns the value unchanged reports no change (a backend then writes nothing);
- the set of holders changes only as the operation says (grant adds one, release removes one,
  expiry removes exactly the holds whose time has passed);
- the lineup (what every non-holder is answered, decided once per value) agrees with acquire
  for every id, says when acquire writes, and answers the same at every instant before
  admission_until;
- a grant never takes a slot that is held or cooling down (pace), under a count or a
  percentage max;
- fair order: when a node is granted, every node ahead of it in the queue would be granted
  too if it asked at that moment (nobody waits behind a node that asked after it), and so
  would every queued node when a node that was not queued (the queue being full) is granted;
- the queue never holds more than its limit (here a small one, so the limit is often hit); a
  node denied while it is full gets no place, the queue's length, and writes nothing;
- without a percentage max the group remembers no node's last ask but its waiters'.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from stagger.core import semaphore as core
from stagger.core.semaphore import (
    Action,
    Change,
    Denied,
    DenyReason,
    Granted,
    NotHeld,
    Pause,
    Released,
    Semaphore,
)

IDS = st.sampled_from(["a", "b", "c", "d", "e"])
# The queue's limit in this machine: small beside the five ids, so that it is often reached.
LIMIT = 2
WHO = st.sampled_from(["operator:x", "operator:y"])
REASONS = st.sampled_from(["bad kernel", "incident"])
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class SemaphoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sem = Semaphore("web", max=2, queue_limit=LIMIT)
        self.fleet: Pause | None = None
        self.now = T0

    # --- helpers ----------------------------------------------------------------------------

    def live(self, sem: Semaphore | None = None) -> set[str]:
        return set((sem or self.sem).holders(self.now))

    def expired_now(self) -> set[str]:
        return {h.id for h in self.sem.holds.values() if h.is_expired(self.now)}

    def check_no_op_consistency(self, before: Semaphore, change: Change[Any]) -> None:
        if not change.changed:
            assert change.semaphore == before, "an unchanged outcome must leave the value alone"
            assert change.events == ()
        if change.semaphore == before:
            assert not change.changed, "an identical value must not be written or recorded"
        for event in change.events:
            assert event.group == before.group
            assert event.time == self.now

    def apply(self, before: Semaphore, change: Change[Any]) -> None:
        self.check_no_op_consistency(before, change)
        self.sem = change.semaphore

    # --- rules ------------------------------------------------------------------------------

    @rule(node=IDS)
    def acquire(self, node: str) -> None:
        before = self.sem
        was_live = self.live()
        stored = set(before.holds)
        expiring = self.expired_now()
        swept = core.expire(before, self.now).semaphore
        turn = core.lineup(before, self.now, fleet_pause=self.fleet, asking=node).outcome
        change = core.acquire(before, node, self.now, fleet_pause=self.fleet)
        outcome = change.outcome
        after = self.live(change.semaphore)
        cooling = len(swept.cooling(self.now))
        if node in was_live:
            assert isinstance(outcome, Granted)
            assert outcome.already_held
            assert change.semaphore == core.expire(before, self.now).semaphore
            assert all(e.action is Action.EXPIRED for e in change.events)
            assert after == was_live
        elif isinstance(outcome, Granted):
            assert not outcome.already_held
            assert len(was_live) + cooling < turn.slots, "granted a held or cooling slot"
            assert before.active_pause(self.now, self.fleet) is None, "granted while paused"
            assert after == was_live | {node}
            assert len(after) <= turn.slots
            assert set(change.semaphore.holds) == (stored - expiring) | {node}
            for waiter in swept.queue(self.now):
                if waiter.position < turn.position(node):
                    ahead = core.acquire(
                        change.semaphore, waiter.id, self.now, fleet_pause=self.fleet
                    )
                    assert isinstance(ahead.outcome, Granted), "a node waits behind a later one"
        else:
            assert isinstance(outcome, Denied)
            if outcome.reason is DenyReason.FULL:
                assert len(was_live) + cooling >= turn.slots
            elif outcome.reason is DenyReason.PACING:
                assert outcome.until is not None
                assert outcome.until > self.now
                assert len(was_live) < turn.slots <= len(was_live) + cooling
            elif outcome.reason is DenyReason.QUEUED:
                assert turn.position(node) > turn.free > 0
            else:
                assert outcome.pause == before.active_pause(self.now, self.fleet)
            if node not in turn.queue and turn.length >= LIMIT:
                assert (outcome.position, outcome.queue_full) == (None, turn.length)
                if before.max_percent is None:
                    assert not change.dirty, "a node the full queue has no place for writes nothing"
                assert node not in change.semaphore.waiting
            else:
                assert (outcome.position, outcome.queue_full) == (turn.position(node), 0)
            assert after == was_live
            assert set(change.semaphore.holds) == stored - expiring
            assert outcome.holders == tuple(sorted(was_live))
        self.apply(before, change)

    @rule(node=IDS, by=st.one_of(st.none(), WHO))
    def release(self, node: str, by: str | None) -> None:
        before = self.sem
        change = core.release(before, node, self.now, by=by or node)
        if node in before.holds:
            assert isinstance(change.outcome, Released)
            assert set(change.semaphore.holds) == set(before.holds) - {node}
            (event,) = change.events
            assert (event.action, event.id, event.by) == (Action.RELEASED, node, by or node)
        else:
            assert change.outcome == NotHeld(node)
            assert not change.changed
        self.apply(before, change)

    @rule(node=IDS)
    def touch(self, node: str) -> None:
        before = self.sem
        change = core.touch(before, node, self.now)
        assert change.events == (), "a heartbeat is never recorded in history"
        assert set(change.semaphore.holds) == set(before.holds)
        if node not in self.live():
            assert change.outcome is None
            assert not change.changed
        self.apply(before, change)

    @rule(value=st.integers(0, 4), by=WHO)
    def set_max(self, value: int, by: str) -> None:
        before = self.sem
        change = core.set_max(before, value, self.now, by=by)
        assert change.semaphore.max == value
        assert change.semaphore.holds == before.holds, "set_max evicts nobody"
        self.apply(before, change)

    @rule(value=st.integers(1, 100), by=WHO)
    def set_max_percent(self, value: int, by: str) -> None:
        before = self.sem
        change = core.set_max(before, value, self.now, by=by, percent=True)
        assert change.semaphore.max_percent == value
        assert change.semaphore.holds == before.holds, "set_max evicts nobody"
        self.apply(before, change)

    @rule(seconds=st.one_of(st.none(), st.integers(1, 900)), by=WHO)
    def set_pace(self, seconds: int | None, by: str) -> None:
        before = self.sem
        pace = timedelta(seconds=seconds) if seconds is not None else None
        change = core.set_pace(before, pace, self.now, by=by)
        assert change.semaphore.holds == before.holds
        self.apply(before, change)

    @rule(ttl=st.one_of(st.none(), st.integers(1, 60)), by=WHO)
    def configure(self, ttl: int | None, by: str) -> None:
        before = self.sem
        hold_ttl = timedelta(minutes=ttl) if ttl is not None else None
        change = core.configure(
            before, self.now, by=by, hold_ttl=hold_ttl, stale_after=before.stale_after
        )
        assert change.semaphore.holds == before.holds
        self.apply(before, change)

    @rule(
        by=WHO,
        reason=REASONS,
        minutes=st.one_of(st.none(), st.integers(1, 120)),
        fleet=st.booleans(),
    )
    def pause(self, by: str, reason: str, minutes: int | None, fleet: bool) -> None:
        until = self.now + timedelta(minutes=minutes) if minutes is not None else None
        if fleet:
            holder = Semaphore(core.FLEET, pause=self.fleet)
            change = core.pause(holder, self.now, by=by, reason=reason, until=until)
            self.check_no_op_consistency(holder, change)
            self.fleet = change.semaphore.pause
            return
        before = self.sem
        change = core.pause(before, self.now, by=by, reason=reason, until=until)
        assert change.semaphore.holds == before.holds, "a pause evicts nobody"
        self.apply(before, change)

    @rule(by=WHO, fleet=st.booleans())
    def resume(self, by: str, fleet: bool) -> None:
        if fleet:
            holder = Semaphore(core.FLEET, pause=self.fleet)
            change = core.resume(holder, self.now, by=by)
            self.check_no_op_consistency(holder, change)
            self.fleet = change.semaphore.pause
            return
        before = self.sem
        change = core.resume(before, self.now, by=by)
        assert change.semaphore.pause is None
        self.apply(before, change)

    @rule()
    def expire(self) -> None:
        before = self.sem
        expiring = self.expired_now()
        change = core.expire(before, self.now)
        assert {h.id for h in change.outcome} == expiring
        assert set(change.semaphore.holds) == set(before.holds) - expiring
        assert self.live(change.semaphore) == self.live(before)
        self.apply(before, change)

    @rule(seconds=st.integers(0, 3600))
    def advance_clock(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def the_queue_never_exceeds_its_limit(self) -> None:
        assert len(self.sem.waiting) <= LIMIT
        assert len(self.sem.queue(self.now)) <= LIMIT

    @invariant()
    def a_count_max_remembers_only_the_waiters(self) -> None:
        if self.sem.max_percent is None:
            assert set(self.sem.seen) <= set(self.sem.waiting)

    @invariant()
    def holds_are_keyed_by_their_id(self) -> None:
        assert all(k == h.id for k, h in self.sem.holds.items())

    @invariant()
    def the_lineup_answers_every_id_as_acquire_does(self) -> None:
        """The server decides once per group value what every non-holder gets (core.lineup):
        an id it answers without a write must get exactly what acquire answers it, and it
        must say when acquire writes."""
        lined = core.lineup(self.sem, self.now, fleet_pause=self.fleet)
        turn = lined.outcome
        for node in ["a", "b", "c", "d", "e"]:
            change = core.acquire(self.sem, node, self.now, fleet_pause=self.fleet)
            outcome = change.outcome
            if node in lined.semaphore.holds:
                assert isinstance(outcome, Granted)
                assert outcome.already_held
                continue
            if not lined.events:
                assert turn.writes(node, self.now) == change.changed
            if not turn.writes(node, self.now):
                assert outcome == turn.denial_of(node)
            elif node in turn.queue:
                assert isinstance(outcome, Granted) == turn.grants(node)

    @invariant()
    def admission_answers_the_same_until_admission_until(self) -> None:
        """The server reuses a group value's admission at later instants up to
        core.admission_until (no hold expiry, no pause end before it): every instant in
        that span must get the same answer and the same holders."""
        here = core.admission(self.sem, self.now, fleet_pause=self.fleet)
        until = core.admission_until(self.sem, self.now, fleet_pause=self.fleet)
        assert until is None or until >= self.now
        if until == self.now:  # the answer holds at this instant only: nothing to reuse
            return
        last = until - timedelta(microseconds=1) if until else self.now + timedelta(days=3650)
        for t in (self.now + (last - self.now) / 2, last):
            there = core.admission(self.sem, t, fleet_pause=self.fleet)
            assert there.outcome == here.outcome
            assert there.semaphore.holds == here.semaphore.holds

    @invariant()
    def a_holds_expiry_lies_after_its_last_heartbeat(self) -> None:
        for h in self.sem.holds.values():
            assert h.expires_at is None or h.expires_at > h.last_seen


SemaphoreMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None
)
TestSemaphoreInvariants = SemaphoreMachine.TestCase

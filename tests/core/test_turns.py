"""Percent max, pacing and the fair queue (core/turns.py through core/semaphore.py), as a
specification: one behaviour per test, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stagger.core.errors import InvalidInput
from stagger.core.semaphore import (
    Denied,
    DenyReason,
    Granted,
    Semaphore,
    acquire,
    lineup,
    release,
    set_max,
    set_pace,
)
from stagger.core.turns import pacing_until, percent_slots

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OP = "operator:alice"
S = timedelta(seconds=1)


def ask(sem: Semaphore, node: str, at: datetime) -> tuple[Semaphore, Granted | Denied]:
    change = acquire(sem, node, at)
    return change.semaphore, change.outcome


# --- percent ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "known", "slots"),
    [(10, 27, 2), (10, 30, 3), (10, 5, 1), (50, 0, 1), (100, 7, 7), (34, 3, 1)],
)
def test_a_percentage_is_of_the_known_nodes_rounded_down_and_at_least_one(
    percent: int, known: int, slots: int
) -> None:
    assert percent_slots(percent, known) == slots


def test_a_percentage_max_counts_the_nodes_that_asked_within_stale_after() -> None:
    sem = set_max(Semaphore("web"), 50, T0, by=OP, percent=True).semaphore
    assert sem.limit_text() == "50%"
    sem, first = ask(sem, "a", T0)
    assert isinstance(first, Granted)  # 50 % of 1 known node: 1 slot
    sem, second = ask(sem, "b", T0)
    assert isinstance(second, Denied)
    assert second.max == 1
    for node in ("c", "d"):
        sem, _ = ask(sem, node, T0)
    assert sem.slots(T0) == 2  # 50 % of 4
    sem, fifth = ask(sem, "b", T0 + S)
    assert isinstance(fifth, Granted), "b asked first and a second slot opened"
    later = T0 + sem.stale_after + 2 * S
    assert sem.known(later) == {"a", "b"}, "silent nodes leave the count; holders stay"


def test_a_count_max_replaces_a_percentage() -> None:
    sem = set_max(Semaphore("web"), 10, T0, by=OP, percent=True).semaphore
    sem = set_max(sem, 3, T0, by=OP).semaphore
    assert (sem.max_percent, sem.slots(T0), sem.limit_text()) == (None, 3, "3")


@pytest.mark.parametrize("bad", [0, 101, -5])
def test_a_percentage_outside_1_to_100_is_refused(bad: int) -> None:
    with pytest.raises(InvalidInput, match="whole percentage"):
        set_max(Semaphore("web"), bad, T0, by=OP, percent=True)


# --- pacing -------------------------------------------------------------------------------


def test_a_released_slot_is_not_granted_again_during_the_pace() -> None:
    sem = set_pace(Semaphore("web", max=1), 10 * S, T0, by=OP).semaphore
    sem, _ = ask(sem, "a", T0)
    sem = release(sem, "a", T0 + S, by="a").semaphore
    sem, denied = ask(sem, "b", T0 + 5 * S)
    assert isinstance(denied, Denied)
    assert denied.reason is DenyReason.PACING
    assert denied.until == T0 + 11 * S
    assert "may be granted again at" in denied.sentence()
    sem, granted = ask(sem, "b", T0 + 11 * S)
    assert isinstance(granted, Granted)


def test_pacing_is_per_slot_so_max_3_gives_3_grants_per_pace() -> None:
    sem = set_pace(Semaphore("web", max=3), 60 * S, T0, by=OP).semaphore
    grants: list[datetime] = []
    pending = [f"n{i}" for i in range(12)]
    for tick in range(12):  # every 10 s, each node still waiting asks; a grant reboots at once
        now = T0 + tick * 10 * S
        for node in list(pending):
            sem, got = ask(sem, node, now)
            if isinstance(got, Granted):
                grants.append(now)
                pending.remove(node)
                sem = release(sem, node, now, by=node).semaphore
    assert len(grants) == 6  # three at t=0, three at t=60 (each slot cools 60 s)
    assert all(sum(1 for g in grants if t <= g < t + 60 * S) <= 3 for t in grants)


def test_pacing_until_names_the_cool_down_that_frees_a_slot() -> None:
    ends = [T0 + S, T0 + 2 * S, T0 + 3 * S]
    assert pacing_until(ends, held=0, slots=2) == T0 + 2 * S
    assert pacing_until(ends, held=2, slots=2) is None  # only a release frees one
    assert pacing_until([], held=0, slots=1) is None


def test_no_pace_forgets_the_cool_downs() -> None:
    sem = set_pace(Semaphore("web", max=1), 60 * S, T0, by=OP).semaphore
    sem, _ = ask(sem, "a", T0)
    sem = release(sem, "a", T0, by="a").semaphore
    sem = set_pace(sem, None, T0, by=OP).semaphore
    assert isinstance(ask(sem, "b", T0)[1], Granted)


def test_a_pace_of_zero_is_refused() -> None:
    with pytest.raises(InvalidInput, match="pace"):
        set_pace(Semaphore("web"), timedelta(0), T0, by=OP)


# --- fair queue ---------------------------------------------------------------------------


def test_the_first_to_ask_gets_the_freed_slot_and_others_learn_their_place() -> None:
    sem, _ = ask(Semaphore("web", max=1), "holder", T0)
    for i, node in enumerate(("c", "a", "b"), start=1):
        sem, denied = ask(sem, node, T0 + i * S)
        assert isinstance(denied, Denied)
        assert denied.position == i
    sem = release(sem, "holder", T0 + 5 * S, by="holder").semaphore
    sem, late = ask(sem, "b", T0 + 6 * S)
    assert isinstance(late, Denied)
    assert (late.reason, late.position) == (DenyReason.QUEUED, 3)
    assert "2 node(s) asked before this one" in late.sentence()
    sem, first = ask(sem, "c", T0 + 7 * S)
    assert isinstance(first, Granted)
    assert [w.id for w in sem.queue(T0 + 7 * S)] == ["a", "b"]


def test_a_node_that_stops_asking_leaves_the_queue_after_stale_after() -> None:
    sem, _ = ask(Semaphore("web", max=1, stale_after=60 * S), "holder", T0)
    sem, _ = ask(sem, "gone", T0)
    sem, _ = ask(sem, "b", T0 + S)
    sem = release(sem, "holder", T0 + 2 * S, by="holder").semaphore
    sem, got = ask(sem, "b", T0 + 62 * S)
    assert isinstance(got, Granted), "gone stopped asking 62 s ago: it left the queue"


def test_a_waiter_that_keeps_asking_keeps_its_place_with_few_writes() -> None:
    sem, _ = ask(Semaphore("web", max=1, stale_after=60 * S), "holder", T0)
    writes = 0
    for second in range(0, 300, 5):
        change = acquire(sem, "w", T0 + second * S)
        writes += change.changed
        sem = change.semaphore
        assert isinstance(change.outcome, Denied)
        assert change.outcome.position == 1
    assert writes <= 300 // 20 + 1  # one mark per stale_after / 3 (20 s), not one per ask
    assert sem.waiting == {"w": T0}


def test_the_lineup_answers_a_waiter_without_a_write_as_acquire_does() -> None:
    sem, _ = ask(Semaphore("web", max=1), "holder", T0)
    sem, _ = ask(sem, "w", T0)
    turn = lineup(sem, T0 + S).outcome
    assert not turn.writes("w", T0 + S)
    assert turn.writes("new", T0 + S), "a node not in the queue joins it: a write"
    assert turn.denial_of("w") == acquire(sem, "w", T0 + S).outcome


def test_a_full_queue_denies_a_newcomer_without_a_place_and_without_a_write() -> None:
    sem, _ = ask(Semaphore("web", max=1, queue_limit=2), "holder", T0)
    sem, _ = ask(sem, "a", T0 + S)
    sem, _ = ask(sem, "b", T0 + 2 * S)
    change = acquire(sem, "late", T0 + 3 * S)
    assert not change.changed, "a node the queue has no place for writes nothing"
    denied = change.outcome
    assert isinstance(denied, Denied)
    assert (denied.reason, denied.position, denied.queue_full) == (DenyReason.FULL, None, 2)
    assert denied.sentence().endswith(
        "; the queue is full (2 nodes wait): this node has no place yet and keeps asking; "
        "it joins the queue when a place frees"
    )
    assert lineup(sem, T0 + 3 * S).outcome.denial_of("late") == denied
    sem = release(sem, "holder", T0 + 4 * S, by="holder").semaphore
    sem, queued = ask(sem, "late", T0 + 5 * S)
    assert isinstance(queued, Denied)
    assert (queued.reason, queued.queue_full) == (DenyReason.QUEUED, 2)
    assert "2 node(s) asked before this one" in queued.sentence()
    sem, first = ask(sem, "a", T0 + 6 * S)
    assert isinstance(first, Granted)
    sem, joined = ask(sem, "late", T0 + 7 * S)
    assert isinstance(joined, Denied)
    assert (joined.position, joined.queue_full) == (2, 0), "a place freed: it joins, last"
    assert [w.id for w in sem.queue(T0 + 7 * S)] == ["b", "late"]


def test_a_count_max_keeps_no_memory_of_nodes_that_are_not_queued() -> None:
    sem, _ = ask(Semaphore("web", max=1), "a", T0)
    sem, _ = ask(sem, "b", T0 + S)
    assert sem.seen == {"b": T0 + S}, "only the waiter's last ask is kept"
    sem = release(sem, "a", T0 + 2 * S, by="a").semaphore
    sem, got = ask(sem, "b", T0 + 3 * S)
    assert isinstance(got, Granted)
    sem = release(sem, "b", T0 + 4 * S, by="b").semaphore
    assert (sem.seen, sem.waiting) == ({}, {}), "asked, granted, released: forgotten"


def test_a_percentage_max_counts_from_the_holders_waiters_and_nodes_seen_since() -> None:
    sem, _ = ask(Semaphore("web", max=1), "done", T0)
    sem = release(sem, "done", T0 + S, by="done").semaphore
    sem, _ = ask(sem, "holder", T0 + 2 * S)
    sem, _ = ask(sem, "waiter", T0 + 3 * S)
    sem = set_max(sem, 50, T0 + 4 * S, by=OP, percent=True).semaphore
    assert sem.known(T0 + 4 * S) == {"holder", "waiter"}, "done was forgotten under max 1"
    sem, _ = ask(sem, "new", T0 + 5 * S)
    sem = release(sem, "holder", T0 + 6 * S, by="holder").semaphore
    assert sem.known(T0 + 6 * S) == {"holder", "waiter", "new"}
    sem = set_max(sem, 2, T0 + 7 * S, by=OP).semaphore
    assert set(sem.seen) == set(sem.waiting), "a count max forgets what only a percentage read"

"""The etcd key layout and what one write sends (backends/etcd/layout.py), without etcd:
`plan_commit` is pure, so each rule of a write is checked on its plan. The same writes
against a real etcd: test_etcd_backend.py and test_etcd_views.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stagger.backends.codec import decode_event, decode_semaphore, encode_semaphore
from stagger.backends.etcd.layout import (
    MAX_EVENTS_PER_TXN,
    Delete,
    Guard,
    HoldLease,
    Layout,
    NewLease,
    Plan,
    Put,
    View,
    Write,
    view_after,
)
from stagger.core import semaphore as core
from stagger.core.semaphore import FLEET, Action, Event, Pause, Semaphore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OP = "operator:alice"
LAYOUT = Layout("p/", default_max=2, history_limit=5)


def view(
    sem: Semaphore,
    *,
    revision: int = 7,
    leases: dict[str, HoldLease] | None = None,
    seq: int = 0,
    fleet_revision: int = 3,
) -> View:
    return View(
        group=sem.group,
        semaphore=sem,
        expired=(),
        revision=revision,
        leases=leases or {},
        seq=seq,
        fleet=None,
        fleet_revision=fleet_revision,
        read_at=10,
        sent=1,
    )


def held(sem: Semaphore, *nodes: str) -> Semaphore:
    for node in nodes:
        sem = core.acquire(sem, node, NOW).semaphore
    return sem


def puts(plan: Plan) -> dict[bytes, Put]:
    return {op.key: op for op in plan.ops if isinstance(op, Put)}


def deletes(plan: Plan) -> list[Delete]:
    return [op for op in plan.ops if isinstance(op, Delete)]


# --- keys -----------------------------------------------------------------------------------


def test_the_keys_of_a_group_and_a_node_under_the_prefix() -> None:
    layout = Layout("fleet", default_max=1, history_limit=10)  # a missing "/" is added
    assert layout.group_key("web") == b"fleet/groups/web"
    assert layout.group_key(FLEET) == b"fleet/groups/*"
    assert layout.lease_key("web", "n1") == b"fleet/leases/web/n1"
    assert layout.event_key("web", 12) == b"fleet/events/web/00000000000000000012"
    assert layout.seq_key("web") == b"fleet/seq/web"
    assert layout.node_key("n1") == b"fleet/nodes/n1"


# --- the value and its guards ---------------------------------------------------------------


def test_a_write_puts_the_group_guarded_by_the_revision_it_was_read_at() -> None:
    before = Semaphore("web", max=2)
    after = core.set_max(before, 3, NOW, by=OP)
    plan = LAYOUT.plan_commit(view(before, revision=41), Write(after.semaphore, after.events))

    assert plan.guards == (Guard(b"p/groups/web", 41),)
    stored = decode_semaphore(puts(plan)[b"p/groups/web"].value, "test")
    assert stored.max == 3
    assert plan.new_leases == ()
    assert plan.ended_leases == ()


def test_a_group_never_written_is_guarded_as_absent() -> None:
    before = Semaphore("web", max=2, stored=False)
    after = core.acquire(before, "n1", NOW)
    plan = LAYOUT.plan_commit(view(before, revision=0), Write(after.semaphore, after.events))
    assert plan.guards[0] == Guard(b"p/groups/web", 0)


def test_an_acquire_also_guards_the_fleet_pause() -> None:
    before = Semaphore("web", max=2)
    after = core.acquire(before, "n1", NOW)
    write = Write(after.semaphore, after.events, with_fleet=True)
    plan = LAYOUT.plan_commit(view(before, revision=9, fleet_revision=4), write)
    assert plan.guards == (Guard(b"p/groups/web", 9), Guard(b"p/groups/*", 4))


def test_expires_at_is_never_stored() -> None:
    before = Semaphore("web", max=2, hold_ttl=timedelta(minutes=5))
    after = core.acquire(before, "n1", NOW).semaphore
    assert after.holds["n1"].expires_at is not None  # core's guess from our clock
    plan = LAYOUT.plan_commit(view(before), Write(after, ()))
    stored = decode_semaphore(puts(plan)[b"p/groups/web"].value, "test")
    assert stored.holds["n1"].expires_at is None
    assert plan.semaphore.holds["n1"].expires_at is None


# --- events ---------------------------------------------------------------------------------


def test_events_follow_the_counter_and_move_it() -> None:
    before = Semaphore("web", max=2)
    after = core.acquire(before, "n1", NOW)
    plan = LAYOUT.plan_commit(view(before, seq=2), Write(after.semaphore, after.events))

    written = puts(plan)
    assert written[b"p/seq/web"].value == b"3"
    assert decode_event(written[LAYOUT.event_key("web", 3)].value).action is Action.ACQUIRED
    assert plan.seq == 3
    assert deletes(plan) == []  # 3 events kept: within history_limit


def test_a_change_without_events_leaves_the_counter_alone() -> None:
    before = held(Semaphore("web", max=2), "n1")
    later = NOW + timedelta(hours=1)
    after = core.touch(before, "n1", later)
    assert after.changed
    assert not after.events
    plan = LAYOUT.plan_commit(view(before, seq=4), Write(after.semaphore, after.events))
    assert set(puts(plan)) == {b"p/groups/web"}
    assert plan.seq == 4


def test_history_beyond_the_limit_is_trimmed_in_the_same_write() -> None:
    before = Semaphore("web", max=2)
    after = core.acquire(before, "n1", NOW)
    plan = LAYOUT.plan_commit(view(before, seq=5), Write(after.semaphore, after.events))
    # 6 events, 5 kept: every event key before number 2 goes
    assert deletes(plan) == [Delete(b"p/events/web/", LAYOUT.event_key("web", 2))]


def test_many_expired_holds_fold_into_one_event() -> None:
    before = Semaphore("web", max=2)
    expired = tuple(
        Event(NOW, "web", Action.EXPIRED, "stagger", f"n{i}", "hold lease expired")
        for i in range(MAX_EVENTS_PER_TXN + 1)
    )
    after = core.acquire(before, "x", NOW)
    layout = Layout("p/", default_max=2, history_limit=1000)
    plan = layout.plan_commit(view(before), Write(after.semaphore, (*expired, *after.events)))

    events = [
        decode_event(op.value) for key, op in puts(plan).items() if key.startswith(b"p/events/")
    ]
    assert [e.action for e in events] == [Action.EXPIRED, Action.ACQUIRED]
    assert events[0].detail.startswith(f"{MAX_EVENTS_PER_TXN + 1} hold leases expired: n0, n1")
    assert plan.seq == 2


# --- hold leases ----------------------------------------------------------------------------


def test_a_new_hold_of_a_group_with_a_hold_ttl_needs_a_new_lease() -> None:
    before = Semaphore("web", max=2, hold_ttl=timedelta(seconds=90.5))
    after = core.acquire(before, "n1", NOW)
    plan = LAYOUT.plan_commit(view(before), Write(after.semaphore, after.events))

    assert plan.new_leases == (NewLease("n1", 91),)  # whole seconds, rounded up
    lease_put = puts(plan)[b"p/leases/web/n1"]
    assert lease_put.lease_for == "n1"
    assert json.loads(lease_put.value) == {"ttl": 91}
    assert plan.ended_leases == ()


def test_a_hold_that_keeps_its_lease_sends_nothing_for_it() -> None:
    sem = held(Semaphore("web", max=2, hold_ttl=timedelta(minutes=1)), "n1")
    leases = {"n1": HoldLease(500, 60)}
    after = core.acquire(sem, "n2", NOW)
    plan = LAYOUT.plan_commit(view(sem, leases=leases), Write(after.semaphore, after.events))

    assert plan.new_leases == (NewLease("n2", 60),)
    assert b"p/leases/web/n1" not in puts(plan)
    assert plan.kept_leases == {"n1": HoldLease(500, 60)}


def test_a_released_hold_loses_its_lease_key_and_its_lease() -> None:
    sem = held(Semaphore("web", max=2, hold_ttl=timedelta(minutes=1)), "n1", "n2")
    leases = {"n1": HoldLease(500, 60), "n2": HoldLease(501, 60)}
    after = core.release(sem, "n1", NOW, by="n1")
    plan = LAYOUT.plan_commit(view(sem, leases=leases), Write(after.semaphore, after.events))

    assert deletes(plan) == [Delete(b"p/leases/web/n1")]
    assert plan.ended_leases == (500,)
    assert plan.new_leases == ()
    assert plan.kept_leases == {"n2": HoldLease(501, 60)}


def test_a_new_hold_ttl_moves_every_hold_to_a_new_lease() -> None:
    sem = held(Semaphore("web", max=2, hold_ttl=timedelta(minutes=1)), "n1")
    leases = {"n1": HoldLease(500, 60)}
    after = core.configure(
        sem, NOW, by=OP, hold_ttl=timedelta(minutes=2), stale_after=sem.stale_after
    )
    plan = LAYOUT.plan_commit(view(sem, leases=leases), Write(after.semaphore, after.events))

    assert plan.new_leases == (NewLease("n1", 120),)
    assert puts(plan)[b"p/leases/web/n1"].lease_for == "n1"
    assert plan.ended_leases == (500,)  # the old lease, once the write committed
    assert plan.kept_leases == {}


def test_without_a_hold_ttl_no_hold_has_a_lease_key() -> None:
    sem = held(Semaphore("web", max=2, hold_ttl=timedelta(minutes=1)), "n1")
    leases = {"n1": HoldLease(500, 60)}
    after = core.configure(sem, NOW, by=OP, hold_ttl=None, stale_after=sem.stale_after)
    plan = LAYOUT.plan_commit(view(sem, leases=leases), Write(after.semaphore, after.events))

    assert deletes(plan) == [Delete(b"p/leases/web/n1")]
    assert plan.ended_leases == (500,)
    assert plan.new_leases == ()


# --- the group after the write, and reading it ----------------------------------------------


def test_the_view_after_a_write_has_the_granted_leases_and_the_new_revision() -> None:
    sem = held(Semaphore("web", max=2, hold_ttl=timedelta(minutes=1)), "n1")
    before = view(sem, leases={"n1": HoldLease(500, 60)}, seq=1)
    change = core.acquire(sem, "n2", NOW)
    plan = LAYOUT.plan_commit(before, Write(change.semaphore, change.events))

    after = view_after(before, plan, {"n2": 777}, revision=50, sent=9)
    assert after.leases == {"n1": HoldLease(500, 60), "n2": HoldLease(777, 60)}
    assert (after.revision, after.read_at, after.sent, after.seq) == (50, 50, 9, 2)
    assert after.derived
    assert after.semaphore == plan.semaphore
    assert after.fleet_revision == before.fleet_revision  # not the fleet key: not written


def test_a_write_to_the_fleet_pause_is_the_view_s_fleet_pause() -> None:
    before = view(Semaphore(FLEET, max=2))
    change = core.pause(before.semaphore, NOW, by=OP, reason="freeze")
    plan = LAYOUT.plan_commit(before, Write(change.semaphore, change.events))

    after = view_after(before, plan, {}, revision=60, sent=2)
    assert after.fleet is not None  # the FLEET record: the fleet pause and the node pauses
    assert isinstance(after.fleet.pause, Pause)
    assert after.fleet.pause.reason == "freeze"
    assert after.fleet_revision == 60


@dataclass
class KV:
    key: bytes
    value: bytes
    mod_revision: int = 0
    lease: int = 0


def test_a_read_drops_holds_whose_lease_key_is_gone_and_records_why() -> None:
    sem = held(Semaphore("web", max=2, hold_ttl=timedelta(minutes=1)), "n1", "n2")
    plan = LAYOUT.plan_commit(view(sem), Write(sem, ()))
    group_kv = KV(b"p/groups/web", puts(plan)[b"p/groups/web"].value, mod_revision=12)
    lease_kv = KV(b"p/leases/web/n2", b'{"ttl": 60}', lease=900)

    got = LAYOUT.read_view(
        "web", [[group_kv], [lease_kv], [KV(b"p/seq/web", b"4")], []], NOW, read_at=20, sent=3
    )

    assert set(got.semaphore.holds) == {"n2"}
    assert [(e.action, e.id) for e in got.expired] == [(Action.EXPIRED, "n1")]
    assert got.leases == {"n2": HoldLease(900, 60)}
    assert (got.revision, got.seq, got.read_at, got.sent) == (12, 4, 20, 3)
    assert got.fleet is None
    assert got.fleet_revision == 0


def test_a_group_never_written_reads_as_its_defaults() -> None:
    got = LAYOUT.read_view("web", [[], [], [], []], NOW, read_at=1, sent=1)
    assert got.semaphore == Semaphore("web", max=2)
    assert not got.semaphore.stored
    assert (got.revision, got.seq) == (0, 0)


def test_a_plan_of_a_view_read_back_writes_what_core_decided() -> None:
    """Round trip: what a plan puts, read back, is the value core produced."""
    sem = Semaphore("web", max=2)
    change = core.acquire(sem, "n1", NOW, note="kernel")
    plan = LAYOUT.plan_commit(view(sem), Write(change.semaphore, change.events))
    group_kv = KV(b"p/groups/web", puts(plan)[b"p/groups/web"].value, mod_revision=13)
    got = LAYOUT.read_view("web", [[group_kv], [], [], []], NOW, read_at=13, sent=2)
    assert got.semaphore == change.semaphore
    assert got.semaphore.holds["n1"].note == "kernel"


def test_a_read_of_every_group_sorts_them_drops_lost_holds_and_splits_off_the_fleet_pause() -> None:
    def stored(sem: Semaphore, revision: int) -> KV:
        put = puts(LAYOUT.plan_commit(view(sem), Write(sem, ())))[LAYOUT.group_key(sem.group)]
        return KV(put.key, put.value, mod_revision=revision)

    web = held(Semaphore("web", max=2, hold_ttl=timedelta(minutes=1)), "n1", "n2")
    db = held(Semaphore("db", max=1), "d1")
    fleet = core.pause(Semaphore(FLEET), NOW, by=OP, reason="freeze").semaphore
    lease = KV(b"p/leases/web/n2", b'{"ttl": 60}', lease=900)

    groups, record = LAYOUT.read_fleet(
        [[stored(web, 5), stored(fleet, 6), stored(db, 7)], [lease]], NOW
    )
    pause = record.pause if record is not None else None

    assert [g.group for g in groups] == ["db", "web"]
    assert set(groups[1].holds) == {"n2"}  # n1's lease key is gone
    assert set(groups[0].holds) == {"d1"}  # no hold_ttl: no lease key needed
    assert pause is not None
    assert pause.reason == "freeze"


def test_a_group_read_again_unchanged_is_not_decoded_again() -> None:
    """The same stored bytes give the same Semaphore object (the server reuses what it
    decided from it); other bytes are decoded afresh. (The same bytes read as another group
    may share the object too: the codec keeps decoded records by their text, and a record
    names its own group.)"""
    layout = Layout("p/", default_max=2, history_limit=5)
    full = core.acquire(Semaphore("web", max=1), "a", NOW).semaphore
    raw = encode_semaphore(full).encode()
    first = layout.decode("web", raw)
    assert layout.decode("web", bytes(raw)) is first
    assert first == full
    freed = encode_semaphore(core.release(full, "a", NOW, by="a").semaphore).encode()
    assert layout.decode("web", freed).holds == {}
    assert layout.decode("db", raw).holders(NOW) == ("a",)

"""core/semaphore.py as a specification: one behaviour per test, no I/O, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stagger.core.errors import InvalidInput
from stagger.core.semaphore import (
    DEFAULT_GROUP,
    DEFAULT_MAX,
    DEFAULT_STALE_AFTER,
    MAX_GROUP_LEN,
    MAX_ID_LEN,
    MAX_SLOTS,
    TOUCH_INTERVAL,
    Action,
    Denied,
    DenyReason,
    Granted,
    Hold,
    NotHeld,
    Pause,
    Released,
    Semaphore,
    acquire,
    configure,
    expire,
    expire_lost,
    pause,
    release,
    resume,
    set_max,
    touch,
    validate_group,
    validate_id,
    validate_max,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OP = "operator:alice"


def held_by(*ids: str, max: int = 3, at: datetime = T0) -> Semaphore:
    """A group of `max` slots whose holders are `ids`, all taken at `at`."""
    sem = Semaphore("web", max=max)
    for node in ids:
        sem = acquire(sem, node, at).semaphore
    return sem


# --- acquire ------------------------------------------------------------------------------


def test_acquire_grants_a_free_slot_and_records_it() -> None:
    change = acquire(Semaphore("web", max=1), "a", T0, note="kernel 6.1")
    assert change.outcome == Granted(Hold("a", T0, T0, None, "kernel 6.1"), already_held=False)
    assert change.semaphore.holders(T0) == ("a",)
    assert [(e.action, e.id, e.by) for e in change.events] == [(Action.ACQUIRED, "a", "a")]
    assert change.changed


def test_a_new_group_has_one_slot_in_the_default_group() -> None:
    assert Semaphore(DEFAULT_GROUP).max == DEFAULT_MAX == 1


def test_recursive_acquire_is_granted_and_writes_nothing() -> None:
    sem = held_by("a")
    change = acquire(sem, "a", T0 + timedelta(hours=1))
    assert isinstance(change.outcome, Granted)
    assert change.outcome.already_held
    assert change.outcome.hold.since == T0
    assert change.semaphore == sem
    assert not change.changed


def test_acquire_on_a_full_group_is_denied_with_the_holders_listed() -> None:
    change = acquire(held_by("b", "a", max=2), "c", T0)
    assert change.outcome == Denied(DenyReason.FULL, 2, ("a", "b"), position=1)
    assert change.outcome.sentence() == (
        "all 2 slot(s) are held by: a, b; this node is number 1 in the queue"
    )


def test_a_denied_node_joins_the_queue_once_and_asking_again_soon_writes_nothing() -> None:
    first = acquire(held_by("a", max=1), "c", T0)
    assert first.changed, "joining the queue is written"
    assert not first.events, "but not recorded in history"
    assert first.semaphore.waiting == {"c": T0}
    again = acquire(first.semaphore, "c", T0 + timedelta(minutes=1))
    assert again.outcome == first.outcome
    assert not again.changed


def test_max_zero_denies_everyone() -> None:
    change = acquire(Semaphore("web", max=0), "a", T0)
    assert isinstance(change.outcome, Denied)
    assert change.outcome.reason is DenyReason.FULL
    assert change.outcome.sentence().startswith("all 0 slot(s) are held by: (nobody);")


def test_acquire_in_a_paused_group_is_denied_with_the_reason() -> None:
    until = T0 + timedelta(hours=2)
    sem = pause(Semaphore("web", max=3), T0, by=OP, reason="bad kernel", until=until).semaphore
    change = acquire(sem, "a", T0)
    assert isinstance(change.outcome, Denied)
    assert change.outcome.reason is DenyReason.PAUSED
    assert change.outcome.pause == Pause("bad kernel", OP, T0, until)
    assert change.outcome.sentence() == (
        f"reboots are paused until {until.isoformat()} by {OP}: bad kernel; "
        "this node is number 1 in the queue"
    )


def test_a_fleet_pause_denies_acquire_in_every_group() -> None:
    fleet = Pause("incident 42", OP, T0)
    change = acquire(Semaphore("web", max=3), "a", T0, fleet_pause=fleet)
    assert isinstance(change.outcome, Denied)
    assert change.outcome.pause == fleet
    assert change.outcome.sentence() == (
        f"reboots are paused by {OP}: incident 42; this node is number 1 in the queue"
    )


def test_a_pause_whose_end_has_passed_no_longer_denies() -> None:
    sem = pause(Semaphore("web"), T0, by=OP, reason="r", until=T0 + timedelta(hours=1)).semaphore
    assert isinstance(acquire(sem, "a", T0 + timedelta(hours=1)).outcome, Granted)


def test_a_holder_asking_again_during_a_pause_is_still_granted() -> None:
    sem = pause(held_by("a"), T0, by=OP, reason="r").semaphore
    outcome = acquire(sem, "a", T0).outcome
    assert isinstance(outcome, Granted)
    assert outcome.already_held


# --- release ------------------------------------------------------------------------------


def test_release_frees_the_holders_slot() -> None:
    change = release(held_by("a", "b"), "a", T0, by="a")
    assert change.outcome == Released(Hold("a", T0, T0), by="a")
    assert change.semaphore.holders(T0) == ("b",)
    assert [(e.action, e.id, e.by, e.detail) for e in change.events] == [
        (Action.RELEASED, "a", "a", "")
    ]


def test_releasing_what_you_do_not_hold_succeeds_and_writes_nothing() -> None:
    sem = held_by("a")
    change = release(sem, "b", T0, by="b")
    assert change.outcome == NotHeld("b")
    assert change.semaphore == sem
    assert not change.changed


def test_release_is_idempotent() -> None:
    once = release(held_by("a"), "a", T0, by="a").semaphore
    twice = release(once, "a", T0, by="a")
    assert twice.outcome == NotHeld("a")
    assert not twice.changed


def test_an_operator_releasing_another_ids_hold_is_recorded_as_such() -> None:
    change = release(held_by("a"), "a", T0, by=OP)
    assert change.outcome == Released(Hold("a", T0, T0), by=OP)
    (event,) = change.events
    assert (event.by, event.id, event.detail) == (OP, "a", "released by an operator")


# --- touch --------------------------------------------------------------------------------


def test_touch_refreshes_last_seen_without_recording_history() -> None:
    later = T0 + TOUCH_INTERVAL
    change = touch(held_by("a"), "a", later)
    assert change.outcome == Hold("a", since=T0, last_seen=later)
    assert change.semaphore.holds["a"].last_seen == later
    assert change.changed
    assert change.events == ()


def test_touch_within_a_minute_of_the_last_one_writes_nothing() -> None:
    sem = held_by("a")
    change = touch(sem, "a", T0 + TOUCH_INTERVAL - timedelta(seconds=1))
    assert change.outcome == sem.holds["a"]
    assert not change.changed


def test_touch_by_a_node_that_holds_nothing_returns_none() -> None:
    change = touch(held_by("a"), "b", T0 + timedelta(hours=1))
    assert change.outcome is None
    assert not change.changed


def test_touch_extends_the_expiry_of_a_group_with_a_hold_ttl() -> None:
    sem = configure(
        Semaphore("web"), T0, by=OP, hold_ttl=timedelta(minutes=10), stale_after=DEFAULT_STALE_AFTER
    ).semaphore
    sem = acquire(sem, "a", T0).semaphore
    later = T0 + timedelta(minutes=5)
    assert touch(sem, "a", later).semaphore.holds["a"].expires_at == later + timedelta(minutes=10)


def test_touch_of_an_expired_hold_returns_none() -> None:
    sem = configure(
        Semaphore("web"), T0, by=OP, hold_ttl=timedelta(minutes=10), stale_after=DEFAULT_STALE_AFTER
    ).semaphore
    sem = acquire(sem, "a", T0).semaphore
    assert touch(sem, "a", T0 + timedelta(minutes=10)).outcome is None


# --- set_max ------------------------------------------------------------------------------


def test_set_max_takes_effect_at_once() -> None:
    sem = held_by("a", max=1)
    change = set_max(sem, 2, T0, by=OP)
    assert change.outcome == 2
    assert [(e.action, e.by, e.detail) for e in change.events] == [
        (Action.MAX_CHANGED, OP, "1 -> 2")
    ]
    assert isinstance(acquire(change.semaphore, "b", T0).outcome, Granted)


def test_lowering_max_below_the_holders_evicts_nobody_and_blocks_new_grants() -> None:
    sem = set_max(held_by("a", "b", "c", max=3), 1, T0, by=OP).semaphore
    assert sem.holders(T0) == ("a", "b", "c")
    assert isinstance(acquire(sem, "d", T0).outcome, Denied)
    sem = release(sem, "a", T0, by="a").semaphore
    sem = release(sem, "b", T0, by="b").semaphore
    assert isinstance(acquire(sem, "d", T0).outcome, Denied)
    sem = release(sem, "c", T0, by="c").semaphore
    assert isinstance(acquire(sem, "d", T0).outcome, Granted)


def test_set_max_to_the_same_value_writes_nothing() -> None:
    assert not set_max(held_by("a", max=3), 3, T0, by=OP).changed


def test_set_max_on_a_group_never_written_writes_it_even_at_the_default() -> None:
    change = set_max(Semaphore("web", max=1, stored=False), 1, T0, by=OP)
    assert [(e.action, e.detail) for e in change.events] == [
        (Action.MAX_CHANGED, "new group, max 1")
    ]
    assert change.semaphore.stored
    assert not set_max(change.semaphore, 1, T0, by=OP).changed


def test_any_change_that_writes_a_group_leaves_it_stored() -> None:
    """So a set-max later in the same etcd batch is '1 -> 1', nothing to write, as alone."""
    granted = acquire(Semaphore("web", max=1, stored=False), "a", T0)
    assert granted.semaphore.stored
    assert not set_max(granted.semaphore, 1, T0, by=OP).changed
    nothing = release(Semaphore("web", stored=False), "a", T0, by="a")
    assert not nothing.changed
    assert not nothing.semaphore.stored


def test_configure_on_a_group_never_written_writes_it_even_with_the_defaults() -> None:
    fresh = Semaphore("web", stored=False)
    change = configure(fresh, T0, by=OP, hold_ttl=None, stale_after=fresh.stale_after)
    assert change.changed
    assert change.semaphore.stored


# --- expiry and staleness -----------------------------------------------------------------


def ttl_group(ttl: timedelta = timedelta(minutes=30)) -> Semaphore:
    return configure(
        Semaphore("web", max=1), T0, by=OP, hold_ttl=ttl, stale_after=DEFAULT_STALE_AFTER
    ).semaphore


def test_without_a_hold_ttl_holds_never_expire() -> None:
    sem = held_by("a")
    assert sem.holds["a"].expires_at is None
    change = expire(sem, T0 + timedelta(days=365))
    assert not change.changed
    assert change.semaphore.holders(T0 + timedelta(days=365)) == ("a",)


def test_a_hold_expires_when_the_groups_hold_ttl_has_passed() -> None:
    sem = acquire(ttl_group(), "a", T0).semaphore
    assert sem.holds["a"].expires_at == T0 + timedelta(minutes=30)
    change = expire(sem, T0 + timedelta(minutes=30))
    assert change.outcome == (sem.holds["a"],)
    assert change.semaphore.holds == {}
    assert [(e.action, e.id, e.by) for e in change.events] == [(Action.EXPIRED, "a", "stagger")]


def test_a_hold_before_its_expiry_is_kept() -> None:
    sem = acquire(ttl_group(), "a", T0).semaphore
    assert not expire(sem, T0 + timedelta(minutes=29)).changed


def test_acquire_sweeps_expired_holds_and_records_their_expiry() -> None:
    sem = acquire(ttl_group(), "a", T0).semaphore
    change = acquire(sem, "b", T0 + timedelta(hours=1))
    assert isinstance(change.outcome, Granted)
    assert [e.action for e in change.events] == [Action.EXPIRED, Action.ACQUIRED]


def test_a_denied_acquire_still_sweeps_expired_holds() -> None:
    sem = set_max(acquire(ttl_group(), "a", T0).semaphore, 0, T0, by=OP).semaphore
    change = acquire(sem, "b", T0 + timedelta(hours=1))
    assert isinstance(change.outcome, Denied)
    assert change.semaphore.holds == {}
    assert [e.action for e in change.events] == [Action.EXPIRED]


def test_expired_holds_are_not_counted_as_live() -> None:
    sem = acquire(ttl_group(), "a", T0).semaphore
    assert sem.holders(T0 + timedelta(hours=1)) == ()


def test_holds_lost_on_the_backend_are_dropped_only_in_a_group_with_a_hold_ttl() -> None:
    with_ttl = acquire(
        acquire(set_max(ttl_group(), 2, T0, by=OP).semaphore, "a", T0).semaphore, "b", T0
    )
    change = expire_lost(with_ttl.semaphore, frozenset({"b"}), T0)
    assert change.semaphore.holders(T0) == ("b",)
    assert [(e.action, e.id) for e in change.events] == [(Action.EXPIRED, "a")]
    assert not expire_lost(held_by("a", "b"), frozenset(), T0).changed


def test_a_hold_not_seen_for_longer_than_stale_after_is_stale_but_kept() -> None:
    sem = held_by("a", "b")
    sem = touch(sem, "b", T0 + DEFAULT_STALE_AFTER).semaphore
    later = T0 + DEFAULT_STALE_AFTER + timedelta(seconds=1)
    assert [h.id for h in sem.stale_holds(later)] == ["a"]
    assert sem.holders(later) == ("a", "b")


def test_a_hold_exactly_stale_after_old_is_not_yet_stale() -> None:
    assert held_by("a").stale_holds(T0 + DEFAULT_STALE_AFTER) == []


def test_configure_sets_hold_ttl_and_stale_after_and_records_it() -> None:
    change = configure(
        Semaphore("web"), T0, by=OP, hold_ttl=timedelta(hours=1), stale_after=timedelta(minutes=5)
    )
    assert (change.outcome.hold_ttl, change.outcome.stale_after) == (
        timedelta(hours=1),
        timedelta(minutes=5),
    )
    assert [(e.action, e.by) for e in change.events] == [(Action.CONFIGURED, OP)]


def test_configure_with_the_same_settings_writes_nothing() -> None:
    assert not configure(
        Semaphore("web"), T0, by=OP, hold_ttl=None, stale_after=DEFAULT_STALE_AFTER
    ).changed


@pytest.mark.parametrize(
    ("ttl", "stale", "message"),
    [
        (timedelta(0), DEFAULT_STALE_AFTER, "hold_ttl must be longer than 0 s"),
        (None, timedelta(seconds=-1), "stale_after must be longer than 0 s"),
    ],
)
def test_configure_refuses_durations_that_are_not_positive(
    ttl: timedelta | None, stale: timedelta, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        configure(Semaphore("web"), T0, by=OP, hold_ttl=ttl, stale_after=stale)


# --- pause / resume -----------------------------------------------------------------------


def test_pause_keeps_holders_and_records_who_and_why() -> None:
    change = pause(held_by("a"), T0, by=OP, reason="  bad kernel  ")
    assert change.outcome == Pause("bad kernel", OP, T0, None)
    assert change.semaphore.holders(T0) == ("a",)
    assert [(e.action, e.by, e.detail) for e in change.events] == [
        (Action.PAUSED, OP, "bad kernel")
    ]


def test_the_same_pause_again_writes_nothing_and_keeps_its_start() -> None:
    sem = pause(Semaphore("web"), T0, by=OP, reason="bad kernel").semaphore
    change = pause(sem, T0 + timedelta(minutes=5), by=OP, reason="bad kernel")
    assert change.outcome == Pause("bad kernel", OP, T0)
    assert not change.changed


def test_pausing_again_with_a_new_reason_replaces_the_pause() -> None:
    sem = pause(Semaphore("web"), T0, by=OP, reason="bad kernel").semaphore
    later = T0 + timedelta(minutes=5)
    change = pause(sem, later, by=OP, reason="still bad")
    assert change.outcome == Pause("still bad", OP, later)
    assert [e.detail for e in change.events] == ["still bad"]


def test_pause_needs_a_reason() -> None:
    with pytest.raises(InvalidInput, match="a pause needs a reason"):
        pause(Semaphore("web"), T0, by=OP, reason="   ")


@pytest.mark.parametrize("until", [T0, T0 - timedelta(minutes=1)])
def test_a_pause_ending_now_or_in_the_past_is_refused(until: datetime) -> None:
    with pytest.raises(InvalidInput, match="already past: give a future time"):
        pause(Semaphore("web"), T0, by=OP, reason="r", until=until)


def test_resume_lifts_the_pause_and_records_it() -> None:
    sem = pause(Semaphore("web"), T0, by=OP, reason="bad kernel").semaphore
    change = resume(sem, T0, by="operator:bob")
    assert change.outcome == Pause("bad kernel", OP, T0)
    assert change.semaphore.pause is None
    assert [(e.action, e.by) for e in change.events] == [(Action.RESUMED, "operator:bob")]
    assert isinstance(acquire(change.semaphore, "a", T0).outcome, Granted)


def test_resume_of_an_unpaused_group_writes_nothing() -> None:
    change = resume(Semaphore("web"), T0, by=OP)
    assert change.outcome is None
    assert not change.changed


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["web", "db.eu-1", "A9", "x" * MAX_GROUP_LEN])
def test_good_group_names_are_accepted(group: str) -> None:
    assert validate_group(group) == group


@pytest.mark.parametrize(
    "group", ["", "we b", "web/1", "web_1", "*", "web\n", "x" * (MAX_GROUP_LEN + 1), "wéb"]
)
def test_a_bad_group_name_is_refused_with_what_is_allowed(group: str) -> None:
    with pytest.raises(InvalidInput, match=r"is not valid: use 1 to 128 characters from a-z"):
        validate_group(group)


@pytest.mark.parametrize("node_id", ["a", "node 1", "ü-7", "x" * MAX_ID_LEN])
def test_good_ids_are_accepted(node_id: str) -> None:
    assert validate_id(node_id) == node_id


@pytest.mark.parametrize("node_id", ["", "a\nb", "tab\there", "x" * (MAX_ID_LEN + 1)])
def test_a_bad_id_is_refused_with_what_is_allowed(node_id: str) -> None:
    with pytest.raises(InvalidInput, match=r"use 1 to 256 printable characters"):
        validate_id(node_id)


@pytest.mark.parametrize("value", [0, 1, MAX_SLOTS])
def test_good_max_values_are_accepted(value: int) -> None:
    assert validate_max(value) == value


@pytest.mark.parametrize("value", [-1, MAX_SLOTS + 1, True, 2.0, "3"])
def test_a_bad_max_is_refused_with_what_is_allowed(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"give a whole number from 0 to 10000"):
        validate_max(value)  # type: ignore[arg-type]


def test_acquire_validates_the_id_before_anything_else() -> None:
    with pytest.raises(InvalidInput):
        acquire(Semaphore("web"), "", T0)


def test_release_validates_the_id() -> None:
    with pytest.raises(InvalidInput):
        release(Semaphore("web"), "a\x00", T0, by=OP)


def test_set_max_validates_the_value() -> None:
    with pytest.raises(InvalidInput):
        set_max(Semaphore("web"), -1, T0, by=OP)


def test_touch_renews_a_short_hold_ttl_before_it_expires() -> None:
    sem = Semaphore("web", max=1, hold_ttl=timedelta(seconds=30))
    sem = acquire(sem, "a", T0).semaphore
    change = touch(sem, "a", T0 + timedelta(seconds=11))
    assert change.changed
    assert change.outcome is not None
    assert change.outcome.expires_at == T0 + timedelta(seconds=41)


def test_acquire_by_an_operator_records_the_operator() -> None:
    change = acquire(Semaphore("web", max=1), "a", T0, by="operator:alice")
    assert [(e.id, e.by) for e in change.events] == [("a", "operator:alice")]

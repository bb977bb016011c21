"""The Backend contract: what every backend promises, checked against each real one.

Every test takes the `backend` fixture of conftest.py (a fresh temp SQLite file, or a fresh
prefix on a real etcd) and speaks only the Backend Protocol. The few tests that need to move
time use `clocked` (clock_support.py), the same backend with a test clock injected (the
`clock` option every backend takes): it moves `now`, `last_seen` and stale marks. etcd judges
hold expiry by its leases on the server's clock, so the clock-driven hold_ttl test is skipped
there and one real-time test with a 1 s hold_ttl covers it instead.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from clock_support import ManualClock
from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend
from stagger.core.errors import InvalidInput
from stagger.core.semaphore import (
    DEFAULT_MAX,
    HISTORY_LIMIT,
    Action,
    Denied,
    DenyReason,
    Granted,
    NotHeld,
    Released,
)

OP = "operator:alice"


async def history_len(backend: Backend, group: str = "web") -> int:
    return len(await backend.history(group, limit=HISTORY_LIMIT))


async def holders(backend: Backend, group: str = "web") -> list[str]:
    (status,) = (await backend.status(group)).groups
    return [h.id for h in status.holds]


# --- acquire ------------------------------------------------------------------------------


async def test_acquire_grants_a_free_slot(backend: Backend) -> None:
    outcome = await backend.acquire("web", "a", note="kernel 6.1")
    assert isinstance(outcome, Granted)
    assert not outcome.already_held
    assert (outcome.hold.id, outcome.hold.note) == ("a", "kernel 6.1")
    assert await holders(backend) == ["a"]


async def test_a_group_never_configured_has_the_default_max(backend: Backend) -> None:
    await backend.acquire("web", "a")
    denied = await backend.acquire("web", "b")
    assert isinstance(denied, Denied)
    assert denied.max == DEFAULT_MAX


async def test_acquire_on_a_full_group_is_denied_with_the_holders(backend: Backend) -> None:
    await backend.set_max("web", 2, by=OP)
    await backend.acquire("web", "b")
    await backend.acquire("web", "a")
    before = await history_len(backend)
    denied = await backend.acquire("web", "c")
    assert denied == Denied(DenyReason.FULL, 2, ("a", "b"), position=1)
    assert await history_len(backend) == before
    assert await holders(backend) == ["b", "a"]


async def test_acquire_in_a_paused_group_is_denied_with_the_reason(backend: Backend) -> None:
    until = datetime.now(UTC) + timedelta(hours=2)
    await backend.pause("web", by=OP, reason="bad kernel", until=until)
    denied = await backend.acquire("web", "a")
    assert isinstance(denied, Denied)
    assert denied.reason is DenyReason.PAUSED
    assert denied.pause is not None
    assert (denied.pause.reason, denied.pause.by, denied.pause.until) == ("bad kernel", OP, until)
    assert await holders(backend) == []


async def test_recursive_acquire_is_granted_and_writes_nothing(backend: Backend) -> None:
    first = await backend.acquire("web", "a")
    before = await history_len(backend)
    again = await backend.acquire("web", "a")
    assert isinstance(first, Granted)
    assert isinstance(again, Granted)
    assert again.already_held
    assert again.hold.since == first.hold.since
    assert await history_len(backend) == before


async def test_groups_are_independent(backend: Backend) -> None:
    await backend.acquire("web", "a")
    assert isinstance(await backend.acquire("db", "b"), Granted)
    assert await holders(backend, "db") == ["b"]


# --- release ------------------------------------------------------------------------------


async def test_release_frees_the_slot_and_records_the_node_as_releaser(backend: Backend) -> None:
    await backend.acquire("web", "a")
    outcome = await backend.release("web", "a")
    assert isinstance(outcome, Released)
    assert outcome.by == "a"
    assert await holders(backend) == []
    latest = (await backend.history("web", limit=1))[0]
    assert (latest.action, latest.id, latest.by) == (Action.RELEASED, "a", "a")
    assert isinstance(await backend.acquire("web", "b"), Granted)


async def test_releasing_what_one_does_not_hold_succeeds_and_writes_nothing(
    backend: Backend,
) -> None:
    await backend.acquire("web", "a")
    await backend.release("web", "a")
    before = await history_len(backend)
    assert await backend.release("web", "a") == NotHeld("a")
    assert await backend.release("web", "never-held") == NotHeld("never-held")
    assert await history_len(backend) == before


async def test_an_operator_release_is_recorded_with_who_did_it(backend: Backend) -> None:
    await backend.acquire("web", "a")
    outcome = await backend.release("web", "a", by=OP)
    assert isinstance(outcome, Released)
    assert outcome.by == OP
    latest = (await backend.history("web", limit=1))[0]
    assert (latest.action, latest.id, latest.by) == (Action.RELEASED, "a", OP)


# --- touch --------------------------------------------------------------------------------


async def test_touch_by_a_holder_returns_its_hold_and_records_no_history(backend: Backend) -> None:
    await backend.acquire("web", "a")
    before = await history_len(backend)
    hold = await backend.touch("web", "a")
    assert hold is not None
    assert hold.id == "a"
    assert await history_len(backend) == before


async def test_touch_by_a_node_that_holds_nothing_returns_none(backend: Backend) -> None:
    await backend.acquire("web", "a")
    await backend.release("web", "a", by=OP)
    assert await backend.touch("web", "a") is None
    assert await backend.touch("other", "a") is None


async def test_a_touch_a_minute_later_refreshes_last_seen(
    clocked: Backend, clock: ManualClock
) -> None:
    await clocked.acquire("web", "a")
    clock.advance(timedelta(minutes=2))
    hold = await clocked.touch("web", "a")
    assert hold is not None
    assert hold.last_seen == clock.now
    (status,) = (await clocked.status("web")).groups
    assert status.holds[0].last_seen == clock.now


# --- set_max ------------------------------------------------------------------------------


async def test_raising_max_lets_the_next_node_in_at_once(backend: Backend) -> None:
    await backend.acquire("web", "a")
    assert isinstance(await backend.acquire("web", "b"), Denied)
    assert await backend.set_max("web", 2, by=OP) == 2
    assert isinstance(await backend.acquire("web", "b"), Granted)
    latest = (await backend.history("web", limit=2))[1]
    assert (latest.action, latest.by, latest.detail) == (Action.MAX_CHANGED, OP, "1 -> 2")


async def test_lowering_max_evicts_nobody_and_blocks_new_holds(backend: Backend) -> None:
    await backend.set_max("web", 3, by=OP)
    for node in ("a", "b", "c"):
        await backend.acquire("web", node)
    await backend.set_max("web", 1, by=OP)
    assert await holders(backend) == ["a", "b", "c"]
    await backend.release("web", "a")
    assert isinstance(await backend.acquire("web", "d"), Denied)
    (status,) = (await backend.status("web")).groups
    assert status.semaphore.max == 1


async def test_set_max_to_the_current_value_writes_nothing(backend: Backend) -> None:
    await backend.set_max("web", 3, by=OP)
    before = await history_len(backend)
    await backend.set_max("web", 3, by=OP)
    assert await history_len(backend) == before


async def test_set_max_names_a_new_group_even_at_the_default(backend: Backend) -> None:
    """`set-max db 1` on a group nobody wrote yet (default max 1) makes it appear in status."""
    assert [g.semaphore.group for g in (await backend.status()).groups] == []
    await backend.set_max("db", 1, by=OP)
    assert [g.semaphore.group for g in (await backend.status()).groups] == ["db"]
    before = await history_len(backend)
    await backend.set_max("db", 1, by=OP)
    assert await history_len(backend) == before


# --- pause / resume -----------------------------------------------------------------------


async def test_a_fleet_pause_blocks_every_group_until_resumed(backend: Backend) -> None:
    await backend.acquire("web", "a")
    pause = await backend.pause(None, by=OP, reason="incident 42")
    for group in ("web", "db", "never-seen"):
        denied = await backend.acquire(group, "z")
        assert isinstance(denied, Denied)
        assert denied.reason is DenyReason.PAUSED
        assert denied.pause == pause
    snapshot = await backend.status()
    assert snapshot.fleet_pause == pause
    assert all(g.pause == pause for g in snapshot.groups)
    assert await holders(backend) == ["a"], "a pause evicts nobody"
    assert await backend.resume(None, by=OP) == pause
    assert isinstance(await backend.acquire("db", "z"), Granted)
    assert (await backend.status()).fleet_pause is None


async def test_resume_lifts_a_group_pause_and_records_it(backend: Backend) -> None:
    await backend.pause("web", by=OP, reason="bad kernel")
    lifted = await backend.resume("web", by="operator:bob")
    assert lifted is not None
    assert lifted.reason == "bad kernel"
    latest = (await backend.history("web", limit=1))[0]
    assert (latest.action, latest.by) == (Action.RESUMED, "operator:bob")
    assert isinstance(await backend.acquire("web", "a"), Granted)


async def test_resume_of_a_group_not_paused_writes_nothing(backend: Backend) -> None:
    await backend.acquire("web", "a")
    before = await history_len(backend)
    assert await backend.resume("web", by=OP) is None
    assert await backend.resume(None, by=OP) is None
    assert await history_len(backend) == before


async def test_a_group_pause_does_not_touch_other_groups(backend: Backend) -> None:
    await backend.pause("web", by=OP, reason="bad kernel")
    assert isinstance(await backend.acquire("db", "a"), Granted)


async def test_a_pause_ending_in_the_past_is_refused(backend: Backend) -> None:
    with pytest.raises(InvalidInput, match="already past"):
        await backend.pause("web", by=OP, reason="r", until=datetime.now(UTC) - timedelta(1))
    assert (await backend.status()).groups == ()


# --- status -------------------------------------------------------------------------------


async def test_status_lists_every_stored_group(backend: Backend) -> None:
    await backend.acquire("web", "a")
    await backend.set_max("db", 2, by=OP)
    snapshot = await backend.status()
    assert sorted(g.group for g in snapshot.groups) == ["db", "web"]
    assert snapshot.fleet_pause is None


async def test_status_of_an_unknown_group_shows_the_default_without_creating_it(
    backend: Backend,
) -> None:
    (status,) = (await backend.status("new")).groups
    assert (status.group, status.semaphore.max, status.holds) == ("new", DEFAULT_MAX, [])
    assert (await backend.status()).groups == ()


async def test_status_marks_holds_not_seen_for_stale_after_as_stale(backend: Backend) -> None:
    # Real time with a tiny stale_after: works wherever stale is judged from last_seen.
    await backend.configure("web", by=OP, hold_ttl=None, stale_after=timedelta(milliseconds=50))
    await backend.acquire("web", "a")
    await asyncio.sleep(0.2)
    (status,) = (await backend.status("web")).groups
    assert status.stale == {"a"}
    assert [h.id for h in status.holds] == ["a"], "a stale hold is shown, never dropped"


async def test_a_fresh_hold_is_not_stale(backend: Backend) -> None:
    await backend.acquire("web", "a")
    (status,) = (await backend.status("web")).groups
    assert status.stale == set()


async def test_a_heartbeat_keeps_a_hold_from_going_stale(
    clocked: Backend, clock: ManualClock
) -> None:
    await clocked.acquire("web", "a")
    await clocked.acquire("web", "a")
    clock.advance(timedelta(minutes=10))
    await clocked.touch("web", "a")
    clock.advance(timedelta(minutes=10))
    assert (await clocked.status("web")).groups[0].stale == set()
    clock.advance(timedelta(minutes=6))
    assert (await clocked.status("web")).groups[0].stale == {"a"}


async def test_a_second_backend_on_the_same_store_sees_the_same_state(
    backend: Backend, any_backend_url: str
) -> None:
    await backend.acquire("web", "a")
    other = open_backend(any_backend_url)
    try:
        denied = await other.acquire("web", "b")
        assert isinstance(denied, Denied)
        assert denied.holders == ("a",)
    finally:
        await other.close()


# --- hold_ttl -----------------------------------------------------------------------------


async def test_holds_do_not_expire_without_a_hold_ttl(clocked: Backend, clock: ManualClock) -> None:
    await clocked.acquire("web", "a")
    clock.advance(timedelta(days=30))
    assert isinstance(await clocked.acquire("web", "b"), Denied)
    assert await holders(clocked) == ["a"]


async def test_a_hold_expires_after_the_groups_hold_ttl(
    clocked: Backend, clock: ManualClock, any_backend_url: str
) -> None:
    if any_backend_url.startswith("etcd"):
        pytest.skip("etcd ends holds with leases on its own clock: see the real-time test below")
    await clocked.configure("web", by=OP, hold_ttl=timedelta(minutes=30))
    await clocked.acquire("web", "a")
    clock.advance(timedelta(minutes=29))
    assert isinstance(await clocked.acquire("web", "b"), Denied)
    clock.advance(timedelta(minutes=1))
    assert await holders(clocked) == []
    assert isinstance(await clocked.acquire("web", "b"), Granted)
    actions = [(e.action, e.id) for e in await clocked.history("web", limit=2)]
    assert actions == [(Action.ACQUIRED, "b"), (Action.EXPIRED, "a")]


async def test_a_hold_expires_in_real_time_after_a_one_second_hold_ttl(backend: Backend) -> None:
    # The one real-time expiry test: on etcd the lease (server clock) must end the hold.
    await backend.configure("web", by=OP, hold_ttl=timedelta(seconds=1))
    await backend.acquire("web", "a")
    assert isinstance(await backend.acquire("web", "b"), Denied)
    deadline = time.monotonic() + 3.0
    outcome = await backend.acquire("web", "b")
    while isinstance(outcome, Denied) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        outcome = await backend.acquire("web", "b")
    assert isinstance(outcome, Granted)


# --- history ------------------------------------------------------------------------------


async def test_history_is_newest_first_and_respects_the_limit(backend: Backend) -> None:
    await backend.acquire("web", "a")
    await backend.release("web", "a")
    await backend.set_max("web", 2, by=OP)
    events = await backend.history("web", limit=2)
    assert [e.action for e in events] == [Action.MAX_CHANGED, Action.RELEASED]
    assert all(e.group == "web" for e in events)
    assert events[0].time >= events[1].time


async def test_history_of_one_group_leaves_out_the_others(backend: Backend) -> None:
    await backend.acquire("web", "a")
    await backend.acquire("db", "b")
    assert [e.id for e in await backend.history("web")] == ["a"]
    assert sorted(e.group for e in await backend.history()) == ["db", "web"]


async def test_history_of_all_groups_is_newest_first(backend: Backend) -> None:
    await backend.acquire("web", "a")
    await backend.acquire("db", "b")
    await backend.release("web", "a")
    events = await backend.history()
    assert [(e.group, e.action) for e in events] == [
        ("web", Action.RELEASED),
        ("db", Action.ACQUIRED),
        ("web", Action.ACQUIRED),
    ]


async def test_history_keeps_only_the_last_history_limit_events_per_group(
    backend: Backend,
) -> None:
    total = HISTORY_LIMIT + 5
    for i in range(total):
        await backend.set_max("web", 2 + i % 2, by=OP)
    events = await backend.history("web", limit=HISTORY_LIMIT + 100)
    assert len(events) == HISTORY_LIMIT
    assert events[0].detail == f"{2 + (total - 2) % 2} -> {2 + (total - 1) % 2}"


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["", "bad group", "web/1", "*", "web\n", "x" * 129])
async def test_a_bad_group_name_is_refused_before_anything_is_written(
    backend: Backend, group: str
) -> None:
    with pytest.raises(InvalidInput, match="is not valid"):
        await backend.acquire(group, "a")
    with pytest.raises(InvalidInput, match="is not valid"):
        await backend.set_max(group, 2, by=OP)
    assert (await backend.status()).groups == ()


@pytest.mark.parametrize("node_id", ["", "a\nb", "x" * 257])
async def test_a_bad_id_is_refused_before_anything_is_written(
    backend: Backend, node_id: str
) -> None:
    with pytest.raises(InvalidInput, match="is not valid"):
        await backend.acquire("web", node_id)
    assert (await backend.status()).groups == ()


@pytest.mark.parametrize("value", [-1, 10_001])
async def test_a_bad_max_is_refused_before_anything_is_written(
    backend: Backend, value: int
) -> None:
    with pytest.raises(InvalidInput, match="is not valid"):
        await backend.set_max("web", value, by=OP)
    assert (await backend.status()).groups == ()


async def test_ping_answers_when_the_backend_is_up(backend: Backend) -> None:
    await backend.ping()

"""Roles: a job one of several servers does at a time (the notifier), held with a lease.

The core's `claim`/`release` as values (with a hypothesis property: no two owners ever
believe they hold a live role at the same instant), then `claim_role`/`release_role` on a real
SQLite file and a real etcd (conftest's `any_backend_url`), each through several backend
objects on one store, as several servers would. SQLite's expiry is judged by the backend's
clock (a test clock moves it); etcd's by an etcd lease, so its expiry test waits for a real
1 s lease (etcd's minimum with the test members' election timeout).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcd_support import EtcdCluster
from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend, Roles
from stagger.core.errors import InvalidInput
from stagger.core.roles import Role, claim, release

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)


# --- core ---------------------------------------------------------------------------------


def test_a_role_never_held_is_taken_until_now_plus_ttl() -> None:
    role, mine = claim(None, "notify", "a", T0, TTL)
    assert mine
    assert role == Role("notify", "a", T0 + TTL, "")


def test_a_live_role_of_another_owner_is_not_taken_and_not_changed() -> None:
    held = Role("notify", "a", T0 + TTL, "m1")
    role, mine = claim(held, "notify", "b", T0 + TTL / 2, TTL, mark="m2")
    assert not mine
    assert role is held


def test_the_holder_renews_its_role_from_now() -> None:
    held = Role("notify", "a", T0 + TTL, "m1")
    role, mine = claim(held, "notify", "a", T0 + TTL / 2, TTL)
    assert mine
    assert role.expires_at == T0 + TTL / 2 + TTL


def test_an_expired_role_is_taken_by_the_next_claimant_with_the_old_holders_mark() -> None:
    held = Role("notify", "a", T0 + TTL, "where a got to")
    role, mine = claim(held, "notify", "b", T0 + TTL, TTL)
    assert mine
    assert (role.owner, role.mark) == ("b", "where a got to")


def test_a_given_mark_replaces_the_stored_one() -> None:
    held = Role("notify", "a", T0 + TTL, "old")
    role, _ = claim(held, "notify", "a", T0, TTL, mark="new")
    assert role.mark == "new"


def test_release_frees_the_role_at_once_and_keeps_the_mark() -> None:
    held = Role("notify", "a", T0 + TTL, "m")
    freed = release(held, "a", T0)
    assert freed == Role("notify", "a", T0, "m")
    assert not freed.live(T0)


@pytest.mark.parametrize(
    "current",
    [None, Role("notify", "b", T0 + TTL), Role("notify", "a", T0 - TTL)],
    ids=["never-held", "held-by-another", "expired"],
)
def test_releasing_a_role_one_does_not_hold_writes_nothing(current: Role | None) -> None:
    assert release(current, "a", T0) is None


@pytest.mark.parametrize(
    ("name", "owner", "ttl"),
    [("", "a", TTL), ("no/slash", "a", TTL), ("notify", "", TTL), ("notify", "a", timedelta(0))],
)
def test_a_wrong_name_owner_or_ttl_is_refused(name: str, owner: str, ttl: timedelta) -> None:
    with pytest.raises(InvalidInput):
        claim(None, name, owner, T0, ttl)


def test_a_role_survives_its_stored_form() -> None:
    role = Role("notify", "host:1:ab", T0 + TTL, '{"time": null}')
    assert Role.from_dict(role.to_dict()) == role


OWNERS = ("a", "b", "c")
steps = st.lists(
    st.tuples(
        st.sampled_from(OWNERS),
        st.sampled_from(("claim", "release")),
        st.integers(min_value=0, max_value=15_000),  # milliseconds the clock moves first
        st.integers(min_value=1, max_value=12_000),  # the claim's ttl in milliseconds
    ),
    max_size=60,
)


@given(steps)
def test_no_two_owners_ever_believe_they_hold_a_live_role_at_once(
    script: list[tuple[str, str, int, int]],
) -> None:
    """Each owner believes what its last claim answered (held until that expires_at) until it
    releases. Whatever the order, timing and ttls, at every instant at most one belief is
    live, and a claim of a free role always succeeds."""
    role: Role | None = None
    believed: dict[str, datetime] = {}
    now = T0
    for owner, op, advance, ttl_ms in script:
        now += timedelta(milliseconds=advance)
        assert sum(1 for until in believed.values() if now < until) <= 1
        if op == "claim":
            free = role is None or not role.live(now)
            role, mine = claim(role, "notify", owner, now, timedelta(milliseconds=ttl_ms))
            assert mine or not free
            if mine:
                believed[owner] = role.expires_at
        else:
            freed = release(role, owner, now)
            if freed is not None:
                role = freed
            believed.pop(owner, None)
        assert sum(1 for until in believed.values() if now < until) <= 1


# --- on real stores ---------------------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def servers(any_backend_url: str) -> AsyncIterator[list[Backend]]:
    """Three backend objects on one store: three servers."""
    opened = [open_backend(any_backend_url) for _ in range(3)]
    yield opened
    for b in opened:
        await b.close()


def roles_of(b: Backend) -> Roles:
    assert isinstance(b, Roles)
    return b


async def test_sqlite_and_etcd_backends_have_roles_and_the_fleetlock_client_does_not(
    servers: list[Backend],
) -> None:
    fleetlock = open_backend("fleetlock+http://127.0.0.1:9/")
    try:
        assert isinstance(servers[0], Roles)
        assert not isinstance(fleetlock, Roles)
    finally:
        await fleetlock.close()


async def test_of_servers_claiming_at_once_exactly_one_gets_the_role(
    servers: list[Backend],
) -> None:
    answers = await asyncio.gather(
        *(roles_of(b).claim_role("notify", f"server-{i}", TTL) for i, b in enumerate(servers))
    )
    winners = [role.owner for role, mine in answers if mine]
    assert len(winners) == 1
    assert {role.owner for role, _ in answers} == set(winners)


async def test_the_holder_keeps_its_role_and_the_others_see_it(servers: list[Backend]) -> None:
    a, b, _ = map(roles_of, servers)
    assert (await a.claim_role("notify", "a", TTL))[1]
    assert (await a.claim_role("notify", "a", TTL))[1]
    role, mine = await b.claim_role("notify", "b", TTL)
    assert not mine
    assert role.owner == "a"


async def test_the_mark_is_kept_when_none_is_given_and_replaced_when_one_is(
    servers: list[Backend],
) -> None:
    a = roles_of(servers[0])
    await a.claim_role("notify", "a", TTL, mark="one")
    role, _ = await a.claim_role("notify", "a", TTL)
    assert role.mark == "one"
    await a.claim_role("notify", "a", TTL, mark="two")
    role, _ = await roles_of(servers[1]).claim_role("notify", "b", TTL)
    assert role.mark == "two"


async def test_a_released_role_is_taken_at_once_with_the_holders_mark(
    servers: list[Backend],
) -> None:
    a, b, _ = map(roles_of, servers)
    await a.claim_role("notify", "a", TTL, mark="where a got to")
    await a.release_role("notify", "a")
    role, mine = await b.claim_role("notify", "b", TTL)
    assert mine
    assert (role.owner, role.mark) == ("b", "where a got to")


async def test_releasing_a_role_held_by_another_does_nothing(servers: list[Backend]) -> None:
    a, b, _ = map(roles_of, servers)
    await a.claim_role("notify", "a", TTL)
    await b.release_role("notify", "b")
    assert not (await b.claim_role("notify", "b", TTL))[1]


async def test_roles_of_different_names_are_held_independently(servers: list[Backend]) -> None:
    a, b, _ = map(roles_of, servers)
    assert (await a.claim_role("notify", "a", TTL))[1]
    assert (await b.claim_role("notify-other", "b", TTL))[1]


async def test_a_wrong_role_name_is_refused(servers: list[Backend]) -> None:
    with pytest.raises(InvalidInput):
        await roles_of(servers[0]).claim_role("not a name", "a", TTL)


async def test_on_sqlite_an_expired_role_goes_to_the_next_claimant_by_the_backends_clock(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    url = f"sqlite:///{tmp_path}/s.db"
    a, b = roles_of(open_backend(url, clock=clock)), roles_of(open_backend(url, clock=clock))
    try:
        await a.claim_role("notify", "a", TTL, mark="m")
        clock.now += TTL - timedelta(milliseconds=1)
        assert not (await b.claim_role("notify", "b", TTL))[1]
        clock.now += timedelta(milliseconds=1)
        role, mine = await b.claim_role("notify", "b", TTL)
        assert mine
        assert role == Role("notify", "b", clock.now + TTL, "m")
    finally:
        for x in (a, b):
            assert isinstance(x, Backend)
            await x.close()


async def test_on_etcd_a_dead_holders_role_ends_with_its_etcd_lease(
    etcd_server: EtcdCluster,
) -> None:
    url = f"{etcd_server.url}?prefix=test-{uuid.uuid4().hex[:12]}/"
    a, b = open_backend(url), open_backend(url)
    try:
        await roles_of(a).claim_role("notify", "a", timedelta(seconds=1), mark="m")
        await a.close()  # a dies: it never renews nor releases
        deadline = time.monotonic() + 5.0
        role, mine = await roles_of(b).claim_role("notify", "b", TTL)
        while not mine and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            role, mine = await roles_of(b).claim_role("notify", "b", TTL)
        assert mine
        assert role.mark == "m"
    finally:
        await b.close()


async def test_a_sqlite_file_from_before_roles_gets_the_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = open_backend(f"sqlite:///{path}")
    await first.acquire("web", "a")  # creates the file
    await first.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE roles")
    again = open_backend(f"sqlite:///{path}")
    try:
        assert (await roles_of(again).claim_role("notify", "a", TTL))[1]
    finally:
        await again.close()

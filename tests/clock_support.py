"""A clock the test moves by hand, and the `clock` and `clocked` fixtures: every backend takes a
`clock` option, so a test can move `now`, `last_seen` and stale marks without waiting.
Registered as a plugin by conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend


class ManualClock:
    """A clock the test moves by hand, injected into backends that read their own clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def clocked(any_backend_url: str, clock: ManualClock) -> AsyncIterator[Backend]:
    """The backend under test with `clock` as its clock."""
    b = open_backend(any_backend_url, clock=clock)
    yield b
    await b.close()

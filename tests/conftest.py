from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend

# Hypothesis explores new examples on every developer run; under CI it replays a fixed
# derandomized set, so a landing never depends on the luck of the draw (and a loaded machine
# never trips a deadline).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

pytest_plugins = [
    "etcd_support",
    "dbus_support",
    "webhook_support",
    "clock_support",
    "browser_support",
]


def backend_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of `kind`: a temp SQLite file, or a unique prefix on the
    session's real etcd."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/stagger.db"
    etcd = request.getfixturevalue("etcd_server")
    return f"{etcd.url}?prefix=test-{uuid.uuid4().hex[:12]}/"


def created(url: str) -> str:
    """`url` with its store in place, empty, as a stagger server or agent leaves it when it
    starts (a SQLite file is created only by commands that write: docs/cli.md)."""

    async def ping() -> None:
        b = open_backend(url)
        try:
            await b.ping()
        finally:
            await b.close()

    asyncio.run(ping())
    return url


@pytest.fixture(params=["sqlite", "etcd"])
def any_backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, request, tmp_path)


@pytest.fixture
async def backend(any_backend_url: str) -> AsyncIterator[Backend]:
    """The contract suite's subject: every backend, each real."""
    b = open_backend(any_backend_url)
    yield b
    await b.close()

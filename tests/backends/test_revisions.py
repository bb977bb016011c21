"""The store's revision (backends.protocol.Revisions): one cheap read that says whether
anything changed, so the dashboard can answer "nothing changed" without reading the fleet.
Against each real backend (a temp SQLite file, a fresh prefix on a real etcd)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend, Revisions
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport

OP = "operator:alice"


async def mark(backend: Backend) -> str:
    assert isinstance(backend, Revisions)
    return await backend.revision()


async def test_reads_leave_the_revision_as_it_was(backend: Backend) -> None:
    await backend.acquire("web", "a")
    await backend.report(NodeReport("a", "web", State.REBOOTING))
    before = await mark(backend)
    await backend.status()
    await backend.status("web")
    await backend.history(None, 100)
    await backend.read_nodes()
    assert await mark(backend) == before


WRITES: dict[str, Callable[[Backend], Awaitable[object]]] = {
    "acquire": lambda b: b.acquire("db", "b"),
    "release": lambda b: b.release("web", "a"),
    "report": lambda b: b.report(NodeReport("c", "web", State.WAITING)),
    "pause": lambda b: b.pause("web", by=OP, reason="bad kernel"),
    "pause a node": lambda b: b.pause_node("c", by=OP, reason="bad disk"),
    "set max": lambda b: b.set_max("web", 3, by=OP),
    "forget": lambda b: b.forget("gone", by=OP),
}


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_every_write_moves_the_revision(backend: Backend, write: str) -> None:
    await backend.acquire("web", "a")
    await backend.report(NodeReport("gone", "web", State.IDLE))
    before = await mark(backend)
    await WRITES[write](backend)
    assert await mark(backend) != before


async def test_a_write_through_another_connection_moves_the_revision(
    backend: Backend, any_backend_url: str
) -> None:
    """Another process (the CLI, an agent on the same SQLite file, another server on etcd)."""
    await backend.acquire("web", "a")
    before = await mark(backend)
    other = open_backend(any_backend_url)
    try:
        await other.report(NodeReport("b", "web", State.WAITING))
    finally:
        await other.close()
    assert await mark(backend) != before


async def test_a_refused_lock_writes_nothing_and_leaves_the_revision(backend: Backend) -> None:
    await backend.acquire("web", "a")
    await backend.acquire("web", "b")  # max 1, held by a: denied, and b joins the queue
    before = await mark(backend)
    await backend.acquire("web", "b")  # asked again while queued: denied, nothing written
    assert await mark(backend) == before

"""Batched group reads (server/batched_reads.py): callers share reads, but never one that started
before they arrived — so every answer is still linearizable. On a real SQLite backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stagger.backends.protocol import Snapshot
from stagger.backends.sqlite import SqliteBackend
from stagger.server.batched_reads import GroupReads


class GatedSqlite(SqliteBackend):
    """A real SQLite backend whose status() reads, then waits for a gate before answering
    (a read whose answer is in flight), and counts its calls."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.calls = 0
        self.gate = asyncio.Event()
        self.snapshot_taken = asyncio.Event()

    async def status(self, group: str | None = None) -> Snapshot:
        self.calls += 1
        snap = await super().status(group)
        self.snapshot_taken.set()
        await self.gate.wait()
        return snap


async def test_a_read_in_flight_is_never_shared_with_a_later_caller(tmp_path: Path) -> None:
    backend = GatedSqlite(str(tmp_path / "s.db"))
    reads = GroupReads(backend)
    first = asyncio.create_task(reads.read("web"))
    await backend.snapshot_taken.wait()  # its snapshot is taken, before the write below
    await backend.acquire("web", "a")  # a write completes after it started
    later = asyncio.create_task(reads.read("web"))
    await asyncio.sleep(0)
    backend.gate.set()
    assert (await first).groups[0].holds == []
    snap = await later
    assert [h.id for h in snap.groups[0].holds] == ["a"]
    assert backend.calls == 2
    await backend.close()


async def test_callers_arriving_during_a_read_share_the_next_one(tmp_path: Path) -> None:
    backend = GatedSqlite(str(tmp_path / "s.db"))
    reads = GroupReads(backend)
    first = asyncio.create_task(reads.read("web"))
    await asyncio.sleep(0)
    burst = [asyncio.create_task(reads.read("web")) for _ in range(50)]
    await asyncio.sleep(0)
    backend.gate.set()
    await asyncio.gather(first, *burst)
    assert backend.calls == 2
    await backend.close()


async def test_a_failed_read_fails_every_caller_that_shared_it(tmp_path: Path) -> None:
    backend = GatedSqlite(str(tmp_path / "s.db"))
    reads = GroupReads(backend)
    backend.gate.set()
    results = await asyncio.gather(
        *(reads.read("bad group") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)
    await backend.close()


async def test_a_caller_arriving_during_a_read_does_not_wait_for_it_to_end(
    tmp_path: Path,
) -> None:
    backend = GatedSqlite(str(tmp_path / "s.db"))
    reads = GroupReads(backend)
    first = asyncio.create_task(reads.read("web"))
    await backend.snapshot_taken.wait()
    await backend.acquire("web", "a")  # a write completes after the first read started
    second = asyncio.create_task(reads.read("web"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert backend.calls == 2  # its own read started while the first is in flight
    burst = [asyncio.create_task(reads.read("web")) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert backend.calls == 2  # two in flight at most: the burst waits for one to end
    backend.gate.set()
    assert (await first).groups[0].holds == []
    assert [h.id for h in (await second).groups[0].holds] == ["a"]
    for snap in await asyncio.gather(*burst):
        assert [h.id for h in snap.groups[0].holds] == ["a"]
    assert backend.calls == 3
    await backend.close()

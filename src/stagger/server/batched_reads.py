"""Batched linearizable reads of one group: the requests that wait for a read of the group
share the next one, which starts after all of them arrived. So each answer still reflects
every write completed before its request came in (linearizable), while a burst of N callers
costs a few backend reads instead of N.

Two reads of a group may be in flight at once: callers that arrive while one is in flight
start the next at once instead of waiting for it to end (each caller still gets a read
started after it arrived). With one read at a time, a busy server's callers split into two
halves that take turns, each waiting for the other half's read and then its own.

Only decisions that need no write are answered from such a read (a denial, a recursive lock,
releasing nothing); anything that changes a group goes through the backend's own
read-apply-compare-and-swap.

`remembered` passes on a backend's possibly stale view of a group (base.RemembersGroups:
etcd), for one use only: to send a change that view says is due straight to the backend,
without this read first (the backend's guarded write decides; see server/fleetlock.py)."""

from __future__ import annotations

import asyncio

from stagger.backends.protocol import Backend, GroupStatus, RemembersGroups, Snapshot

# Reads of one group in flight at once, at most.
IN_FLIGHT = 2


class GroupReads:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._remembers = backend if isinstance(backend, RemembersGroups) else None
        # The callers waiting for the next read of each group (one future each, so a caller
        # that goes away cancels only its own), the groups whose next read is about to
        # start, and the reads of each group started and not yet answered.
        self._next: dict[str, list[asyncio.Future[Snapshot]]] = {}
        self._starting: set[str] = set()
        self._busy: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def remembered(self, group: str) -> GroupStatus | None:
        """The backend's newest view of `group`, possibly stale; None without one."""
        return self._remembers.remembered(group) if self._remembers is not None else None

    def changing(self, group: str) -> bool:
        """Whether the backend is writing a change to `group` now (etcd); False without."""
        return self._remembers.changing(group) if self._remembers is not None else False

    async def read(self, group: str) -> Snapshot:
        waiters = self._next.get(group)
        if waiters is None:
            waiters = self._next[group] = []
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        self._maybe_start(group)
        return await future

    def _maybe_start(self, group: str) -> None:
        # Started from the event loop's queue, not by the first caller: the callers whose
        # requests arrived with the first one's join this read instead of the next.
        busy = self._busy.get(group, 0)
        if group not in self._starting and busy < IN_FLIGHT:
            self._starting.add(group)
            self._busy[group] = busy + 1
            asyncio.get_running_loop().call_soon(self._start, group)

    def _start(self, group: str) -> None:
        self._starting.discard(group)
        waiters = self._next.pop(group)
        task = asyncio.get_running_loop().create_task(self._run(group, waiters))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, group: str, waiters: list[asyncio.Future[Snapshot]]) -> None:
        try:
            snap = await self.backend.status(group)
        except BaseException as exc:  # every waiter gets the failure
            for future in waiters:
                if not future.done():
                    future.set_exception(exc)
                    # a failure its caller no longer awaits must not be logged as never
                    # retrieved; a caller still waiting gets it raised all the same
                    future.exception()
            if not isinstance(exc, Exception):
                raise
        else:
            for future in waiters:
                if not future.done():
                    future.set_result(snap)
        finally:
            busy = self._busy[group] - 1
            if busy:
                self._busy[group] = busy
            else:
                del self._busy[group]
            if group in self._next:
                self._maybe_start(group)

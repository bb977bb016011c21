"""Batched linearizable reads of one group: the requests that arrive while a read of the
group is in flight share the NEXT read, which starts after all of them arrived. So each
answer still reflects every write completed before its request came in (linearizable), while
a burst of N callers costs about two backend reads instead of N.

Only decisions that need no write are answered from such a read (a denial, a recursive lock,
releasing nothing); anything that changes a group goes through the backend's own
read-apply-compare-and-swap.

`remembered` passes on a backend's possibly stale view of a group (base.RemembersGroups:
etcd), for one use only: to send a change that view says is due straight to the backend,
without this read first (the backend's guarded write decides; see server/fleetlock.py)."""

from __future__ import annotations

import asyncio

from stagger.backends.base import Backend, GroupStatus, RemembersGroups, Snapshot


class GroupReads:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._remembers = backend if isinstance(backend, RemembersGroups) else None
        # The callers waiting for the next read of each group (one future each, so a caller
        # that goes away cancels only its own), and the groups with a read due or in flight.
        self._next: dict[str, list[asyncio.Future[Snapshot]]] = {}
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def remembered(self, group: str) -> GroupStatus | None:
        """The backend's newest view of `group`, possibly stale; None without one."""
        return self._remembers.remembered(group) if self._remembers is not None else None

    def changing(self, group: str) -> bool:
        """Whether the backend is writing a change to `group` now (etcd); False without."""
        return self._remembers.changing(group) if self._remembers is not None else False

    async def read(self, group: str) -> Snapshot:
        loop = asyncio.get_running_loop()
        waiters = self._next.get(group)
        if waiters is None:
            waiters = self._next[group] = []
            if group not in self._busy:
                self._busy.add(group)
                loop.call_soon(self._start, group)
        future: asyncio.Future[Snapshot] = loop.create_future()
        waiters.append(future)
        return await future

    def _start(self, group: str) -> None:
        # Started from the event loop's queue, not by the first caller: the callers whose
        # requests arrived with the first one's join this read instead of the next.
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
            if group in self._next:
                asyncio.get_running_loop().call_soon(self._start, group)
            else:
                self._busy.discard(group)

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
        self._next: dict[str, asyncio.Future[Snapshot]] = {}
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def remembered(self, group: str) -> GroupStatus | None:
        """The backend's newest view of `group`, possibly stale; None without one."""
        return self._remembers.remembered(group) if self._remembers is not None else None

    def changing(self, group: str) -> bool:
        """Whether the backend is writing a change to `group` now (etcd); False without."""
        return self._remembers.changing(group) if self._remembers is not None else False

    async def read(self, group: str) -> Snapshot:
        future = self._next.get(group)
        if future is None:
            future = self._next[group] = asyncio.get_running_loop().create_future()
            if group not in self._busy:
                self._start(group)
        # shield: one caller going away must not cancel the read the others wait for
        return await asyncio.shield(future)

    def _start(self, group: str) -> None:
        future = self._next.pop(group)
        self._busy.add(group)
        task = asyncio.get_running_loop().create_task(self._run(group, future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, group: str, future: asyncio.Future[Snapshot]) -> None:
        try:
            future.set_result(await self.backend.status(group))
        except BaseException as exc:  # every waiter gets the failure
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._busy.discard(group)
            if group in self._next:
                self._start(group)
            # a failure nobody awaited any more must not be reported as "never retrieved"
            if future.done() and not future.cancelled():
                future.exception()

"""Group commit for the etcd backend: the changes to one group that queue while a change to
it is in flight are applied IN ORDER, each through its own core operation on the value the one
before it left, and written together in one guarded transaction (backend.py, `_run_batch`).
Every caller gets the outcome it would have had alone, run in that order. Why answering
each caller from a batch is safe: docs/backends.md, "Group commit".

Rules of this file:
- It holds the parts of group commit that do no I/O: a queued change (`Queued`), the
  in-order application (`apply_in_order`), and the per-group queue with the task that drains
  it (`GroupQueues`), which only schedules; the backend's `_run_batch` reads and writes.
- At most MAX_BATCH changes that write go into one transaction (etcd's operation limit).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stagger.backends.semaphore_store import Op, Settle
from stagger.core.semaphore import Event, Semaphore

# The most changes that WRITE one transaction carries (changes that write nothing cost it no
# operation and are not counted). etcd refuses a transaction of more than 128 operations
# (--max-txn-ops); an acquire or release adds at most two (its event and its hold's lease key)
# to the three a change always has (group, event counter, trim of history).
MAX_BATCH = 32

_UNSET: Any = object()


@dataclass(eq=False)
class Queued:
    """One caller's change waiting in its group's queue (mutable: the batch answers it)."""

    op: Op[Any]
    what: str
    with_fleet: bool
    settle: Settle[Any] | None
    began: int  # the store's request number when the caller asked: see EtcdBackend._fresh
    future: asyncio.Future[Any]
    # The outcome a write with an unknown result would have given it (settle decides later).
    planned: Any = field(default=_UNSET)

    @property
    def answered(self) -> bool:
        return self.future.done()

    @property
    def has_planned(self) -> bool:
        return self.planned is not _UNSET

    def answer(self, outcome: Any) -> None:
        if not self.future.done():
            self.future.set_result(outcome)

    def fail(self, exc: BaseException) -> None:
        if self.future.done():
            return
        if isinstance(exc, asyncio.CancelledError):
            self.future.cancel()
        else:
            self.future.set_exception(exc)


@dataclass(frozen=True)
class Step:
    """What one queued change did in a batch: its outcome, or the error its operation raised
    (invalid input: it changes nothing and the rest of the batch goes on without it)."""

    change: Queued
    outcome: Any = None
    error: Exception | None = None
    wrote: bool = False


@dataclass(frozen=True)
class Applied:
    """A batch applied in order to one view: the final value and every event, in order."""

    semaphore: Semaphore
    events: tuple[Event, ...]
    steps: tuple[Step, ...]

    @property
    def writes(self) -> bool:
        return any(s.wrote for s in self.steps)


def apply_in_order(
    sem: Semaphore, fleet: Semaphore | None, now: datetime, changes: list[Queued]
) -> Applied:
    """Run each change's operation on the value the one before it left, as if they had come
    one by one in this order; stop after MAX_BATCH of them wrote (the rest wait for the
    next transaction: they have no step)."""
    events: list[Event] = []
    steps: list[Step] = []
    writes = 0
    for queued in changes:
        if writes == MAX_BATCH:
            break
        try:
            change = queued.op(sem, now, fleet)
        except Exception as exc:  # the operation refused its input: only this caller hears
            steps.append(Step(queued, error=exc))
            continue
        if change.changed:
            sem = change.semaphore
            events.extend(change.events)
            writes += 1
        steps.append(Step(queued, change.outcome, wrote=change.changed))
    return Applied(sem, tuple(events), tuple(steps))


class GroupQueues:
    """A queue of changes per group, drained by one task per busy group: it takes every
    waiting change, hands them to `run` as one batch, puts back (first in line) those `run`
    left unanswered (beyond MAX_BATCH writes), and repeats until the queue is empty. While a
    batch is in flight, the next one gathers."""

    def __init__(self, run: Callable[[str, list[Queued]], Awaitable[None]]) -> None:
        self._run = run
        self._queues: dict[str, deque[Queued]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def busy(self, group: str) -> bool:
        """Whether a change to `group` is queued or in flight."""
        return group in self._tasks

    def submit(self, group: str, queued: Queued) -> None:
        self._queues.setdefault(group, deque()).append(queued)
        if group not in self._tasks:
            task = asyncio.get_running_loop().create_task(self._drain(group))
            self._tasks[group] = task

    async def _drain(self, group: str) -> None:
        queue = self._queues[group]
        try:
            while queue:
                # a caller that went away asks for nothing
                batch = [queued for queued in queue if not queued.answered]
                queue.clear()
                if not batch:
                    continue
                try:
                    await self._run(group, batch)
                except Exception as exc:  # every caller of the batch hears it
                    for queued in batch:
                        queued.fail(exc)
                except BaseException as exc:
                    for queued in (*batch, *queue):
                        queued.fail(exc)
                    queue.clear()
                    raise
                else:  # beyond MAX_BATCH writes: first in line for the next transaction
                    queue.extendleft(reversed([q for q in batch if not q.answered]))
        finally:
            del self._tasks[group]
            if not queue:
                del self._queues[group]

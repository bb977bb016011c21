"""The pre-reboot hooks and the health checks, run as tasks beside the agent's loop.

Each run's result comes back as an event on the agent's queue (HooksPassed/HooksFailed,
HealthPassed/HealthFailed). A task whose state was left (an operator released the hold, say)
is cancelled, so a late answer never arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from stagger.agent.log import why
from stagger.agent.runtime import Runtime
from stagger.backends.protocol import utcnow
from stagger.core.cycle.node_state import State
from stagger.core.cycle.vocabulary import (
    Event,
    HealthFailed,
    HealthPassed,
    HooksFailed,
    HooksPassed,
)
from stagger.core.errors import StaggerError

# The states in which a task's answer is still wanted.
HOOK_STATES = frozenset({State.DRAINING})
HEALTH_STATES = frozenset({State.VERIFYING, State.HALTED})


class CheckTasks:
    def __init__(
        self,
        rt: Runtime,
        queue: asyncio.Queue[Event],
        spawn: Callable[[Any], asyncio.Task[Any]],
    ) -> None:
        self.rt = rt
        self.queue = queue
        self.spawn = spawn
        self.hooks: asyncio.Task[None] | None = None
        self.health: asyncio.Task[None] | None = None

    def start_hooks(self, deadline: datetime | None, reason: str) -> None:
        self.hooks = self.spawn(self._run_hooks(deadline, reason))

    def start_health(self) -> None:
        self.health = self.spawn(self._run_health())

    def cancel_stale(self, cycle: State) -> None:
        """Cancel the tasks whose answer the node, now in `cycle`, no longer wants."""
        if self.hooks is not None and cycle not in HOOK_STATES:
            self.hooks.cancel()
            self.hooks = None
        if self.health is not None and cycle not in HEALTH_STATES:
            self.health.cancel()
            self.health = None

    def running(self) -> list[asyncio.Task[None]]:
        return [t for t in (self.hooks, self.health) if t and not t.done()]

    async def _run_hooks(self, deadline: datetime | None, reason: str) -> None:
        """The pre-reboot hooks; `reason` (why this node reboots) becomes STAGGER_REASON."""
        limit = None if deadline is None else max((deadline - utcnow()).total_seconds(), 0.0)
        try:
            async with asyncio.timeout(limit):
                outcome = await self.rt.pre_reboot.run(deadline, reason)
        except TimeoutError:
            self.queue.put_nowait(
                HooksFailed("the window closed before the pre-reboot hooks ended")
            )
            return
        except (StaggerError, OSError) as exc:
            self.queue.put_nowait(HooksFailed(why(exc)))
            return
        event = HooksPassed(outcome.detail) if outcome.ok else HooksFailed(outcome.detail)
        self.queue.put_nowait(event)

    async def _run_health(self) -> None:
        try:
            outcome = await self.rt.health.run()
        except (StaggerError, OSError) as exc:
            self.queue.put_nowait(HealthFailed(why(exc)))
            return
        event = HealthPassed(outcome.detail) if outcome.ok else HealthFailed(outcome.detail)
        self.queue.put_nowait(event)

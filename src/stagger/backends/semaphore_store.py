"""The Backend Protocol's changes, written once for every store that keeps semaphores itself
(sqlite.py, etcd/backend.py): validate the input, then run ONE core operation through the store's
own load-apply-write (`_apply`). A store supplies `_apply` and the reads; the operations, their
validation and what each one means after a write with an unknown outcome live here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from stagger.core import semaphore as core
from stagger.core.errors import ConfigError, InvalidInput
from stagger.core.semaphore import (
    DEFAULT_STALE_AFTER,
    FLEET,
    Change,
    Denied,
    Granted,
    Hold,
    NotHeld,
    Pause,
    Released,
    Semaphore,
    Urgent,
    validate_group,
    validate_id,
    validate_max,
    validate_node_id,
)
from stagger.core.turns import validate_percent

T = TypeVar("T")
# One core operation, given the group's value, the backend's `now`, and the FLEET record
# (the fleet-wide pause and the node pauses; None when not loaded or never written).
Op = Callable[[Semaphore, datetime, Semaphore | None], Change[T]]
# Given the group as re-read after a write with an unknown outcome and the outcome that write
# would have had: that outcome if the group shows the write took effect, else None (run the
# operation again on what is there now). Only a store whose writes can time out uses it.
Settle = Callable[[Semaphore, T], T | None]


def check_default_max(value: int) -> int:
    """The slots a never-configured group gets, checked as configuration."""
    try:
        return validate_max(value)
    except InvalidInput as exc:
        raise ConfigError(f"default_max: {exc.message}") from exc


class SemaphoreStore(ABC):
    """The changing half of the Backend Protocol over one abstract `_apply`."""

    @abstractmethod
    async def _apply(
        self,
        group: str,
        op: Op[T],
        *,
        what: str,
        with_fleet: bool = False,
        settle: Settle[T] | None = None,
    ) -> T:
        """Load `group` (and, `with_fleet`, the FLEET record), apply `op` at the backend's now,
        and write the result and its events atomically; write nothing when `op` changes
        nothing. `what` names the change in errors."""

    async def _hold_alive(self, group: str, node_id: str) -> bool:
        """Before a touch: False when the store already knows `node_id` holds nothing (so
        touch answers None). etcd refreshes the hold's lease here."""
        return True

    async def acquire(
        self, group: str, node_id: str, *, note: str = "", by: str | None = None
    ) -> Granted | Denied:
        validate_group(group)
        validate_id(node_id)

        def settle(sem: Semaphore, planned: Granted | Denied) -> Granted | Denied | None:
            held = sem.holds.get(node_id)
            if held is not None and isinstance(planned, Granted):
                return Granted(held, already_held=planned.already_held)
            return None

        return await self._apply(
            group,
            lambda sem, now, fleet: core.acquire(
                sem,
                node_id,
                now,
                note=note,
                fleet_pause=fleet.pause if fleet is not None else None,
                node_pause=core.node_pause_of(fleet, node_id, now),
                by=by,
            ),
            what=f"acquire {group}/{node_id}",
            with_fleet=True,
            settle=settle,
        )

    async def release(
        self, group: str, node_id: str, *, by: str | None = None
    ) -> Released | NotHeld:
        validate_group(group)
        validate_id(node_id)
        who = by or node_id

        def settle(sem: Semaphore, planned: Released | NotHeld) -> Released | NotHeld | None:
            return planned if node_id not in sem.holds else None

        return await self._apply(
            group,
            lambda sem, now, _: core.release(sem, node_id, now, by=who),
            what=f"release {group}/{node_id}",
            settle=settle,
        )

    async def touch(self, group: str, node_id: str) -> Hold | None:
        """Refresh the hold's last_seen (core decides how often that is written). None when
        `node_id` holds nothing (any more)."""
        validate_group(group)
        validate_id(node_id)
        if not await self._hold_alive(group, node_id):
            return None
        return await self._apply(
            group,
            lambda sem, now, _: core.touch(sem, node_id, now),
            what=f"touch {group}/{node_id}",
        )

    async def set_max(self, group: str, value: int, *, by: str, percent: bool = False) -> int:
        validate_group(group)
        if percent:
            validate_percent(value)
        else:
            validate_max(value)
        return await self._apply(
            group,
            lambda sem, now, _: core.set_max(sem, value, now, by=by, percent=percent),
            what=f"set-max {group}",
        )

    async def set_pace(self, group: str, pace: timedelta | None, *, by: str) -> timedelta | None:
        validate_group(group)
        return await self._apply(
            group,
            lambda sem, now, _: core.set_pace(sem, pace, now, by=by),
            what=f"set the pace of {group}",
        )

    async def configure(
        self,
        group: str,
        *,
        by: str,
        hold_ttl: timedelta | None,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
    ) -> Semaphore:
        validate_group(group)
        return await self._apply(
            group,
            lambda sem, now, _: core.configure(
                sem, now, by=by, hold_ttl=hold_ttl, stale_after=stale_after
            ),
            what=f"configure {group}",
        )

    async def pause(
        self, group: str | None, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause:
        target = FLEET if group is None else validate_group(group)

        def settle(sem: Semaphore, planned: Pause) -> Pause | None:
            return planned if sem.pause == planned else None

        return await self._apply(
            target,
            lambda sem, now, _: core.pause(sem, now, by=by, reason=reason, until=until),
            what=f"pause {group or 'all groups'}",
            settle=settle,
        )

    async def resume(self, group: str | None, *, by: str) -> Pause | None:
        target = FLEET if group is None else validate_group(group)

        def settle(sem: Semaphore, planned: Pause | None) -> Pause | None:
            return planned if sem.pause is None else None

        return await self._apply(
            target,
            lambda sem, now, _: core.resume(sem, now, by=by),
            what=f"resume {group or 'all groups'}",
            settle=settle,
        )

    async def pause_node(
        self, node_id: str, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause:
        """Pause one node in every group: a change to the FLEET record, which every acquire
        reads and guards, so no grant slips past it."""
        validate_node_id(node_id)

        def settle(sem: Semaphore, planned: Pause) -> Pause | None:
            return planned if sem.node_pauses.get(node_id) == planned else None

        return await self._apply(
            FLEET,
            lambda sem, now, _: core.pause_node(
                sem, node_id, now, by=by, reason=reason, until=until
            ),
            what=f"pause node {node_id}",
            settle=settle,
        )

    async def resume_node(self, node_id: str, *, by: str) -> Pause | None:
        validate_id(node_id)

        def settle(sem: Semaphore, planned: Pause | None) -> Pause | None:
            return planned if node_id not in sem.node_pauses else None

        return await self._apply(
            FLEET,
            lambda sem, now, _: core.resume_node(sem, node_id, now, by=by),
            what=f"resume node {node_id}",
            settle=settle,
        )

    async def ask_reboot(
        self, node_id: str, *, by: str, reason: str, ignore_blackouts: bool = False
    ) -> Urgent:
        validate_node_id(node_id)

        def settle(sem: Semaphore, planned: Urgent) -> Urgent | None:
            return planned if sem.urgent_reboots.get(node_id) == planned else None

        return await self._apply(
            FLEET,
            lambda sem, now, _: core.ask_reboot(
                sem, node_id, now, by=by, reason=reason, ignore_blackouts=ignore_blackouts
            ),
            what=f"ask node {node_id} to reboot",
            settle=settle,
        )

    async def clear_reboot(
        self, node_id: str, *, done_by: datetime | None = None, group: str | None = None
    ) -> Urgent | None:
        validate_id(node_id)

        def settle(sem: Semaphore, planned: Urgent | None) -> Urgent | None:
            return planned if sem.urgent_reboots.get(node_id) != planned else None

        return await self._apply(
            FLEET,
            lambda sem, now, _: core.clear_reboot(sem, node_id, now, done_by=done_by),
            what=f"clear node {node_id}'s reboot ask",
            settle=settle,
        )

"""The record the agent persists for its node: the cycle's states, the need, the last checks,
and the codec that saves and reads it back (plain JSON types, times as RFC 3339).

The states are here, with the record whose `cycle` field holds one, so that the vocabulary
(vocabulary.py, whose Persist action carries a NodeState) only ever imports this file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class State(StrEnum):
    IDLE = "idle"  # no reboot is needed
    WAITING = "waiting"  # needed; waiting for the window, a pause to end, a slot or a back-off
    ACQUIRING = "acquiring"  # a slot was asked for; its answer is awaited
    DRAINING = "draining"  # pre-reboot hooks run (with a slot when the strategy needs one)
    REBOOTING = "rebooting"  # the reboot was asked for; the next start tells if it happened
    VERIFYING = "verifying"  # after the reboot: health checks run, the slot is kept meanwhile
    RELEASING = "releasing"  # health passed: the slot is given back
    # Why ABORTING exists: the slot goes back without a reboot, and the node returns to WAITING
    # with back-off instead of IDLE; the release may fail and be retried like RELEASING's.
    ABORTING = "aborting"
    HALTED = "halted"  # health failed after the reboot: the slot is kept, the rollout stops
    # Why DISABLED exists: /etc/stagger/disabled; the node reports its need, never reboots.
    DISABLED = "disabled"


# States in which the node rests with nothing in flight; the gates are judged again there.
RESTING = frozenset({State.IDLE, State.WAITING, State.DISABLED})


# --- values the agent persists --------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """A detector said a reboot is needed: which one, what it said, since when."""

    since: datetime
    detector: str
    detail: str = ""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a round of hooks or health checks."""

    ok: bool
    detail: str
    at: datetime


@dataclass(frozen=True)
class NodeState:
    """Everything the agent saves, and later what node reports publish."""

    cycle: State = State.IDLE
    since: datetime | None = None  # when `cycle` was entered
    reason: str = "no reboot is needed"  # one sentence: why the node is where it is
    needed: Need | None = None
    holds_slot: bool = False
    boot_id: str | None = None  # the boot the agent last ran in
    boot_id_at_reboot: str | None = None  # the boot in which the reboot was asked for
    attempts: int = 0  # aborted attempts in a row (drives the back-off)
    retry_at: datetime | None = None  # WAITING: no new attempt before this (back-off, denial)
    backend_retry_at: datetime | None = None  # a failed slot request or release is sent again
    last_hooks: CheckResult | None = None
    last_health: CheckResult | None = None
    next_check_at: datetime | None = None  # HALTED: when health is checked again
    last_reboot: datetime | None = None
    last_touch: datetime | None = None
    # Needs the machine has booted with since the need last went away (the reboot-loop guard):
    # the same need again was not cleared by a reboot and starts no other one. Newest last.
    rebooted_for: tuple[Need, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (times as RFC 3339), for the state store and node reports."""
        return {k: _dump(getattr(self, k)) for k in _FIELDS}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> NodeState:
        """The inverse of to_dict; unknown keys (from a newer agent) are ignored."""
        values: dict[str, Any] = {}
        for key in _FIELDS:
            if key in doc:
                values[key] = _LOAD.get(key, _identity)(doc[key])
        return cls(**values)


_FIELDS = tuple(NodeState.__dataclass_fields__)


def _dump(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, State):
        return value.value
    if isinstance(value, Need | CheckResult):
        return {k: _dump(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


def _identity(value: Any) -> Any:
    return value


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _need(value: Any) -> Need | None:
    if value is None:
        return None
    return Need(datetime.fromisoformat(value["since"]), value["detector"], value.get("detail", ""))


def _needs(value: Any) -> tuple[Need, ...]:
    return tuple(n for n in map(_need, value or ()) if n is not None)


def _check(value: Any) -> CheckResult | None:
    if value is None:
        return None
    return CheckResult(bool(value["ok"]), value["detail"], datetime.fromisoformat(value["at"]))


_LOAD: dict[str, Callable[[Any], Any]] = {
    "cycle": State,
    "since": _time,
    "needed": _need,
    "retry_at": _time,
    "backend_retry_at": _time,
    "last_hooks": _check,
    "last_health": _check,
    "next_check_at": _time,
    "last_reboot": _time,
    "last_touch": _time,
    "rebooted_for": _needs,
}

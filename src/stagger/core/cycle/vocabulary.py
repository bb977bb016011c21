"""The words of the node cycle: what it is told (the Context, the events) and what it asks the
agent to do (the actions). The states it moves between are in node_state.py, with the record
that holds one. Nothing here decides anything; decide.py does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from stagger.core.cycle.node_state import NodeState
from stagger.core.schedule import Schedule
from stagger.core.semaphore import Pause, Urgent
from stagger.core.strategy import Strategy

# --- what the machine is told ---------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """How long the agent waits between tries. Defaults for production; tests shorten them."""

    touch_interval: timedelta = timedelta(minutes=1)  # heartbeat while a slot is held
    retry_interval: timedelta = timedelta(seconds=30)  # after a denial or a backend error
    backoff_base: timedelta = timedelta(minutes=1)  # first wait after an aborted attempt
    backoff_max: timedelta = timedelta(hours=1)
    health_recheck: timedelta = timedelta(minutes=1)  # HALTED: checks run again this often

    def backoff(self, attempts: int) -> timedelta:
        """Doubling from backoff_base, capped at backoff_max."""
        factor = 1 << max(0, min(attempts - 1, 30))
        return min(self.backoff_base * factor, self.backoff_max)

    def retry_at(self, now: datetime, beat: float) -> datetime:
        """When a refused node (or one whose backend failed) asks again: on its own beat, the
        instants `beat`·retry_interval past each multiple of retry_interval since the Unix
        epoch, the first one at least half an interval after `now`. Nodes whose beats differ
        so never poll in lockstep, however they learnt of their need: a freed slot is asked
        for within retry_interval / fleet size. The wait is ½ to 1½ intervals, one on average."""
        period = max(1, self.retry_interval // _US)
        offset = int(beat * period) % period
        earliest = (now - _EPOCH) // _US + period // 2
        beats = -(-(earliest - offset) // period)  # ceiling division
        return _EPOCH + (offset + beats * period) * _US


_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def beat_of(node_id: str) -> float:
    """A node's beat in [0, 1), from its id: the same on every start, spread evenly over a
    fleet (a hash, never a random draw, so the machine stays a function of its inputs)."""
    digest = hashlib.sha256(node_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Context:
    """What the shell knows besides the event: the strategy, the schedule, the pause in force
    (from the backend), whether the backend answered at start, the disabled flag, and whether
    the configuration names a backend at all."""

    strategy: Strategy
    schedule: Schedule = field(default_factory=Schedule)
    pause: Pause | None = None
    # An operator's emergency reboot of this node (stagger need-reboot --now), if one is asked
    # for the need in hand: it opens the window, never a pause (nor a blackout unless it says so).
    urgent: Urgent | None = None
    backend_reachable: bool = True
    backend_configured: bool = True
    disabled: bool = False
    dry_run: bool = False
    timings: Timings = field(default_factory=Timings)
    beat: float = 0.0  # this node's place within a retry interval (beat_of its id)


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Needed:
    """At least one detector says a reboot is needed."""

    detector: str
    detail: str = ""


@dataclass(frozen=True)
class NotNeeded:
    """No detector says a reboot is needed any more. `unknown`: one could not answer (unknown
    is never a reboot, but neither does it show that a need went away)."""

    detector: str = ""
    detail: str = ""
    unknown: bool = False


@dataclass(frozen=True)
class Tick:
    """Time passed (a WakeAt came due, or the agent's periodic look)."""


@dataclass(frozen=True)
class PauseChanged:
    """The pause in force changed; the new one is in the Context."""


@dataclass(frozen=True)
class Restarted:
    """The agent started in the boot it last ran in: a restart, not a reboot."""

    boot_id: str


@dataclass(frozen=True)
class BootDetected:
    """The agent started in a new boot: the machine rebooted."""

    boot_id: str


@dataclass(frozen=True)
class SlotGranted:
    pass


@dataclass(frozen=True)
class SlotDenied:
    sentence: str


@dataclass(frozen=True)
class HooksPassed:
    detail: str = ""


@dataclass(frozen=True)
class HooksFailed:
    detail: str


@dataclass(frozen=True)
class RebootFailed:
    """The rebooter reported an error: the reboot did not start (or we cannot tell)."""

    detail: str


@dataclass(frozen=True)
class HealthPassed:
    detail: str = ""


@dataclass(frozen=True)
class HealthFailed:
    detail: str


@dataclass(frozen=True)
class Released:
    pass


@dataclass(frozen=True)
class ReleasedByOperator:
    """The heartbeat found no hold: an operator released it (`stagger unlock --id`)."""

    detail: str = ""


@dataclass(frozen=True)
class BackendError:
    detail: str


Event = (
    Needed
    | NotNeeded
    | Tick
    | PauseChanged
    | Restarted
    | BootDetected
    | SlotGranted
    | SlotDenied
    | HooksPassed
    | HooksFailed
    | RebootFailed
    | HealthPassed
    | HealthFailed
    | Released
    | ReleasedByOperator
    | BackendError
)


def start_event(state: NodeState, boot_id: str) -> Restarted | BootDetected:
    """The first event of every agent start: did the machine reboot since the last run?"""
    if state.boot_id is not None and state.boot_id != boot_id:
        return BootDetected(boot_id)
    return Restarted(boot_id)


# --- actions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Persist:
    """Save `state` atomically; always before the effects that follow it."""

    state: NodeState


@dataclass(frozen=True)
class RequestSlot:
    note: str = ""


@dataclass(frozen=True)
class RunPreRebootHooks:
    deadline: datetime | None  # the window's end (None: the schedule stays open)


@dataclass(frozen=True)
class Reboot:
    reason: str


@dataclass(frozen=True)
class RunHealthChecks:
    pass


@dataclass(frozen=True)
class ReleaseSlot:
    pass


@dataclass(frozen=True)
class Touch:
    """Heartbeat the hold; no hold found means an operator released it."""


@dataclass(frozen=True)
class RecordEvent:
    """Something an operator should hear about (history, log, later notifications)."""

    kind: str
    detail: str


@dataclass(frozen=True)
class WakeAt:
    """Send a Tick at `at` (replaces any earlier wake-up)."""

    at: datetime


Action = (
    Persist
    | RequestSlot
    | RunPreRebootHooks
    | Reboot
    | RunHealthChecks
    | ReleaseSlot
    | Touch
    | RecordEvent
    | WakeAt
)
# Actions with an effect outside the process: each needs the state persisted first.
EFFECTS = (RequestSlot, RunPreRebootHooks, Reboot, RunHealthChecks, ReleaseSlot, Touch)

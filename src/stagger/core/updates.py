"""When the agent asks the host's updater for an update: the update schedule, as pure code.

Rules of this file:
- Pure: `now` and the random `draw` (a float in [0, 1)) are arguments; nothing here reads the
  clock, draws a random number or does I/O. The agent, `stagger explain`, `stagger update-now`
  and the tests all ask `decide` and never re-implement it.
- The update schedule is separate from the reboot windows: an update may be downloaded and
  installed at any time (or inside the optional `[[updates.window]]` list); the reboot it
  needs still waits for the reboot windows, a slot and the hooks.
- One update at a time: no attempt while a reboot is pending (needed, waiting, or anywhere in
  the node's cycle). Apply one update, reboot into it, then look for the next.
- A pause stops reboots only; it is not an input here, so updates keep flowing.
- Attempts are spread: each next attempt is one interval ± jitter after the last one ended
  (update_engine itself uses 45 ± 5 min), so a fleet does not hit its mirror at the same
  second. The very first attempt comes within `jitter × interval` of the agent's start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from stagger.core.cycle.gates import withheld
from stagger.core.cycle.node_state import NodeState, State
from stagger.core.durations import format_duration
from stagger.core.errors import InvalidInput
from stagger.core.schedule import HORIZON, Schedule

UPDATER_NAMES = ("none", "update_engine", "command")
DEFAULT_UPDATER = "none"
DEFAULT_INTERVAL = timedelta(hours=1)
DEFAULT_JITTER = 0.10
MAX_JITTER = 0.5  # beyond ±50 % the "interval" no longer says when the next attempt comes
MAX_DETAIL = 500


class UpdateVerdict(StrEnum):
    ATTEMPT = "attempt"  # ask the updater now
    WAIT = "wait"  # not due yet, or the update windows are closed
    BLOCKED = "blocked"  # a reboot is pending: the next update waits for it
    OFF = "off"  # updates are off on this node, or the host's own timer applies them


class Outcome(StrEnum):
    OK = "ok"  # the updater ran and succeeded (an update applied, or none available)
    FAILED = "failed"  # it ran and failed, or could not be run: retried at the next interval
    SKIPPED = "skipped"  # it was not asked (update_engine busy or already waiting for a reboot)


@dataclass(frozen=True)
class UpdatePolicy:
    """The `[updates]` table as core sees it."""

    updater: str = DEFAULT_UPDATER
    enabled: bool = True
    interval: timedelta = DEFAULT_INTERVAL
    jitter: float = DEFAULT_JITTER
    windows: Schedule = field(default_factory=Schedule)

    def __post_init__(self) -> None:
        if self.updater not in UPDATER_NAMES:
            raise InvalidInput(f"updater {self.updater!r} is not known: use one of {UPDATER_NAMES}")
        if self.interval <= timedelta(0):
            raise InvalidInput("the update interval must be longer than 0 s, like '1h'")
        if not 0.0 <= self.jitter <= MAX_JITTER:
            raise InvalidInput(
                f"the update jitter must be between 0 and {MAX_JITTER:.0%} of the interval, "
                "like '10%'"
            )


@dataclass(frozen=True)
class UpdateAttempt:
    """One attempt: when it started, how it ended, how long it took, and who asked for it."""

    at: datetime
    outcome: Outcome
    detail: str
    seconds: float = 0.0
    trigger: str = "schedule"  # "schedule" or "update-now"

    @property
    def ended(self) -> datetime:
        return self.at + timedelta(seconds=max(self.seconds, 0.0))


@dataclass(frozen=True)
class UpdatesState:
    """What the agent saves about updates (next to the node's state, under "updates")."""

    last: UpdateAttempt | None = None
    next_attempt: datetime | None = None  # the planned attempt (drawn once, kept on restart)
    failures: int = 0  # failed attempts in a row

    def to_dict(self) -> dict[str, Any]:
        last = self.last
        return {
            "last": None
            if last is None
            else {
                "at": last.at.isoformat(),
                "outcome": last.outcome.value,
                "detail": last.detail,
                "seconds": last.seconds,
                "trigger": last.trigger,
            },
            "next_attempt": None if self.next_attempt is None else self.next_attempt.isoformat(),
            "failures": self.failures,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> UpdatesState:
        """The inverse of to_dict; raises KeyError/ValueError/TypeError on a bad document."""
        raw = doc.get("last")
        last = None
        if raw is not None:
            last = UpdateAttempt(
                datetime.fromisoformat(raw["at"]),
                Outcome(raw["outcome"]),
                str(raw.get("detail", "")),
                float(raw.get("seconds", 0.0)),
                str(raw.get("trigger", "schedule")),
            )
        nxt = doc.get("next_attempt")
        return cls(
            last,
            None if nxt is None else datetime.fromisoformat(nxt),
            int(doc.get("failures", 0)),
        )


@dataclass(frozen=True)
class UpdateDecision:
    verdict: UpdateVerdict
    reason: str  # one sentence for an operator
    due: datetime | None = None  # the planned attempt (to keep as next_attempt)
    at: datetime | None = None  # when to look again (ATTEMPT: now; None: when something changes)


# --- the pieces -------------------------------------------------------------------------------


def _check_draw(draw: float) -> None:
    if not 0.0 <= draw < 1.0:
        raise InvalidInput(f"a random draw must be in [0, 1), not {draw!r}")


def jittered(interval: timedelta, jitter: float, draw: float) -> timedelta:
    """`interval` moved by up to ±`jitter` of itself: draw 0 is the shortest, 0.5 the interval
    itself, and draws near 1 the longest."""
    _check_draw(draw)
    return interval * (1.0 + jitter * (2.0 * draw - 1.0))


def first_attempt(now: datetime, policy: UpdatePolicy, draw: float) -> datetime:
    """A node with no attempt on record tries within `jitter × interval` of now, so a fleet
    started at once (after a power cut, say) is spread too."""
    _check_draw(draw)
    return now + policy.interval * (policy.jitter * draw)


def plan_next(last: UpdateAttempt, policy: UpdatePolicy, draw: float) -> datetime:
    """One interval ± jitter after the last attempt ended, whatever its outcome: a failure is
    retried at the next interval, not sooner (the mirror may be what failed)."""
    return last.ended + jittered(policy.interval, policy.jitter, draw)


def record(
    state: UpdatesState, attempt: UpdateAttempt, policy: UpdatePolicy, draw: float
) -> UpdatesState:
    """The state after `attempt`: it is the last one, and the next is planned."""
    detail = attempt.detail if len(attempt.detail) <= MAX_DETAIL else attempt.detail[:MAX_DETAIL]
    attempt = replace(attempt, detail=detail)
    failures = state.failures + 1 if attempt.outcome is Outcome.FAILED else 0
    return UpdatesState(attempt, plan_next(attempt, policy, draw), failures)


def reboot_pending(node: NodeState) -> str | None:
    """Why a reboot is pending on this node (needed, waiting, or in its cycle), or None. A need
    the last reboot did not clear is not pending: the next update may be what clears it."""
    if node.cycle is State.WAITING and withheld(node) is not None:
        return None
    if node.cycle not in (State.IDLE, State.DISABLED):
        if node.needed is not None:
            return f"the node is {node.cycle.value} for a reboot ({node.needed.detector})"
        return f"the node is {node.cycle.value} in its reboot cycle"
    if node.needed is not None:
        return f"a reboot is needed ({node.needed.detector}) and has not happened yet"
    return None


def off_reason(policy: UpdatePolicy) -> str | None:
    if not policy.enabled:
        return (
            "updates are off on this node ([updates] enabled = false): stagger asks for no "
            "update here until it is turned back on"
        )
    if policy.updater == "none":
        return (
            "[updates] updater = 'none': the host's own timer applies updates; stagger only "
            "coordinates the reboots"
        )
    return None


# --- the decision -----------------------------------------------------------------------------


def due_at(state: UpdatesState, policy: UpdatePolicy, now: datetime, draw: float) -> datetime:
    """The planned attempt: the one on record, else one planned from the last attempt, else
    the first. A plan made under a longer interval is pulled in to the current one."""
    if state.last is not None:
        latest = state.last.ended + policy.interval * (1.0 + policy.jitter)
        if state.next_attempt is not None:
            return min(state.next_attempt, latest)
        return plan_next(state.last, policy, draw)
    if state.next_attempt is not None:
        return min(state.next_attempt, now + policy.interval * policy.jitter)
    return first_attempt(now, policy, draw)


def decide(
    policy: UpdatePolicy,
    state: UpdatesState,
    now: datetime,
    draw: float,
    pending: str | None,
    *,
    asked: bool = False,
) -> UpdateDecision:
    """Attempt an update now, or when to look again, and why. `pending` is `reboot_pending`'s
    answer. `asked` (stagger update-now) skips the interval and the update windows, never the
    off switch nor a pending reboot."""
    off = off_reason(policy)
    if off is not None:
        return UpdateDecision(UpdateVerdict.OFF, off)
    due = due_at(state, policy, now, draw)
    if pending is not None:
        return UpdateDecision(
            UpdateVerdict.BLOCKED,
            f"no update attempt while a reboot is pending ({pending}): one update is applied "
            "and rebooted into before the next is looked for",
            due,
        )
    if asked:
        return UpdateDecision(UpdateVerdict.ATTEMPT, "asked for by stagger update-now", due, now)
    start = max(now, due)
    if policy.windows.always_open:
        opens: datetime | None = start
    else:
        opens = policy.windows.next_open(start)
    if opens is None:
        return UpdateDecision(
            UpdateVerdict.WAIT,
            f"no update window opens within the next {HORIZON.days} days: check [[updates.window]]",
            due,
        )
    if opens > now:
        if opens == due:
            why = f"the next update attempt is due at {due.isoformat()}"
        else:
            why = (
                f"the next update attempt waits for the update windows, which open at "
                f"{opens.isoformat()}"
            )
        return UpdateDecision(
            UpdateVerdict.WAIT, f"{why} (in {format_duration(opens - now)})", due, opens
        )
    return UpdateDecision(
        UpdateVerdict.ATTEMPT, f"an update attempt is due (planned for {due.isoformat()})", due, now
    )

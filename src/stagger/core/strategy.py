"""Whether a node may reboot now, and whether it needs a slot first.

Rules of this file:
- The strategy decides *whether* a slot is needed, the schedule *when*, and a pause overrides
  both. Everything that combines them lives here, as tables; the agent's machine
  (core/cycle/) and `stagger explain` call `decide` and never re-implement it.
- Pure: the caller judges the schedule and the pause at `now` and passes the answers in.
- best-effort is locksmith's meaning: take a slot when the backend answered when the agent
  started, otherwise reboot like `immediate`. It is judged once, at start, not per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from stagger.core.errors import InvalidInput
from stagger.core.semaphore import Pause


class Strategy(StrEnum):
    OFF = "off"
    IMMEDIATE = "immediate"
    LOCK = "lock"
    BEST_EFFORT = "best-effort"


DEFAULT_STRATEGY = Strategy.LOCK
ALLOWED_STRATEGIES = ", ".join(s.value for s in Strategy)


def parse_strategy(text: str) -> Strategy:
    try:
        return Strategy(text.strip().lower())
    except ValueError:
        raise InvalidInput(
            f"strategy {text!r} is not known: use one of {ALLOWED_STRATEGIES}"
        ) from None


class Verdict(StrEnum):
    """What the node should do next."""

    IDLE = "idle"  # nothing to do: no reboot is needed
    WAIT = "wait"  # a reboot is needed but may not start now
    ACQUIRE = "acquire"  # take a slot, then reboot
    REBOOT = "reboot"  # reboot without a slot


class Reason(StrEnum):
    """Why: the same codes appear in `stagger explain`, the status API and metrics."""

    NOT_NEEDED = "not_needed"
    STRATEGY_OFF = "strategy_off"
    NOT_CONFIGURED = "not_configured"
    PAUSED = "paused"
    WINDOW_CLOSED = "window_closed"
    SLOT_REQUIRED = "slot_required"
    NO_SLOT_NEEDED = "no_slot_needed"
    BACKEND_ANSWERED = "backend_answered"
    BACKEND_UNREACHABLE = "backend_unreachable"


@dataclass(frozen=True)
class Situation:
    """What the caller knows at `now`. `schedule_why` is Schedule.why(now); `pause` is the pause
    in force for the node's group (or the fleet), if any; `backend_reachable` is whether the
    backend answered when the agent started (it only matters for best-effort);
    `backend_configured` is whether the configuration names a backend at all."""

    reboot_needed: bool
    window_open: bool
    pause: Pause | None = None
    backend_reachable: bool = True
    schedule_why: str = ""
    backend_configured: bool = True


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: Reason
    sentence: str

    @property
    def needs_slot(self) -> bool:
        return self.verdict is Verdict.ACQUIRE


# Once a reboot is needed, the schedule is open and nothing is paused: does the strategy ask
# for a slot? Keyed by (strategy, backend answered at start). `off` never gets this far.
SLOT_TABLE: dict[tuple[Strategy, bool], tuple[Verdict, Reason]] = {
    (Strategy.IMMEDIATE, True): (Verdict.REBOOT, Reason.NO_SLOT_NEEDED),
    (Strategy.IMMEDIATE, False): (Verdict.REBOOT, Reason.NO_SLOT_NEEDED),
    (Strategy.LOCK, True): (Verdict.ACQUIRE, Reason.SLOT_REQUIRED),
    (Strategy.LOCK, False): (Verdict.ACQUIRE, Reason.SLOT_REQUIRED),
    (Strategy.BEST_EFFORT, True): (Verdict.ACQUIRE, Reason.BACKEND_ANSWERED),
    (Strategy.BEST_EFFORT, False): (Verdict.REBOOT, Reason.BACKEND_UNREACHABLE),
}

SENTENCES: dict[Reason, str] = {
    Reason.NOT_NEEDED: "no reboot is needed",
    Reason.STRATEGY_OFF: "a reboot is needed, but the strategy is 'off': this node never "
    "reboots on its own (reboot it by hand, or set another strategy)",
    Reason.NOT_CONFIGURED: "a reboot is needed, but no backend is configured: this node never "
    "reboots until [agent] backend names the fleet's (a stagger server or etcd) in "
    "/etc/stagger/config.d/*.toml, or [agent] strategy = 'immediate' lets it reboot on its own",
    Reason.PAUSED: "a reboot is needed, but reboots are paused{pause}",
    Reason.WINDOW_CLOSED: "a reboot is needed; waiting for the schedule ({why})",
    Reason.SLOT_REQUIRED: "a reboot is needed and the schedule is open; strategy 'lock' takes "
    "a slot first",
    Reason.NO_SLOT_NEEDED: "a reboot is needed and the schedule is open; strategy 'immediate' "
    "reboots without a slot",
    Reason.BACKEND_ANSWERED: "a reboot is needed and the schedule is open; strategy "
    "'best-effort' takes a slot because the backend answered at start",
    Reason.BACKEND_UNREACHABLE: "a reboot is needed and the schedule is open; strategy "
    "'best-effort' reboots without a slot because the backend did not answer at start",
}


UNCONFIGURED_NOTE = (
    "not configured: no [agent] backend is set in /etc/stagger/config.d/*.toml, so this node "
    "never reboots (name the fleet's stagger server or etcd there, or set [agent] strategy = "
    "'immediate' to reboot without coordination)"
)


def unconfigured(strategy: Strategy, backend_configured: bool) -> bool:
    """Nobody told this agent whom to coordinate with: it must never reboot. Only 'immediate'
    needs no backend, and 'off' never reboots anyway."""
    return not backend_configured and strategy not in (Strategy.IMMEDIATE, Strategy.OFF)


def _pause_text(pause: Pause | None) -> str:
    if pause is None:
        return ""
    until = f" until {pause.until.isoformat()}" if pause.until else ""
    return f" by {pause.by}{until}: {pause.reason}"


def decide(strategy: Strategy, situation: Situation) -> Decision:
    """The gates, in order: needed? strategy off? a backend to coordinate with (unless the
    strategy is 'immediate', which needs none)? paused? schedule open? then SLOT_TABLE.
    An agent nobody configured never reboots: without a backend it would take its slot from
    a file on the host itself, coordinated with no one."""
    s = situation
    if not s.reboot_needed:
        reason, verdict = Reason.NOT_NEEDED, Verdict.IDLE
    elif strategy is Strategy.OFF:
        reason, verdict = Reason.STRATEGY_OFF, Verdict.WAIT
    elif unconfigured(strategy, s.backend_configured):
        reason, verdict = Reason.NOT_CONFIGURED, Verdict.WAIT
    elif s.pause is not None:
        reason, verdict = Reason.PAUSED, Verdict.WAIT
    elif not s.window_open:
        reason, verdict = Reason.WINDOW_CLOSED, Verdict.WAIT
    else:
        verdict, reason = SLOT_TABLE[(strategy, s.backend_reachable)]
    sentence = SENTENCES[reason].format(pause=_pause_text(s.pause), why=s.schedule_why or "closed")
    return Decision(verdict, reason, sentence)

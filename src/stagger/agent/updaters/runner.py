"""The agent's update schedule, carried out: the shell around core/updates.py.

The agent calls `poke(now)` after every event and whenever its timer fires; core's `decide`
says whether an attempt is due, and `wake_at()` says when to look again. At most one attempt
runs at a time, as a task; its result is recorded (the state file's "updates" object, through
the agent's `save`) and logged, and the next attempt is planned one interval ± jitter later.
`update_now` is `stagger update-now`, reached through the control socket.

Rules: the decision is core's (never re-made here); the planned attempt is saved before the
updater is asked (persist before every outside effect); a pause does not reach this file, so
updates keep flowing while reboots are paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from stagger.agent import log as agentlog
from stagger.agent.updaters.base import Updater, UpdateResult, UpdaterSpec
from stagger.core.errors import StaggerError
from stagger.core.times import rfc3339
from stagger.core.updates import (
    Outcome,
    UpdateAttempt,
    UpdateDecision,
    UpdatePolicy,
    UpdatesState,
    UpdateVerdict,
    decide,
    record,
)

STATE_KEY = "updates"
LOGGED_OUTPUT_LINES = 5


def _utcnow() -> datetime:
    return datetime.now(UTC)


class UpdateRunner:
    def __init__(
        self,
        policy: UpdatePolicy,
        spec: UpdaterSpec,
        logger: logging.Logger,
        save: Callable[[], None],
        pending: Callable[[], str | None],
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = _utcnow,
        on_done: Callable[[], None] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.policy = policy
        self.spec = spec
        self.log = logger
        self.save = save
        self.pending = pending
        self.rng = rng or random.Random()
        self.clock = clock
        self.on_done = on_done
        # --dry-run: a scheduled attempt is logged, never run (`update-now` still runs: asked).
        self.dry_run = dry_run
        self._dry_logged: datetime | None = None  # the due time last logged as not run
        self.state = UpdatesState()
        self.task: asyncio.Task[UpdateResult] | None = None
        self.current: UpdateAttempt | None = None  # the attempt in flight, for status
        self._updater: Updater | None = None

    # --- the saved record ---------------------------------------------------------------------

    def load(self, doc: Mapping[str, Any] | None) -> None:
        """Take the "updates" object of the saved state document. One that cannot be read is
        logged and replaced: it holds no slot, only when to try next."""
        raw = (doc or {}).get(STATE_KEY)
        if raw is None:
            return
        try:
            self.state = UpdatesState.from_dict(raw)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            agentlog.event(self.log, "update record unreadable", logging.WARNING, error=repr(exc))

    def to_dict(self) -> dict[str, Any]:
        return self.state.to_dict()

    # --- the schedule -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def decide(self, now: datetime, asked: bool = False) -> UpdateDecision:
        return decide(self.policy, self.state, now, self.rng.random(), self.pending(), asked=asked)

    def _plan(self, decision: UpdateDecision) -> None:
        """Keep the planned attempt, so a restart does not draw a new one."""
        if decision.verdict is not UpdateVerdict.OFF and decision.due != self.state.next_attempt:
            self.state = UpdatesState(self.state.last, decision.due, self.state.failures)
            self.save()

    def poke(self, now: datetime) -> asyncio.Task[UpdateResult] | None:
        """Start an attempt when one is due (and none is running); the attempt started."""
        if self.running:
            return None
        decision = self.decide(now)
        self._plan(decision)
        if decision.verdict is not UpdateVerdict.ATTEMPT:
            return None
        if self.dry_run:
            if self._dry_logged != decision.due:
                self._dry_logged = decision.due
                agentlog.event(
                    self.log,
                    "dry_run",
                    would="attempt an update",
                    updater=self.spec.name,
                    reason=decision.reason,
                )
            return None
        return self._start("schedule", now)

    def wake_at(self, now: datetime) -> datetime | None:
        """When the schedule wants to be looked at again (None: only when something happens)."""
        if self.running:
            return None
        decision = self.decide(now)
        return decision.at if decision.verdict is UpdateVerdict.WAIT else None

    # --- attempts -----------------------------------------------------------------------------

    def _start(self, trigger: str, now: datetime) -> asyncio.Task[UpdateResult]:
        self.current = UpdateAttempt(now, Outcome.SKIPPED, "running", 0.0, trigger)
        task = asyncio.get_running_loop().create_task(self._run(trigger, now))
        self.task = task
        return task

    def _updater_now(self) -> Updater:
        if self._updater is None:
            from stagger.agent.updaters.factory import build_updater

            self._updater = build_updater(self.spec)
        return self._updater

    async def _run(self, trigger: str, started: datetime) -> UpdateResult:
        name = self.spec.name
        agentlog.event(self.log, "update attempt", updater=name, trigger=trigger)
        level = logging.INFO if name == "update_engine" else logging.DEBUG

        def progress(line: str) -> None:
            agentlog.event(self.log, "update progress", level, updater=name, line=line)

        try:
            result = await self._updater_now().attempt(progress)
        except StaggerError as exc:  # the updater could not be built or run at all
            result = UpdateResult(Outcome.FAILED, exc.message)
        except OSError as exc:
            result = UpdateResult(Outcome.FAILED, f"the updater could not run: {exc}")
        attempt = UpdateAttempt(started, result.outcome, result.detail, result.seconds, trigger)
        self.state = record(self.state, attempt, self.policy, self.rng.random())
        self.current = None
        failed = result.outcome is Outcome.FAILED
        agentlog.event(
            self.log,
            "update attempt ended",
            logging.WARNING if failed else logging.INFO,
            updater=name,
            trigger=trigger,
            outcome=result.outcome.value,
            seconds=f"{result.seconds:.1f}",
            detail=result.detail,
            output=" | ".join(result.output[-LOGGED_OUTPUT_LINES:]) or None,
            next_attempt=self.state.next_attempt.isoformat() if self.state.next_attempt else None,
            failures=self.state.failures or None,
        )
        try:
            self.save()
        except StaggerError as exc:
            agentlog.event(self.log, "update record not saved", logging.ERROR, error=exc.message)
        if self.on_done is not None:
            self.on_done()
        return result

    async def update_now(self, wait: bool) -> dict[str, Any]:
        """`stagger update-now` through the control socket: one attempt now, unless updates
        are off here or a reboot is pending. A running attempt is joined, not doubled."""
        now = self.clock()
        joined = self.running
        if self.task is not None and joined:
            task = self.task
            reason = "an update attempt was already running; it is the one reported"
        else:
            decision = self.decide(now, asked=True)
            if decision.verdict is not UpdateVerdict.ATTEMPT:
                return {"ok": False, "verdict": decision.verdict.value, "error": decision.reason}
            self._plan(decision)
            task = self._start("update-now", now)
            reason = decision.reason
        answer: dict[str, Any] = {"ok": True, "started": not joined, "reason": reason}
        if not wait:
            answer["attempt"] = None
            return answer
        result = await asyncio.shield(task)
        answer["attempt"] = result_doc(self.state.last, result)
        answer["next_attempt"] = _iso(self.state.next_attempt)
        return answer

    def status(self, now: datetime) -> dict[str, Any]:
        decision = self.decide(now)
        return {
            "updater": self.spec.name,
            "enabled": self.policy.enabled,
            "running": self.running,
            "record": self.state.to_dict(),
            "decision": {
                "verdict": decision.verdict.value,
                "reason": decision.reason,
                "due": _iso(decision.due),
                "at": _iso(decision.at),
            },
        }

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


def result_doc(attempt: UpdateAttempt | None, result: UpdateResult) -> dict[str, Any]:
    """An attempt as the control socket and `update-now --json` show it."""
    return {
        "at": _iso(attempt.at) if attempt is not None else None,
        "outcome": result.outcome.value,
        "detail": result.detail,
        "seconds": round(result.seconds, 3),
        "trigger": attempt.trigger if attempt is not None else None,
        "output": list(result.output),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)

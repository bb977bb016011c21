"""The node agent: the shell around core/cycle.

It wires detectors, the backend, hooks and the rebooter to `decide.step` and carries out the
actions it returns, in order. It decides nothing itself. Rules:
- One event at a time, from one queue. Detectors push (no long polling); a timer sends the
  Tick the machine asked for (WakeAt); a slow look (`poll`) refreshes the pause and the
  disabled flag.
- The state is saved (Persist, atomically) before every outside effect; a save that fails
  stops the agent before the effect.
- Hooks and health checks run as tasks whose results come back as events; a task whose state
  was left (an operator released the hold, say) is cancelled, so a late answer never arrives.
- On start the saved boot id tells a reboot from a restart (`start_event`).
- Imports stay lean: no CLI or table libraries, no pydantic; the backend is imported by URL.
- The node's report (core.node_report.NodeReport) is published at every transition and at least
  every REPORT_INTERVAL, by one background sender that sends the latest: never awaited by
  a decision, and a failed send is tried again at the next poll.
- Updates (agent/updaters/runner.py) run beside the cycle: the runner is poked after every
  event and when its time comes; it attempts nothing while a reboot is pending, and a pause
  does not stop it. Its record is saved in the same state file, under "updates".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime
from typing import Any

from stagger import __version__
from stagger.agent import log as agentlog
from stagger.agent.detectors.base import Finding, combine
from stagger.agent.notify import Notifier, watchdog_interval
from stagger.agent.runtime import Runtime
from stagger.agent.state_file import (
    ManualMark,
    StateStore,
    TypedStateStore,
    read_boot_id,
    read_manual_mark,
    write_manual_mark,
)
from stagger.agent.updaters.runner import STATE_KEY as UPDATES_KEY
from stagger.agent.updaters.runner import UpdateRunner
from stagger.backends.protocol import Backend, Snapshot
from stagger.core.cycle.decide import step
from stagger.core.cycle.node_state import NodeState, State
from stagger.core.cycle.vocabulary import (
    BackendError,
    Context,
    Event,
    HealthFailed,
    HealthPassed,
    HooksFailed,
    HooksPassed,
    Needed,
    NotNeeded,
    PauseChanged,
    Persist,
    Reboot,
    RebootFailed,
    RecordEvent,
    Released,
    ReleasedByOperator,
    ReleaseSlot,
    RequestSlot,
    RunHealthChecks,
    RunPreRebootHooks,
    SlotDenied,
    SlotGranted,
    Tick,
    Touch,
    WakeAt,
    beat_of,
    start_event,
)
from stagger.core.errors import StaggerError
from stagger.core.node_report import REPORT_INTERVAL, NodeReport
from stagger.core.semaphore import Denied, Pause, Urgent
from stagger.core.strategy import SENTENCES, UNCONFIGURED_NOTE, Reason, unconfigured
from stagger.core.updates import reboot_pending

# Events that are the answer to a task, and the states in which that answer is still wanted.
HOOK_STATES = frozenset({State.DRAINING})
HEALTH_STATES = frozenset({State.VERIFYING, State.HALTED})
# Seconds the agent waits, when it stops, for its cancelled tasks to end before the backend's
# client is closed (a task still running then would use a closed client).
STOP_GRACE = 5.0
# RecordEvent kinds an operator must see as warnings.
WARNINGS = frozenset(
    {"halted", "reboot_failed", "released_by_operator", "aborted", "reboot_did_not_clear"}
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Agent:
    def __init__(
        self,
        rt: Runtime,
        backend: Backend,
        logger: logging.Logger | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.rt = rt
        self.backend = backend
        self.log = logger or agentlog.setup()
        self.notifier = notifier or Notifier()
        self.store: TypedStateStore[NodeState] = TypedStateStore(
            StateStore(rt.state_path), self._encode, NodeState.from_dict
        )
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.state = NodeState()
        self.beat = beat_of(rt.node_id)  # this node's retries, out of step with the fleet's
        self.wake_at: datetime | None = None
        self.pause: Pause | None = None
        self.urgent: Urgent | None = None
        self.looked_at: datetime | None = None  # the last read of the group's status
        self.backend_reachable = True
        self.disabled = False
        self.findings: dict[str, Finding] = {}
        self.last_need: tuple[bool, str, str] | None = None
        self.reported_at: datetime | None = None  # when the last report was queued
        self.report_due: NodeReport | None = None
        self.report_task: asyncio.Task[None] | None = None
        self.report_failed: str | None = None  # why the last report could not be sent
        self.hooks_task: asyncio.Task[None] | None = None
        self.health_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopping = asyncio.Event()
        self.recent: list[tuple[State, State, str]] = []
        self.updates = UpdateRunner(
            rt.update_policy,
            rt.updater,
            self.log,
            save=lambda: self.store.save(self.state),
            pending=lambda: reboot_pending(self.state),
            on_done=lambda: self.queue.put_nowait(Tick()),  # look again at once
            dry_run=rt.dry_run,
        )

    def _encode(self, state: NodeState) -> dict[str, Any]:
        """The node's state and, beside it, the update record (NodeState ignores the key)."""
        return {**state.to_dict(), UPDATES_KEY: self.updates.to_dict()}

    # --- the world as the machine sees it -----------------------------------------------------

    def context(self) -> Context:
        return Context(
            strategy=self.rt.strategy,
            schedule=self.rt.schedule,
            pause=self.pause,
            urgent=self.urgent,
            backend_reachable=self.backend_reachable,
            backend_configured=self.rt.backend_configured,
            disabled=self.disabled,
            dry_run=self.rt.dry_run,
            timings=self.rt.timings,
            beat=self.beat,
        )

    def _look_at_urgent(self) -> Urgent | None:
        """The urgent reboot the need-reboot marker asks for in this boot (`--now`), if any.
        A marker that cannot be read asks for none (the manual detector says it is unknown)."""
        path = self.rt.manual_path
        if path is None:
            return None
        try:
            mark = read_manual_mark(path)
            return mark.as_urgent(read_boot_id(self.rt.boot_id_path)) if mark else None
        except StaggerError:
            return None

    def _look_at_flag(self) -> bool:
        try:
            return self.rt.disabled_path.exists()
        except OSError:
            return True  # cannot tell: fail closed, never reboot

    async def _backend_call(self, what: str, call: Any) -> Any:
        # asyncio.timeout, not wait_for: on 3.11 wait_for returns the call's result when a
        # cancel lands as the call ends, and the cancelled agent would carry on.
        async with asyncio.timeout(self.rt.backend_timeout):
            return await call

    async def refresh_pause(self) -> bool:
        """Read the pause in force from the backend; True when it changed."""
        try:
            snap: Snapshot = await self._backend_call("status", self.backend.status(self.rt.group))
        except (StaggerError, OSError, TimeoutError) as exc:
            agentlog.event(self.log, "pause unknown", logging.WARNING, error=_why(exc))
            return False
        group = next((g for g in snap.groups if g.group == self.rt.group), None)
        pause = group.pause if group is not None else snap.fleet_pause
        # This node's own pause (stagger pause --node) comes first, as the backend denies by it.
        pause = snap.node_pauses.get(self.rt.node_id) or pause
        changed = pause != self.pause
        self.pause = pause
        self.looked_at = utcnow()
        await self._adopt_urgent(snap.urgent_reboots.get(self.rt.node_id))
        return changed

    async def _adopt_urgent(self, asked: Urgent | None) -> None:
        """An emergency reboot asked through the store (need-reboot --now --node): written as
        this boot's need-reboot marker with --now, so the manual detector and the gate take
        it exactly like one asked on the node. An ask made before the node's last reboot was
        done by it: it is cleared from the store (and asks for nothing)."""
        path = self.rt.manual_path
        if asked is None or path is None:
            return
        last = self.state.last_reboot
        if last is not None and asked.since <= last:
            try:
                await self._backend_call(
                    "clear_reboot",
                    self.backend.clear_reboot(self.rt.node_id, done_by=last, group=self.rt.group),
                )
            except (StaggerError, OSError, TimeoutError) as exc:
                agentlog.event(self.log, "urgent ask not cleared", logging.WARNING, error=_why(exc))
            return
        try:
            boot_id = read_boot_id(self.rt.boot_id_path)
            mark = read_manual_mark(path)
            if mark is not None and mark.as_urgent(boot_id) == asked:
                return  # already adopted
            write_manual_mark(
                path,
                ManualMark(
                    asked.reason,
                    asked.since,
                    asked.by,
                    boot_id,
                    urgent=True,
                    ignore_blackouts=asked.ignore_blackouts,
                ),
            )
        except StaggerError as exc:
            agentlog.event(self.log, "urgent ask not taken", logging.WARNING, error=_why(exc))
            return
        agentlog.event(
            self.log, "urgent reboot asked", logging.WARNING, by=asked.by, reason=asked.reason
        )

    # --- events in ----------------------------------------------------------------------------

    def report(self, finding: Finding) -> None:
        """A detector's answer (called by its watch); the combined answer becomes an event
        when it changes. Unknown is never a reboot: it counts as not needed."""
        self.findings[finding.detector] = finding
        combined = combine(list(self.findings.values()))
        key = (combined.needed is True, combined.detector, combined.detail)
        if key == self.last_need:
            return
        self.last_need = key
        if combined.needed is True:
            self.queue.put_nowait(Needed(combined.detector, combined.detail))
        else:
            if combined.needed is None:
                agentlog.event(
                    self.log,
                    "detector unknown",
                    logging.WARNING,
                    detector=combined.detector,
                    detail=combined.detail,
                )
            unknown = combined.needed is None
            self.queue.put_nowait(NotNeeded(combined.detector, combined.detail, unknown))

    async def handle(self, event: Event) -> None:
        """One event through the machine, then its actions, in order."""
        # The pause is read fresh at every gate (an idle node reads nothing).
        gate = isinstance(event, Needed | Tick | HooksPassed | SlotGranted)
        if gate and (self.state.cycle is not State.IDLE or isinstance(event, Needed)):
            await self.refresh_pause()
        self.disabled = self._look_at_flag()
        self.urgent = self._look_at_urgent()
        before = self.state
        now = utcnow()
        new, actions = step(before, event, now, self.context())
        self.state = new
        if new.cycle is not before.cycle or new.reason != before.reason:
            # A retry loop (asked, denied, asked again) is logged once, then at debug level.
            seen = (before.cycle, new.cycle, new.reason)
            level = logging.DEBUG if seen in self.recent else logging.INFO
            self.recent = [*self.recent[-1:], seen]
            agentlog.event(
                self.log,
                "transition",
                level,
                **{"from": before.cycle.value},
                to=new.cycle.value,
                event=type(event).__name__,
                detail=_detail(event),
                reason=new.reason,
                holds_slot=str(new.holds_slot).lower(),
            )
            self.notifier.status(self._status_line())
        self._cancel_stale_tasks()
        for action in actions:
            await self.execute(action)
        self._publish(force=self.state.cycle is not before.cycle)

    def _cancel_stale_tasks(self) -> None:
        if self.hooks_task is not None and self.state.cycle not in HOOK_STATES:
            self.hooks_task.cancel()
            self.hooks_task = None
        if self.health_task is not None and self.state.cycle not in HEALTH_STATES:
            self.health_task.cancel()
            self.health_task = None

    # --- actions out --------------------------------------------------------------------------

    async def execute(self, action: object) -> None:
        rt = self.rt
        if isinstance(action, Persist):
            self.store.save(action.state)  # raises: no outside effect follows a failed save
        elif isinstance(action, RequestSlot):
            await self._request_slot(action.note)
        elif isinstance(action, ReleaseSlot):
            await self._release_slot()
        elif isinstance(action, Touch):
            await self._touch()
        elif isinstance(action, RunPreRebootHooks):
            why = self.state.needed.detail if self.state.needed is not None else ""
            self.hooks_task = self._spawn(self._run_hooks(action.deadline, why))
        elif isinstance(action, RunHealthChecks):
            self.health_task = self._spawn(self._run_health())
        elif isinstance(action, Reboot):
            agentlog.event(
                self.log, "rebooting", logging.WARNING, rebooter=rt.rebooter.name, why=action.reason
            )
            self.notifier.status(f"rebooting: {action.reason}")
            try:
                await rt.rebooter.reboot(action.reason)
            except (StaggerError, OSError) as exc:
                self.queue.put_nowait(RebootFailed(_why(exc)))
        elif isinstance(action, RecordEvent):
            level = logging.WARNING if action.kind in WARNINGS else logging.INFO
            agentlog.event(self.log, action.kind, level, detail=action.detail)
        elif isinstance(action, WakeAt):
            self.wake_at = action.at

    async def _request_slot(self, note: str) -> None:
        rt = self.rt
        try:
            got = await self._backend_call(
                "acquire", self.backend.acquire(rt.group, rt.node_id, note=note)
            )
        except (StaggerError, OSError, TimeoutError) as exc:
            self.queue.put_nowait(BackendError(_why(exc)))
            return
        if isinstance(got, Denied):
            self.queue.put_nowait(SlotDenied(got.sentence()))
        else:
            self.queue.put_nowait(SlotGranted())

    async def _release_slot(self) -> None:
        try:
            await self._backend_call(
                "release", self.backend.release(self.rt.group, self.rt.node_id)
            )
        except (StaggerError, OSError, TimeoutError) as exc:
            self.queue.put_nowait(BackendError(_why(exc)))
            return
        self.queue.put_nowait(Released())

    async def _touch(self) -> None:
        try:
            hold = await self._backend_call(
                "touch", self.backend.touch(self.rt.group, self.rt.node_id)
            )
        except (StaggerError, OSError, TimeoutError) as exc:
            self.queue.put_nowait(BackendError(_why(exc)))
            return
        if hold is None:
            self.queue.put_nowait(
                ReleasedByOperator(f"the heartbeat found no hold for {self.rt.node_id}")
            )

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
            self.queue.put_nowait(HooksFailed(_why(exc)))
            return
        event = HooksPassed(outcome.detail) if outcome.ok else HooksFailed(outcome.detail)
        self.queue.put_nowait(event)

    async def _run_health(self) -> None:
        try:
            outcome = await self.rt.health.run()
        except (StaggerError, OSError) as exc:
            self.queue.put_nowait(HealthFailed(_why(exc)))
            return
        event = HealthPassed(outcome.detail) if outcome.ok else HealthFailed(outcome.detail)
        self.queue.put_nowait(event)

    def _publish(self, force: bool) -> None:
        """Queue this node's report: at every transition (`force`), else when the last one is
        older than REPORT_INTERVAL. One sender sends the latest, so a slow backend delays no
        decision and a burst of transitions sends what is current."""
        now = utcnow()
        if not force and self.reported_at is not None and now - self.reported_at < REPORT_INTERVAL:
            return
        self.reported_at = now
        rt = self.rt
        self.report_due = NodeReport.of(
            rt.node_id,
            rt.group,
            self.state,
            version=__version__,
            next_window=rt.schedule.next_open(now),
        )
        if self.report_task is None or self.report_task.done():
            self.report_task = self._spawn(self._send_reports())

    async def _send_reports(self) -> None:
        while self.report_due is not None:
            report, self.report_due = self.report_due, None
            try:
                await self._backend_call("report", self.backend.report(report))
            except (StaggerError, OSError, TimeoutError) as exc:
                self.report_failed = _why(exc)
                agentlog.event(self.log, "report not sent", logging.DEBUG, error=_why(exc))
                self.reported_at = None  # sent again at the next poll
            else:
                self.report_failed = None

    async def _flush_reports(self) -> None:
        """Before the agent ends: wait for the report in flight (each try is bounded by
        backend_timeout), so the node's last state reaches the backend while its client is
        still open; a report that could not be sent is said at warning level."""
        task = self.report_task
        if task is not None:
            await asyncio.wait({task})
            error = None if task.cancelled() else task.exception()
            if error is not None:  # not one of the failures _send_reports expects
                self.report_failed = f"{type(error).__name__}: {error}"
        if self.report_failed is not None:
            agentlog.event(
                self.log,
                "last report not sent",
                logging.WARNING,
                state=self.state.cycle.value,
                error=self.report_failed,
            )

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # --- the loop -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the saved state, tell a reboot from a restart, and hear from the backend."""
        rt = self.rt
        saved = self.store.load()
        self.state = saved if saved is not None else NodeState()
        self.updates.load(self.store.store.load())
        boot_id = read_boot_id(rt.boot_id_path)
        try:
            await self._backend_call("ping", self.backend.ping())
            self.backend_reachable = True
        except (StaggerError, OSError, TimeoutError) as exc:
            self.backend_reachable = False
            agentlog.event(self.log, "backend unreachable", logging.WARNING, error=_why(exc))
        if self.backend_reachable:
            await self.refresh_pause()
        first = start_event(self.state, boot_id)
        agentlog.event(
            self.log,
            "started",
            id=rt.node_id,
            group=rt.group,
            strategy=rt.strategy.value,
            backend=rt.backend_url,
            state=self.state.cycle.value,
            boot=type(first).__name__,
            dry_run=str(rt.dry_run).lower(),
        )
        if unconfigured(rt.strategy, rt.backend_configured):
            agentlog.event(self.log, "not configured", logging.WARNING, why=UNCONFIGURED_NOTE)
        await self.handle(first)

    def _status_line(self) -> str:
        """systemd's STATUS=: the state and why; an unconfigured agent says so even when idle."""
        line = f"{self.state.cycle.value}: {self.state.reason}"
        said = self.state.reason == SENTENCES[Reason.NOT_CONFIGURED]
        if unconfigured(self.rt.strategy, self.rt.backend_configured) and not said:
            line = f"{line} ({UNCONFIGURED_NOTE})"
        return line

    async def run(self, once: bool = False) -> int:
        await self.start()
        if once:
            return await self._run_once()
        watchers = [self._spawn(d.watch(self.report)) for d in self.rt.detectors]
        watchdog = watchdog_interval()
        if watchdog is not None:
            self._spawn(self._watchdog(watchdog))
        self.notifier.ready(self._status_line())
        control = await self._start_control()
        next_poll = utcnow().timestamp() + self.rt.poll
        stop = asyncio.get_running_loop().create_task(self.stopping.wait())
        try:
            while not self.stopping.is_set():
                self.updates.poke(utcnow())
                now = utcnow().timestamp()
                timeout = next_poll - now
                if self.wake_at is not None:
                    timeout = min(timeout, self.wake_at.timestamp() - now)
                update_at = self.updates.wake_at(utcnow())
                if update_at is not None:
                    timeout = min(timeout, update_at.timestamp() - now)
                getter = asyncio.get_running_loop().create_task(self.queue.get())
                done, _ = await asyncio.wait(
                    {getter, stop}, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    await self.handle(getter.result())
                    continue
                getter.cancel()
                if stop in done:
                    break
                now = utcnow().timestamp()
                if now >= next_poll:
                    next_poll = now + self.rt.poll
                    await self._poll()
                if self.wake_at is not None and utcnow() >= self.wake_at:
                    self.wake_at = None
                    await self.handle(Tick())
        finally:
            stop.cancel()
            if control is not None:
                await control.close()
            await self.updates.close()
            ending = [t for t in {*watchers, *self.tasks} if t is not self.report_task]
            for task in ending:
                task.cancel()
            if ending:  # ended before the backend's client closes
                await asyncio.wait(ending, timeout=STOP_GRACE)
            await self._flush_reports()
            self.notifier.stopping()
            agentlog.event(self.log, "stopped", state=self.state.cycle.value)
        return 0

    async def _start_control(self) -> Any:
        """The local control socket (`stagger update-now`); None when there is none."""
        if self.rt.control_socket is None:
            return None
        from stagger.agent.control import ControlServer

        server = ControlServer(self.rt.control_socket, self._control, self.log)
        return server if await server.start() else None

    async def _control(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request (protocol in agent/control.py)."""
        op = request.get("op")
        if op == "update-now":
            return await self.updates.update_now(bool(request.get("wait", False)))
        if op == "status":
            return {
                "ok": True,
                "protocol": 1,
                "node": self.rt.node_id,
                "group": self.rt.group,
                "cycle": self.state.cycle.value,
                "updates": self.updates.status(utcnow()),
            }
        return {"ok": False, "error": f"op {op!r} is not known: use 'status' or 'update-now'"}

    async def _poll(self) -> None:
        """The slow look: a changed pause or disabled flag is an event; nothing else is read
        while the node is idle."""
        self._publish(force=False)
        if self.state.cycle is not State.IDLE and await self.refresh_pause():
            await self.handle(PauseChanged())
            return
        if self.state.cycle is State.IDLE and (
            self.looked_at is None or utcnow() - self.looked_at >= REPORT_INTERVAL
        ):
            # An idle node reads its group's status as seldom as it reports, only to see an
            # emergency reboot asked for it through the store (need-reboot --now --node).
            await self.refresh_pause()
        if self._look_at_flag() != self.disabled:
            await self.handle(Tick())

    async def _run_once(self) -> int:
        """One round: an update attempt if one is due (run to its end, so what it installed is
        seen), every detector once, then events until nothing is in flight."""
        attempt = self.updates.poke(utcnow())
        if attempt is not None:
            await attempt
        for detector in self.rt.detectors:
            self.report(await detector.check())
        for _ in range(1000):  # bounded: each round handles at least one event or ends
            while not self.queue.empty():
                await self.handle(self.queue.get_nowait())
            pending = [t for t in (self.hooks_task, self.health_task) if t and not t.done()]
            if not pending:
                break
            await asyncio.wait(pending)
        await self._flush_reports()
        agentlog.event(self.log, "once", state=self.state.cycle.value, reason=self.state.reason)
        return 0

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def stop(self) -> None:
        self.stopping.set()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def _detail(event: Event) -> str | None:
    for name in ("detail", "sentence", "boot_id"):
        value = getattr(event, name, None)
        if value:
            return str(value)
    return None


async def run_agent(rt: Runtime, once: bool = False) -> int:
    """Open the backend, run the agent until SIGTERM/SIGINT (or one round with `once`)."""
    from stagger.backends.factory import open_backend

    logger = agentlog.setup()
    backend = open_backend(rt.backend_url)
    agent = Agent(rt, backend, logger)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop)
    try:
        return await agent.run(once=once)
    finally:
        with contextlib.suppress(Exception):
            await backend.close()
        agent.notifier.close()


def main(rt: Runtime, once: bool = False) -> int:
    return asyncio.run(run_agent(rt, once))

"""The node agent: the shell around core/cycle.

It wires detectors, the backend, hooks and the rebooter to `decide.step` and carries out the
actions it returns, in order. It decides nothing itself. Rules:
- One event at a time, from one queue. Detectors push (no long polling); a timer sends the
  Tick the machine asked for (WakeAt); a slow look (`poll`) refreshes the pause and the
  disabled flag.
- The state is saved (Persist, atomically) before every outside effect; a save that fails
  stops the agent before the effect.
- Hooks and health checks run as tasks whose results come back as events; a task whose state
  was left (an operator released the hold, say) is cancelled, so a late answer never arrives
  (agent/check_tasks.py).
- On start the saved boot id tells a reboot from a restart (`start_event`).
- Imports stay lean: no CLI or table libraries, no pydantic; the backend is imported by URL.
- The node's report is published at every transition and at least every REPORT_INTERVAL, by
  one background sender that sends the latest (agent/report_sender.py): never awaited by a
  decision, and a failed send is tried again at the next poll.
- An emergency reboot asked through the store is adopted as this boot's need-reboot marker
  when the pause is read (agent/reboot_asks.py).
- Updates (agent/updaters/runner.py) run beside the cycle: the runner is poked after every
  event and when its time comes; it attempts nothing while a reboot is pending, and a pause
  does not stop it. Its record is saved in the same state file, under "updates".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import datetime
from typing import Any

from stagger.agent import log as agentlog
from stagger.agent.check_tasks import CheckTasks
from stagger.agent.detectors.base import Finding, combine
from stagger.agent.notify import Notifier, watchdog_interval
from stagger.agent.reboot_asks import RebootAsks
from stagger.agent.report_sender import ReportSender
from stagger.agent.runtime import Runtime
from stagger.agent.state_file import StateStore, TypedStateStore, read_boot_id
from stagger.agent.updaters.runner import STATE_KEY as UPDATES_KEY
from stagger.agent.updaters.runner import UpdateRunner
from stagger.backends.protocol import Backend, Snapshot, utcnow
from stagger.core.cycle.decide import step
from stagger.core.cycle.node_state import NodeState, State
from stagger.core.cycle.vocabulary import (
    BackendError,
    Context,
    Event,
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
from stagger.core.node_report import REPORT_INTERVAL
from stagger.core.semaphore import Denied, Pause, Urgent
from stagger.core.strategy import SENTENCES, UNCONFIGURED_NOTE, Reason, unconfigured
from stagger.core.updates import reboot_pending

# Seconds the agent waits, when it stops, for its cancelled tasks to end before the backend's
# client is closed (a task still running then would use a closed client).
STOP_GRACE = 5.0
# RecordEvent kinds an operator must see as warnings.
WARNINGS = frozenset(
    {"halted", "reboot_failed", "released_by_operator", "aborted", "reboot_did_not_clear"}
)


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
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopping = asyncio.Event()
        self.recent: list[tuple[State, State, str]] = []
        self.checks = CheckTasks(rt, self.queue, self._spawn)
        self.reports = ReportSender(rt, backend, self._backend_call, self._spawn, self.log)
        self.asks = RebootAsks(rt, backend, self._backend_call, self.log)
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
            agentlog.event(self.log, "pause unknown", logging.WARNING, error=agentlog.why(exc))
            return False
        group = next((g for g in snap.groups if g.group == self.rt.group), None)
        pause = group.pause if group is not None else snap.fleet_pause
        # This node's own pause (stagger pause --node) comes first, as the backend denies by it.
        pause = snap.node_pauses.get(self.rt.node_id) or pause
        changed = pause != self.pause
        self.pause = pause
        self.looked_at = utcnow()
        await self.asks.adopt(snap.urgent_reboots.get(self.rt.node_id), self.state.last_reboot)
        return changed

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
        self.urgent = self.asks.look()
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
        self.checks.cancel_stale(self.state.cycle)
        for action in actions:
            await self.execute(action)
        self.reports.publish(self.state, utcnow(), force=self.state.cycle is not before.cycle)

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
            self.checks.start_hooks(action.deadline, why)
        elif isinstance(action, RunHealthChecks):
            self.checks.start_health()
        elif isinstance(action, Reboot):
            agentlog.event(
                self.log, "rebooting", logging.WARNING, rebooter=rt.rebooter.name, why=action.reason
            )
            self.notifier.status(f"rebooting: {action.reason}")
            try:
                await rt.rebooter.reboot(action.reason)
            except (StaggerError, OSError) as exc:
                self.queue.put_nowait(RebootFailed(agentlog.why(exc)))
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
            self.queue.put_nowait(BackendError(agentlog.why(exc)))
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
            self.queue.put_nowait(BackendError(agentlog.why(exc)))
            return
        self.queue.put_nowait(Released())

    async def _touch(self) -> None:
        try:
            hold = await self._backend_call(
                "touch", self.backend.touch(self.rt.group, self.rt.node_id)
            )
        except (StaggerError, OSError, TimeoutError) as exc:
            self.queue.put_nowait(BackendError(agentlog.why(exc)))
            return
        if hold is None:
            self.queue.put_nowait(
                ReleasedByOperator(f"the heartbeat found no hold for {self.rt.node_id}")
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
            agentlog.event(
                self.log, "backend unreachable", logging.WARNING, error=agentlog.why(exc)
            )
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
            ending = [t for t in {*watchers, *self.tasks} if t is not self.reports.task]
            for task in ending:
                task.cancel()
            if ending:  # ended before the backend's client closes
                await asyncio.wait(ending, timeout=STOP_GRACE)
            await self.reports.flush(self.state)
            self.notifier.stopping()
            agentlog.event(self.log, "stopped", state=self.state.cycle.value)
        return 0

    async def _start_control(self) -> Any:
        """The local control socket (`stagger update-now`); None when there is none."""
        if self.rt.control_socket is None:
            return None
        from stagger.agent.control import ControlServer, Ops

        ops = Ops(self.updates.update_now, self._control_status)
        server = ControlServer(self.rt.control_socket, ops.answer, self.log)
        return server if await server.start() else None

    def _control_status(self) -> dict[str, Any]:
        return {
            "node": self.rt.node_id,
            "group": self.rt.group,
            "cycle": self.state.cycle.value,
            "updates": self.updates.status(utcnow()),
        }

    async def _poll(self) -> None:
        """The slow look: a changed pause or disabled flag is an event; nothing else is read
        while the node is idle."""
        self.reports.publish(self.state, utcnow(), force=False)
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
            pending = self.checks.running()
            if not pending:
                break
            await asyncio.wait(pending)
        await self.reports.flush(self.state)
        agentlog.event(self.log, "once", state=self.state.cycle.value, reason=self.state.reason)
        return 0

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def stop(self) -> None:
        self.stopping.set()


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

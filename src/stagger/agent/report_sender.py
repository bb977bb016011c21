"""This node's report (core.node_report.NodeReport) on its way to the backend.

The agent publishes at every transition and at least every REPORT_INTERVAL; one background
sender sends the latest, so a slow backend delays no decision and a burst of transitions sends
what is current. A failed send is tried again at the next poll; when the agent ends, the report
in flight is waited for (each try bounded by backend_timeout) and one that could not be sent is
said at warning level.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from stagger import __version__
from stagger.agent import log as agentlog
from stagger.agent.log import why
from stagger.agent.runtime import Runtime
from stagger.backends.protocol import Backend
from stagger.core.cycle.node_state import NodeState
from stagger.core.errors import StaggerError
from stagger.core.node_report import REPORT_INTERVAL, NodeReport

# A backend call bounded by the agent's backend_timeout: (what, the call) -> its answer.
BackendCall = Callable[[str, Awaitable[Any]], Awaitable[Any]]


class ReportSender:
    def __init__(
        self,
        rt: Runtime,
        backend: Backend,
        call: BackendCall,
        spawn: Callable[[Any], asyncio.Task[Any]],
        logger: logging.Logger,
    ) -> None:
        self.rt = rt
        self.backend = backend
        self.call = call
        self.spawn = spawn
        self.log = logger
        self.reported_at: datetime | None = None  # when the last report was queued
        self.due: NodeReport | None = None
        self.task: asyncio.Task[None] | None = None
        self.failed: str | None = None  # why the last report could not be sent

    def publish(self, state: NodeState, now: datetime, force: bool) -> None:
        """Queue this node's report: at every transition (`force`), else when the last one is
        older than REPORT_INTERVAL."""
        if not force and self.reported_at is not None and now - self.reported_at < REPORT_INTERVAL:
            return
        self.reported_at = now
        rt = self.rt
        self.due = NodeReport.of(
            rt.node_id,
            rt.group,
            state,
            version=__version__,
            next_window=rt.schedule.next_open(now),
        )
        if self.task is None or self.task.done():
            self.task = self.spawn(self._send())

    async def _send(self) -> None:
        while self.due is not None:
            report, self.due = self.due, None
            try:
                await self.call("report", self.backend.report(report))
            except (StaggerError, OSError, TimeoutError) as exc:
                self.failed = why(exc)
                agentlog.event(self.log, "report not sent", logging.DEBUG, error=self.failed)
                self.reported_at = None  # sent again at the next poll
            else:
                self.failed = None

    async def flush(self, state: NodeState) -> None:
        """Before the agent ends: wait for the report in flight, so the node's last state
        reaches the backend while its client is still open."""
        task = self.task
        if task is not None:
            await asyncio.wait({task})
            error = None if task.cancelled() else task.exception()
            if error is not None:  # not one of the failures _send expects
                self.failed = f"{type(error).__name__}: {error}"
        if self.failed is not None:
            agentlog.event(
                self.log,
                "last report not sent",
                logging.WARNING,
                state=state.cycle.value,
                error=self.failed,
            )

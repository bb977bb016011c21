"""Node reports written straight into a store, as agents write them: `report` sends them
through the Backend (optionally as if sent `ago`), `waiting` is a typical report of a node
that needs a reboot and waits for its window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from stagger.backends.factory import open_backend
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


async def _send(url: str, *reports: NodeReport, ago: timedelta = timedelta(0)) -> None:
    b = open_backend(url, clock=lambda: datetime.now(UTC) - ago)
    try:
        for r in reports:
            await b.report(r)
    finally:
        await b.close()


def report(url: str, *reports: NodeReport, ago: timedelta = timedelta(0)) -> None:
    asyncio.run(_send(url, *reports, ago=ago))


def waiting(node_id: str, group: str = "web") -> NodeReport:
    return NodeReport(
        node_id,
        group,
        State.WAITING,
        reason="outside the reboot window",
        needed_since=T0,
        detector="file: /run/reboot-required",
        next_window=T0 + timedelta(days=3650),
    )

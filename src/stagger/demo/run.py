"""Run the demo: start the fleet, supervise it until the rollout is over (or has halted), and
show it live. The CLI (cli/demo.py) wraps this; tests call the CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from stagger.demo.fleet import DemoFailed, DemoFleet, Snapshot, Summary

TICK = 0.2  # seconds between looks at the fleet


def deadline_for(nodes: int, max_: int) -> float:
    """Seconds the rollout may take before the demo gives up: generous, never unbounded."""
    batches = -(-nodes // max_)
    return 60.0 + 15.0 * batches


async def run_demo(
    fleet: DemoFleet,
    show: Callable[[Snapshot], None],
    *,
    keep_running: bool = False,
    on_summary: Callable[[Summary], None] | None = None,
) -> Summary:
    await fleet.start()
    limit = deadline_for(len(fleet.nodes), fleet.max)
    began = time.monotonic()
    holders: tuple[str, ...] = ()
    while True:
        fleet.pump()
        holders = await fleet.holders()
        snap = fleet.snapshot(holders)
        show(snap)
        if fleet.finished():
            # An agent saves its state before it logs the move: one more look shows the last.
            await asyncio.sleep(TICK)
            fleet.pump()
            show(fleet.snapshot(await fleet.holders()))
            break
        if time.monotonic() - began > limit:
            states = ", ".join(f"{i} {c}" for i, c, _, _ in snap.nodes)
            raise DemoFailed(
                f"the rollout did not finish within {limit:.0f} s ({states}); the agents' logs "
                f"are in {fleet.dir} until the demo exits"
            )
        await asyncio.sleep(TICK)
    summary = await fleet.summary(server_kept=keep_running)
    if on_summary is not None:
        on_summary(summary)
    while keep_running:  # until Ctrl-C: the operator can try the commands the summary printed
        await asyncio.sleep(TICK)
        fleet.pump()
        show(fleet.snapshot(await fleet.holders()))
    return summary

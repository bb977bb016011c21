"""`stagger demo`: a FleetLock server and N real agents on this machine roll through a reboot,
shown live; a summary at the end (or --json). Ctrl-C stops everything and removes the temp dir.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from typing import TYPE_CHECKING

import typer

from stagger.cli.output import JsonOption, console, fail, print_json, reported_errors

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from stagger.demo.fleet import Snapshot, Summary

STATE_STYLES = {
    "starting": "dim",
    "idle": "green",
    "waiting": "yellow",
    "acquiring": "yellow",
    "draining": "cyan",
    "down": "bold magenta",
    "booting": "magenta",
    "rebooting": "magenta",
    "verifying": "blue",
    "releasing": "blue",
    "halted": "bold red",
}


def _view(snap: Snapshot, max_: int) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    held = ", ".join(snap.holders) or "nobody"
    head = Text(
        f"stagger demo — server {snap.server}   elapsed {snap.elapsed:5.1f}s\n"
        f"slots held ({len(snap.holders)}/{max_}): {held}   machines down: {snap.down}"
    )
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("node")
    table.add_column("state")
    table.add_column("reboots", justify="right")
    table.add_column("why", overflow="ellipsis", no_wrap=True, max_width=80)
    for node_id, cycle, reboots, reason in snap.nodes:
        style = STATE_STYLES.get(cycle, "")
        table.add_row(node_id, Text(cycle, style=style), str(reboots), reason)
    return Group(head, table)


class _Live:
    """Rich Live on a terminal; one line per state change elsewhere; nothing with --json."""

    def __init__(self, out: Console, max_: int, as_json: bool) -> None:
        self.out = out
        self.max = max_
        self.as_json = as_json
        self.live: object | None = None
        self.seen: dict[str, str] = {}

    def __call__(self, snap: Snapshot) -> None:
        if self.as_json:
            return
        if self.out.is_terminal:
            from rich.live import Live

            if self.live is None:
                live = Live(console=self.out, refresh_per_second=8, transient=False)
                live.start()
                self.live = live
            assert isinstance(self.live, Live)
            self.live.update(_view(snap, self.max))
            return
        for node_id, cycle, reason in snap.moves:
            if self.seen.get(node_id) != cycle:
                self.seen[node_id] = cycle
                why = "" if reason == cycle else reason  # "rebooting: rebooting" says nothing
                self.out.print(f"{snap.elapsed:6.1f}s  {node_id:<8} {cycle:<10} {why}".rstrip())

    def stop(self) -> None:
        from rich.live import Live

        if isinstance(self.live, Live):
            self.live.stop()
            self.live = None


def _render(out: Console, s: Summary, again: str) -> None:
    """The summary; `again` is the command line that runs this demo again with the server
    kept, offered when the unlock commands could not work (the server is about to stop)."""
    out.print()
    once = all(k == 1 for i, k in s.reboots.items() if k)
    rebooted = f"{s.rebooted} of {s.nodes} nodes rebooted" + (
        " (each exactly once)" if once and s.rebooted else ""
    )
    out.print(f"{rebooted}; total {s.seconds:.1f}s")
    out.print(
        f"highest number of nodes holding a slot at once: {s.max_concurrent} (max {s.max}); "
        f"machines down at once: {s.max_down}"
    )
    if s.halted:
        names = ", ".join(s.halted)
        left = s.max - len(s.halted)
        if left > 0:
            after = f"the rollout went on with the {left} slot(s) left"
        elif s.waiting:
            after = (
                f"every slot is held by a halted node, so the rollout stopped there: "
                f"{len(s.waiting)} node(s) still wait ({', '.join(s.waiting)})"
            )
        else:
            after = "every other node had already rebooted"
        out.print(
            f"halted: {names} — the health check failed after the reboot, so the node keeps "
            f"its slot; {after}."
        )
        hint = s.continue_hint()
        if hint:
            out.print("To let the rollout go on (on a real fleet: after fixing the node):")
            for line in hint:
                out.print(f"  {line}")
        else:
            out.print(
                f"The demo's server stops with the demo; to try `stagger unlock` on it: {again}"
            )
    for problem in s.problems:
        out.print(f"problem: {problem}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def demo(
    nodes: int = typer.Option(8, "--nodes", min=1, max=64, metavar="N", help="Agents to run."),
    max_: int | None = typer.Option(
        None,
        "--max",
        min=1,
        metavar="K",
        help="Slots: nodes down at once (default 2; 1 with --fail-health).",
        show_default=False,
    ),
    fail_health: str | None = typer.Option(
        None,
        "--fail-health",
        metavar="NODE",
        help="Make NODE's health check fail after its reboot (like node-2): it keeps its slot, "
        "and with the default single slot the rollout halts there.",
        show_default=False,
    ),
    keep_running: bool = typer.Option(
        False,
        "--keep-running",
        help="After the summary, keep the server and agents running until Ctrl-C.",
    ),
    json: bool = JsonOption,
) -> None:
    """Watch a fleet roll through a reboot on this machine: a real FleetLock server on SQLite
    and N real agents (simulated reboots), each node down only while it holds a slot."""
    from stagger.demo.fleet import DemoFleet
    from stagger.demo.run import run_demo

    out = console()
    with reported_errors(json):
        fleet = DemoFleet(nodes, max_, fail_health)
    live = _Live(out, fleet.max, json)
    again = shlex.join(["stagger", *sys.argv[1:], "--keep-running"])

    def summary_now(s: Summary) -> None:
        live.stop()
        if json:  # now, so that with --keep-running the commands in it can be used
            print_json(s.to_json())
            sys.stdout.flush()
            return
        _render(out, s, again)
        if keep_running:
            out.print()
            out.print(f"still running: try `stagger status --server {s.server}`; Ctrl-C stops")

    # SIGTERM (and SIGHUP: the terminal closed) stop the demo like Ctrl-C does: the agents and
    # the server run in their own sessions, so only the demo can stop them.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        with reported_errors(json):
            summary = asyncio.run(
                run_demo(fleet, live, keep_running=keep_running, on_summary=summary_now)
            )
    except KeyboardInterrupt:
        live.stop()
        fleet.close()
        sys.stderr.write(f"stagger: demo stopped; removed {fleet.dir}\n")
        raise typer.Exit(130) from None
    finally:
        live.stop()
        fleet.close()
    if not summary.ok:
        fail("the demo went wrong: " + "; ".join(summary.problems), 1, as_json=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

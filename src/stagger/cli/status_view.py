"""How the semaphore commands (cli/semaphore.py) say things to people: the status of the
groups with their holders, pace, queue and ETA, the history table, pauses and denials. Kept
apart from the commands so that the commands file holds their options, inputs and calls;
--json prints the API's documents instead (cli/semaphore.py `document`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from stagger.backends.protocol import Backend, GroupStatus, Snapshot
from stagger.cli.output import console
from stagger.core.durations import format_duration
from stagger.core.eta import GroupEta
from stagger.core.fleet_view import HoldCondition, hold_conditions
from stagger.core.node_report import NodeReport
from stagger.core.semaphore import FLEET, Denied, Event, Pause
from stagger.core.times import format_utc

# The places of a group's queue the table shows (a queue holds up to core.semaphore's
# QUEUE_LIMIT, 1,000).
QUEUE_SHOWN = 20

if TYPE_CHECKING:
    from rich.console import Console

    from stagger.api import BlockerModel

Reports = Mapping[str, NodeReport]


def active(p: Pause | None, now: datetime) -> Pause | None:
    return p if p is not None and p.active(now) else None


def ago(now: datetime, then: datetime) -> str:
    return format_duration(now - then)


def when(t: datetime) -> str:
    """A time for people: UTC, to the second (JSON keeps the full RFC 3339 value)."""
    return format_utc(t)


def group_label(group: str) -> str:
    return "(every group)" if group == FLEET else group


def describe_pause(p: Pause, now: datetime) -> str:
    until = f" until {when(p.until)} (in {ago(p.until, now)})" if p.until else ""
    return f"paused by {p.by}{until}: {p.reason}"


def not_yet_sentence(g: GroupStatus) -> str:
    """A group never written: say so, and what it would be created with (its `max`, hold-ttl
    and stale-after here are the defaults, not stored values)."""
    sem = g.semaphore
    ttl = format_duration(sem.hold_ttl) if sem.hold_ttl else "none"
    text = (
        f"group {g.group} does not exist yet: its first lock, set-max or pause creates it with "
        f"max {sem.max}, hold-ttl {ttl}, stale after {format_duration(sem.stale_after)} "
        "(check the name if you expected it)"
    )
    if g.pause is not None:  # only the fleet-wide pause can be in force on it
        text += f"; the fleet-wide pause applies to it: {describe_pause(g.pause, g.now)}"
    return text


def limit_sentence(g: GroupStatus) -> str:
    """The max as set and as it stands: `3`, or `10% = 3 of 27 nodes`."""
    sem = g.semaphore
    if sem.max_percent is None:
        return str(sem.max)
    known = len(sem.known(g.now))
    return f"{sem.max_percent}% = {sem.slots(g.now)} of {known} node{'s' if known != 1 else ''}"


def condition_text(conditions: tuple[HoldCondition, ...]) -> str:
    """`ok`, or the marks in capitals worst first (`HALTED, STALE`)."""
    marks = [c.value.upper() for c in conditions if c is not HoldCondition.OK]
    return ", ".join(marks) or HoldCondition.OK.value


async def server_blockers(b: Backend) -> list[BlockerModel] | None:
    """The blockers of the server `b` talks to; None for a store read directly (only a server
    checks blockers, docs/rollout.md). The client module is loaded when `b` is one."""
    if "stagger.backends.fleetlock" not in sys.modules:
        return None
    from stagger.backends.fleetlock import FleetLockBackend

    return await b.blockers() if isinstance(b, FleetLockBackend) else None


def render_blockers(blockers: list[BlockerModel], now: datetime) -> None:
    out = console()
    for b in blockers:
        scope = "every group" if b.groups is None else "groups " + ", ".join(b.groups)
        checked = f"checked {ago(now, b.checked_at)} ago" if b.checked_at else "not checked yet"
        if b.blocking:
            out.print(f"BLOCKER {b.name} ({b.kind.value}, {scope}) BLOCKS: {b.reason}")
        else:
            out.print(f"blocker {b.name} ({b.kind.value}, {scope}): lets reboots go ({checked})")


def render_status(
    snap: Snapshot,
    reports: Reports | None = None,
    blockers: list[BlockerModel] | None = None,
    etas: Mapping[str, GroupEta] | None = None,
) -> None:
    reports = reports or {}
    out = console()
    render_blockers(blockers or [], snap.now)
    fleet = active(snap.fleet_pause, snap.now)
    if fleet is not None:
        out.print(f"FLEET-WIDE PAUSE: every group is {describe_pause(fleet, snap.now)}")
    for node, p in snap.node_pauses.items():
        out.print(f"NODE PAUSE: node {node} is {describe_pause(p, snap.now)}")
    for node, u in sorted(snap.urgent_reboots.items()):
        out.print(f"URGENT REBOOT of node {node} asked {when(u.since)}: {u.describe()}")
    if not snap.groups:
        out.print("no groups yet: a group appears with its first lock, set-max or pause")
        return
    for g in snap.groups:
        sem = g.semaphore
        holds = g.holds
        if not sem.stored:
            out.print(not_yet_sentence(g))
            continue
        title = f"group {g.group}: {len(holds)} of max {sem.slots(g.now)} slot(s) held"
        if sem.max_percent is not None:
            title += f" ({limit_sentence(g)})"
        pause = g.pause
        if pause is not None:
            scope = "" if pause is sem.pause else " (fleet-wide)"
            title += f" — {describe_pause(pause, g.now)}{scope}"
        out.print(title)
        if sem.hold_ttl is not None:
            ttl = format_duration(sem.hold_ttl)
            out.print(f"  holds expire {ttl} after their last heartbeat (hold-ttl)")
        from rich.table import Table

        table = Table()
        for column in ("holder", "held for", "last seen", "state", "note"):
            table.add_column(column)
        for h in holds:
            state = condition_text(hold_conditions(g.group, h.id, h.id in g.stale, reports))
            if h.expires_at is not None:
                state += f", expires in {ago(h.expires_at, g.now)}"
            table.add_row(
                h.id, ago(g.now, h.since), f"{ago(g.now, h.last_seen)} ago", state, h.note
            )
        if not holds:
            table.add_row("(none)", "", "", "", "")
        out.print(table)
        slots = sem.slots(g.now)
        if len(holds) > slots:
            out.print(f"  {len(holds)} holds exceed max {slots}: new locks wait for releases")
        render_turns(out, g)
        eta = (etas or {}).get(g.group)
        if eta is not None:
            out.print(f"  {eta_sentence(eta, g.now)}")


def render_turns(out: Console, g: GroupStatus) -> None:
    """The group's pace (and the freed slots cooling down) and its queue, first asked first."""
    sem = g.semaphore
    if sem.pace is not None:
        line = f"  pace {format_duration(sem.pace)}: a freed slot is granted again that long later"
        ends = sem.cooling(g.now)
        if ends:
            line += f"; {len(ends)} cooling, the next free at {when(ends[0])}"
        out.print(line)
    waiters = sem.queue(g.now)
    if waiters:
        out.print(f"  queue ({len(waiters)}, first asked first):")
        for w in waiters[:QUEUE_SHOWN]:
            out.print(
                f"    {w.position}. {w.id} (asked {ago(g.now, w.first_asked)} ago, "
                f"last {ago(g.now, w.last_asked)} ago)"
            )
        if len(waiters) > QUEUE_SHOWN:
            more = len(waiters) - QUEUE_SHOWN
            out.print(f"    ... and {more} more (`stagger status --json` lists every place)")


def eta_sentence(eta: GroupEta, now: datetime) -> str:
    """`ETA 14:20:00 UTC (in 1h10m): 21 waiting, 3 in progress, median cycle 6m`."""
    work = f"{eta.pending} waiting, {eta.in_progress} in progress"
    if eta.completes_at is None:
        return f"ETA unknown ({eta.why}): {work}"
    cycle = format_duration(eta.cycle) if eta.cycle is not None else "?"
    return (
        f"ETA {when(eta.completes_at)} (in {ago(eta.completes_at, now)}): {work}, "
        f"median cycle {cycle} (an estimate: docs/rollout.md)"
    )


def render_history(events: list[Event], now: datetime) -> None:
    out = console()
    if not events:
        out.print("no events recorded yet")
        return
    from rich.table import Table

    table = Table()
    for column in ("time (UTC)", "ago", "group", "action", "id", "by"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail")
    for e in events:
        table.add_row(
            when(e.time),
            ago(now, e.time),
            group_label(e.group),
            e.action.value,
            e.id,
            e.by,
            e.detail,
        )
    out.print(table)


def denied_sentence(outcome: Denied, group: str, node: str) -> str:
    return f"denied: {node} cannot take a slot in group {group}: {outcome.sentence()}"

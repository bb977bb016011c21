"""Operator commands on the fleet's nodes: `stagger nodes` (the fleet view the server's
/v1/nodes and dashboard show, built by core.fleet_view.fleet_nodes from the same reads) and
`stagger forget NODE` (remove a retired node's report).

The JSON of `nodes` is the /v1/nodes document (stagger.api NodesModel), so a script
reads the same fields from the CLI and from the API.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import typer

from stagger.cli.output import (
    BackendOption,
    JsonOption,
    console,
    emit,
    operator_by,
    reported_errors,
    run_async,
)
from stagger.cli.semaphore import ago, when
from stagger.core.durations import format_duration, parse_duration
from stagger.core.errors import InvalidInput
from stagger.core.fleet_view import NodeView, fleet_nodes
from stagger.core.node_report import DEFAULT_SILENT_AFTER, StoredReports
from stagger.core.semaphore import HISTORY_LIMIT, validate_group, validate_id
from stagger.core.text import printable

if TYPE_CHECKING:
    from stagger.api import NodesModel
    from stagger.backends.protocol import Backend


@dataclass(frozen=True)
class Fleet:
    """What one `stagger nodes` read: the view at the backend's `now`."""

    now: datetime
    silent_after: timedelta
    nodes: list[NodeView]
    stored: StoredReports


async def read_fleet(backend: Backend, group: str | None, silent_after: timedelta) -> Fleet:
    """The same reads the server's /v1/nodes makes, judged at the backend's clock."""
    snap = await backend.status(group)
    stored = await backend.read_nodes(group)
    events = await backend.history(group, HISTORY_LIMIT)
    holds = {g.group: g.holds for g in snap.groups}
    views = fleet_nodes(
        stored.reports, holds, events, snap.now, silent_after, node_pauses=snap.node_pauses
    )
    return Fleet(snap.now, silent_after, views, stored)


def fleet_doc(f: Fleet) -> NodesModel:
    from stagger.api import NodeModel, NodesModel, UnreadableModel

    return NodesModel(
        now=f.now,
        silent_after=f.silent_after.total_seconds(),
        nodes=[NodeModel.of(v) for v in f.nodes],
        unreadable=[UnreadableModel.of(u) for u in f.stored.unreadable],
    )


def _state(n: NodeView) -> str:
    state = str(n.state)
    if n.holds_slot and state != "holding":
        state += " +slot"
    if n.pause is not None:
        until = f" until {when(n.pause.until)}" if n.pause.until else ""
        state += f" (PAUSED{until})"
    return f"{state} (SILENT)" if n.silent else state


def _since(n: NodeView, now: datetime) -> str:
    """How long it has needed a reboot (a reporting node), else since its last lock activity:
    relative, so the table fits a terminal (--json has the times)."""
    if n.needed_since is not None:
        return f"{ago(now, n.needed_since)} ago"
    if n.last_lock_activity is not None:
        return f"locked {ago(now, n.last_lock_activity)} ago"
    return ""


def _why(n: NodeView) -> str:
    r = n.report
    if r is None:
        return "FleetLock client (no report)"
    return " · ".join(part for part in (r.detector, r.reason) if part)


def _next_window(n: NodeView, now: datetime) -> str:
    r = n.report
    if r is None or r.next_window is None:
        return ""
    return "open" if r.next_window <= now else when(r.next_window)


def _reported(n: NodeView, now: datetime) -> str:
    r = n.report
    if r is None or r.updated_at is None:
        return ""
    return f"{ago(now, r.updated_at)} ago"


def render_fleet(f: Fleet) -> None:
    out = console()
    if not f.nodes:
        out.print(
            "no nodes yet: stagger agents report themselves; FleetLock clients (Zincati, "
            "Flatcar) appear with their first lock"
        )
    else:
        from rich.table import Table

        table = Table()
        for column in ("node", "group", "state", "since", "detector / reason"):
            table.add_column(column)
        for column in ("next window", "last report"):
            table.add_column(column, no_wrap=True)
        for n in f.nodes:
            table.add_row(
                n.id,
                n.group,
                _state(n),
                _since(n, f.now),
                _why(n),
                _next_window(n, f.now),
                _reported(n, f.now),
            )
        out.print(table)
        silent = sum(1 for n in f.nodes if n.silent)
        if silent:
            out.print(
                f"{silent} node(s) silent: no report for over {format_duration(f.silent_after)}; "
                "`stagger forget NODE` removes one taken out of service"
            )
    _warn_unreadable(f.stored)


def _warn_unreadable(stored: StoredReports) -> None:
    for u in stored.unreadable:
        sys.stderr.write(
            f"stagger: the node report at {printable(u.key)} cannot be read "
            f"({printable(u.error)}); it is not listed: "
            "upgrade this stagger if a newer agent wrote it, or remove it with "
            "`stagger forget ID`\n"
        )


# --- commands --------------------------------------------------------------------------


def nodes(
    group: str | None = typer.Option(
        None, "--group", "-g", metavar="G", help="Only this group (default: every group)."
    ),
    silent_after: str = typer.Option(
        format_duration(DEFAULT_SILENT_AFTER),
        "--silent-after",
        metavar="D",
        help="Mark a node silent after this long without a report.",
    ),
    backend: str | None = BackendOption,
    json: bool = JsonOption,
) -> None:
    """List every node: stagger agents from their reports (silent ones marked), FleetLock
    clients (Zincati, Flatcar) from their locks."""
    with reported_errors(json):
        if group is not None:
            validate_group(group)
        quiet = parse_duration(silent_after, what="--silent-after")
        if quiet <= timedelta(0):
            raise InvalidInput(f"--silent-after {silent_after!r} must be longer than 0 s, like 15m")
    f = run_async(
        lambda b: read_fleet(b, group, quiet), backend=backend, create=False, as_json=json
    )
    if json:
        sys.stdout.write(fleet_doc(f).model_dump_json(indent=2) + "\n")
        _warn_unreadable(f.stored)
        return
    render_fleet(f)


def forget(
    node: str = typer.Argument(..., metavar="NODE", help="The node id.", show_default=False),
    backend: str | None = BackendOption,
    json: bool = JsonOption,
) -> None:
    """Remove a retired node's report so it is no longer listed (refused while it holds a
    slot). An agent still running there reports itself back."""
    with reported_errors(json):
        validate_id(node)
    by = operator_by()
    removed = run_async(
        lambda b: b.forget(node, by=by), backend=backend, create=False, as_json=json
    )
    from stagger.api import ForgetResponse

    doc = ForgetResponse(id=node, by=by, forgotten=removed).model_dump(mode="json")
    if removed:
        text = (
            f"forgot node {node}: its report is removed (if its agent still runs, its next "
            "report lists it again)"
        )
    else:
        text = (
            f"no report of node {node} is stored: nothing changed (a FleetLock-only node such "
            "as Zincati has no report; it is listed from its lock history until that ages out)"
        )
    emit(doc, json, lambda: console().print(text))


def register(app: typer.Typer) -> None:
    app.command("nodes")(nodes)
    app.command("forget")(forget)

"""Operator commands on the fleet's nodes: `stagger nodes` (the fleet view the server's
/v1/nodes and dashboard show, built by core.fleet_view.fleet_nodes from the same reads) and
`stagger forget NODE` (remove a retired node's report).

The JSON of `nodes` is the /v1/nodes document (stagger.api NodesModel), so a script
reads the same fields from the CLI and from the API.
"""

from __future__ import annotations

import json as _json
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
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
from stagger.cli.pages import since_option
from stagger.cli.status_view import ago, when
from stagger.core.durations import format_duration, parse_duration
from stagger.core.errors import InvalidInput
from stagger.core.fleet_view import NodeView
from stagger.core.listing import (
    DEFAULT_PAGE,
    MAX_PAGE,
    MAX_PAGES,
    STATE_FILTERS,
    NodePage,
    NodeQuery,
)
from stagger.core.node_report import DEFAULT_SILENT_AFTER, Unreadable
from stagger.core.semaphore import validate_id
from stagger.core.text import printable

if TYPE_CHECKING:
    from rich.console import Console

    from stagger.api import NodesModel
    from stagger.backends.protocol import Backend

# The most rows `--limit` may ask to hold at once; --all streams any number.
MAX_LISTED = 100_000
PAGE = MAX_PAGE  # rows asked for per page


async def walk_nodes(
    backend: Backend, query: NodeQuery, silent_after: timedelta, upto: int | None
) -> AsyncIterator[NodePage]:
    """The pages of the fleet view matching `query`, until `upto` rows (None: every one): one
    page in memory at a time, through the server's /v1/nodes or the store's own pages."""
    shown = 0
    for _ in range(MAX_PAGES):
        size = PAGE if upto is None else min(PAGE, upto - shown)
        page = await backend.node_page(replace(query, limit=size), silent_after)
        yield page
        shown += len(page.nodes)
        if page.next is None or (upto is not None and shown >= upto):
            return
        query = replace(query, after=page.next)


async def read_nodes_upto(
    backend: Backend, query: NodeQuery, silent_after: timedelta, upto: int
) -> NodePage:
    """The first `upto` rows as one page (its `next` set when more match)."""
    first: NodePage | None = None
    rows: list[NodeView] = []
    unreadable: list[Unreadable] = []
    last: NodePage | None = None
    async for page in walk_nodes(backend, query, silent_after, upto):
        first = first or page
        rows += page.nodes
        unreadable += page.unreadable
        last = page
    assert first is not None
    assert last is not None
    return replace(first, nodes=tuple(rows), next=last.next, unreadable=tuple(unreadable))


def page_doc(page: NodePage) -> NodesModel:
    from stagger.api import NodesModel

    return NodesModel.of(page)


async def stream_json(backend: Backend, query: NodeQuery, silent_after: timedelta) -> None:
    """`--all --json`: the /v1/nodes document with every matching node, written page by page
    (the head and totals from the first page, the unreadable reports at the end)."""
    from stagger.api import NodeModel, UnreadableModel

    out = sys.stdout
    unreadable: list[Unreadable] = []
    count = 0
    started = False
    async for page in walk_nodes(backend, query, silent_after, None):
        if not started:
            head = page_doc(replace(page, nodes=(), unreadable=())).model_dump(
                mode="json", exclude={"nodes", "unreadable", "next_cursor"}
            )
            out.write(_json.dumps(head)[:-1] + ', "nodes": [')
            started = True
        for v in page.nodes:
            out.write((",\n  " if count else "\n  ") + NodeModel.of(v).model_dump_json())
            count += 1
        out.flush()
        unreadable += page.unreadable
    bad = ", ".join(UnreadableModel.of(u).model_dump_json() for u in unreadable)
    out.write(f'\n], "unreadable": [{bad}], "next_cursor": null}}\n')
    _warn_unreadable(unreadable)


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


def render_rows(out: Console, page: NodePage, *, header: bool = True) -> None:
    from rich.table import Table

    table = Table(show_header=header)
    for column in ("node", "group", "state", "since", "detector / reason"):
        table.add_column(column)
    for column in ("next window", "last report"):
        table.add_column(column, no_wrap=True)
    for n in page.nodes:
        table.add_row(
            n.id,
            n.group,
            _state(n),
            _since(n, page.now),
            _why(n),
            _next_window(n, page.now),
            _reported(n, page.now),
        )
    out.print(table)


def render_page(page: NodePage, filtered: bool) -> None:
    """One table of the rows read, then what the totals say beyond them."""
    out = console()
    if not page.nodes and not filtered:
        out.print(
            "no nodes yet: stagger agents report themselves; FleetLock clients (Zincati, "
            "Flatcar) appear with their first lock"
        )
    elif not page.nodes:
        out.print("no node matches")
    else:
        render_rows(out, page)
    render_totals(out, page)
    if page.next is not None:
        out.print(
            f"more nodes match than the {len(page.nodes)} shown: --all lists every one (as it "
            "reads them), --limit N more; --state, --group, --prefix narrow the question"
        )
    _warn_unreadable(page.unreadable)


def render_totals(out: Console, page: NodePage) -> None:
    if page.totals:
        counts = ", ".join(f"{n} {state}" for state, n in page.totals.items())
        out.print(f"{sum(page.totals.values())} node(s): {counts}")
    if page.silent:
        out.print(
            f"{page.silent} node(s) silent: no report for over "
            f"{format_duration(page.silent_after)}; `stagger forget NODE` removes one taken "
            "out of service"
        )


async def stream_table(backend: Backend, query: NodeQuery, silent_after: timedelta) -> None:
    """`--all`: a table per page as it is read, the totals once at the end."""
    out = console()
    first: NodePage | None = None
    async for page in walk_nodes(backend, query, silent_after, None):
        if page.nodes:
            render_rows(out, page, header=first is None)
        first = first or page
        _warn_unreadable(page.unreadable)
    assert first is not None
    render_totals(out, first)


def _warn_unreadable(unreadable: Iterable[Unreadable]) -> None:
    for u in unreadable:
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
    state: str | None = typer.Option(
        None,
        "--state",
        metavar="S",
        help=f"Only nodes in this state: {', '.join(STATE_FILTERS)}.",
    ),
    prefix: str = typer.Option("", "--prefix", metavar="P", help="Only node ids starting with P."),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="T",
        help="Only nodes that reported (or locked) since T: a time (RFC 3339) or a duration "
        "ago, like 1h.",
    ),
    limit: int = typer.Option(
        DEFAULT_PAGE, "--limit", "-n", metavar="N", help="Show at most N nodes."
    ),
    every: bool = typer.Option(
        False, "--all", help="Every matching node, printed as it is read (page by page)."
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
    """List the nodes: stagger agents from their reports (silent ones marked), FleetLock
    clients (Zincati, Flatcar) from their locks; with totals per state."""
    with reported_errors(json):
        quiet = parse_duration(silent_after, what="--silent-after")
        if quiet <= timedelta(0):
            raise InvalidInput(f"--silent-after {silent_after!r} must be longer than 0 s, like 15m")
        if every and limit != DEFAULT_PAGE:
            raise InvalidInput("--all and --limit ask for different things: give one of them")
        if not 1 <= limit <= MAX_LISTED:
            raise InvalidInput(
                f"--limit {limit} is not valid: give a whole number from 1 to {MAX_LISTED}, "
                "or --all"
            )
        query = NodeQuery(group=group, state=state, q=prefix, since=since_option(since), limit=1)
    filtered = any(x is not None for x in (group, state, since)) or bool(prefix)
    if every:
        stream = stream_json if json else stream_table
        run_async(lambda b: stream(b, query, quiet), backend=backend, create=False, as_json=json)
        return
    page = run_async(
        lambda b: read_nodes_upto(b, query, quiet, limit),
        backend=backend,
        create=False,
        as_json=json,
    )
    if json:
        sys.stdout.write(page_doc(page).model_dump_json(indent=2) + "\n")
        _warn_unreadable(page.unreadable)
        return
    render_page(page, filtered)


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

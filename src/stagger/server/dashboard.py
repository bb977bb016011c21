"""The dashboard at `/`: server-rendered HTML (Jinja2), readable without JavaScript and on a
phone, and as small at 50,000 nodes as at 50 (docs/dashboard.md). A small script
(static/dashboard.js) re-fetches the live part every few seconds and, once an operator gives
an admin token, shows the admin controls, which call the JSON admin API with that token.

What it shows comes from the same reads as the API: status (groups, holds, pauses), node
reports plus FleetLock-only nodes from their locks (core.fleet_view.fleet_nodes), history, and
each group's rollout (core.waves.current_wave), put together once per change of the store as a
core.board.Board and sliced for every rendering: the counts, the groups ranked by attention,
the halted and stale nodes, one page of the filtered nodes table.

The live refresh sends only what changed: the live part carries an ETag made of the board's
generation and what the request asked for (filters, page, admin or not). The board is kept
while the store's revision (backends.protocol.Revisions: a change counter, one small read) is
the same and time alone has not changed what it says (core.board.changes_at); a refresh
meanwhile is answered 304 Not Modified without reading anything else.

Reading needs no token by default (like a status page); `[server] dashboard_auth = true` asks
for the admin token (docs/server.md "Auth"), and `dashboard = false` turns it off. The
controls appear only in a fragment asked for with an admin token, and the API refuses admin
acts without one anyway.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from stagger import __version__
from stagger.backends.protocol import GroupStatus, Revisions, Snapshot, utcnow
from stagger.core import rollout_status as rollout_core
from stagger.core.board import (
    DEFAULT_SORT,
    FILTER_STATES,
    GROUP_SORTS,
    PAGE_SIZE,
    Board,
    Page,
    Timed,
    changes_at,
    page_of,
    sort_groups,
)
from stagger.core.durations import format_duration
from stagger.core.fleet_view import HoldCondition, fleet_nodes, hold_conditions
from stagger.core.node_report import NodeReport, Unreadable
from stagger.core.rollout_status import RolloutStatus
from stagger.core.semaphore import FLEET, Event, Pause
from stagger.core.text import printable
from stagger.core.times import format_utc
from stagger.core.waves import Wave, current_wave
from stagger.server.auth import Denial
from stagger.server.context import ServerState

HERE = Path(__file__).parent
DASHBOARD_CHALLENGE = 'Basic realm="stagger dashboard", charset="UTF-8"'
HISTORY_READ = 100  # events read for the fleet view (FleetLock-only nodes) and the rollouts
HISTORY_SHOWN = 25  # of which the newest are shown
GROUPS_SHOWN = 100  # rows of the groups table (worst first)
HOLDS_SHOWN = 20  # holders listed under each group
BANNERS_SHOWN = 20  # node pauses and emergency reboots listed as banners
PREFIX_LONGEST = 200  # characters of an id prefix (or group) filter
GZIP_FROM = 2048  # bytes of HTML worth compressing for a browser that accepts gzip
REFRESH_SECONDS = 5
# A board that took at least KEPT_FROM_SECONDS to build (a big fleet) is kept KEEP_FACTOR times
# as long as its build took, even when the store changes meanwhile; a refresh asked with
# `Cache-Control: no-cache` (the script's, right after an operator's act) builds it at once.
KEPT_FROM_SECONDS = 0.1
KEEP_FACTOR = 4
# A mark of this server process in every ETag, so an ETag from before a restart, or from
# another server behind the same address, never matches by chance.
PROCESS_MARK = secrets.token_hex(4)


def _etags(request: Request) -> set[str]:
    """The ETags an If-None-Match header names."""
    return {t.strip() for t in request.headers.get("if-none-match", "").split(",") if t.strip()}


# --- the CLI's words (cli/semaphore.py renders status and history the same way) ---------------


def when(t: datetime | None) -> str:
    return "" if t is None else format_utc(t)


def ago(now: datetime, then: datetime | None) -> str:
    return "" if then is None else format_duration(now - then)


def describe_pause(p: Pause, now: datetime) -> str:
    until = f" until {when(p.until)} (in {ago(p.until, now)})" if p.until else ""
    return f"paused by {p.by}{until}: {p.reason}"


def iso(t: datetime) -> str:
    """An instant for the page's script (its "ago" times): UTC to the second."""
    try:
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError):
        return t.isoformat()


def group_label(group: str) -> str:
    return "(every group)" if group == FLEET else group


# --- blocks: self-contained parts of the page ------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A self-contained part of the live page, shown after the summary (the rollout's stages,
    the blockers): its template in templates/blocks/, given `data` (what `read` returns, read
    for each rendering) besides everything the page has. `mark` changes whenever its data does
    when that data is not in the store (a value the server keeps in memory), so that the
    refresh's ETag sees it; data from the store is covered by the store's revision."""

    template: str
    read: Callable[[ServerState], Awaitable[Any]]
    mark: Callable[[ServerState], str] = field(default=lambda _: "")


# The blocks, in the order shown. To add one: write templates/blocks/NAME.html and list it here.
async def _blockers(state: ServerState) -> tuple[Any, ...]:
    """The server's blockers and their last verdicts, from memory (docs/rollout.md)."""
    return tuple(state.blockers.models())


BLOCKS: tuple[Block, ...] = (
    Block("blockers.html", read=_blockers, mark=lambda s: str(s.blockers.version)),
)


# --- what one rendering shows ------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    """One read of the store made into a Board, kept until the store or the time changes it."""

    generation: int
    revision: str | None  # None: the backend cannot say, so the board is never kept
    snapshot: Snapshot
    board: Board
    rollouts: dict[str, Wave]
    history: list[Event]
    unreadable: tuple[Unreadable, ...]
    changes_at: datetime | None
    rollout: RolloutStatus | None  # the rollout's stages (templates/rollout_strip.html)
    built_at: float = 0.0  # time.monotonic() when its build ended
    build_seconds: float = 0.0

    def current(self, revision: str | None, now: datetime) -> bool:
        if revision is None or revision != self.revision:
            return False
        return self.changes_at is None or now < self.changes_at

    def young(self, monotonic: float) -> bool:
        """Whether a board that was costly to build is still within the time it is kept for
        even though the store changed (KEEP_FACTOR times its build), so that a fleet that
        writes all the time costs at most one build in KEEP_FACTOR + 1 of a core."""
        if self.build_seconds < KEPT_FROM_SECONDS:
            return False
        return monotonic - self.built_at < KEEP_FACTOR * self.build_seconds


@dataclass(frozen=True)
class Ask:
    """What a request asks to see: the filters, the page and the groups' order."""

    group: str = ""
    state: str = ""
    prefix: str = ""
    page: int = 1
    sort: str = DEFAULT_SORT
    refused_state: str = ""  # a state filter that is not one of FILTER_STATES

    @classmethod
    def of(cls, request: Request) -> Ask:
        q = request.query_params
        state = q.get("state", "")
        page = q.get("page", "1")
        sort = q.get("sort", DEFAULT_SORT)
        return cls(
            group=q.get("group", "")[:PREFIX_LONGEST],
            state=state if state in FILTER_STATES else "",
            prefix=q.get("q", "").strip()[:PREFIX_LONGEST],
            page=int(page) if page.isdigit() and len(page) < 10 else 1,
            sort=sort if sort in GROUP_SORTS else DEFAULT_SORT,
            refused_state="" if state in FILTER_STATES or not state else state,
        )

    def query(self, **changes: Any) -> str:
        """The query string of this ask with `changes`: what a link to another page or
        another order carries (empty values and defaults left out)."""
        values = {
            "group": self.group,
            "state": self.state,
            "q": self.prefix,
            "sort": "" if self.sort == DEFAULT_SORT else self.sort,
            "page": "" if self.page == 1 else str(self.page),
        }
        values.update({k: "" if v is None else str(v) for k, v in changes.items()})
        if values.get("sort") == DEFAULT_SORT:
            values["sort"] = ""
        if values.get("page") == "1":
            values["page"] = ""
        kept = {k: v for k, v in values.items() if v}
        return "?" + urlencode(kept) if kept else "?"


@dataclass(frozen=True)
class View:
    """Everything one rendering shows, read at one `now`."""

    now: datetime
    fleet: Fleet
    ask: Ask
    page: Page
    admin: bool
    admin_refused: str
    auth_enabled: bool
    blocks: tuple[tuple[Block, Any], ...] = ()

    @property
    def snapshot(self) -> Snapshot:
        return self.fleet.snapshot


def rollout_status(snap: Snapshot, reports: Sequence[NodeReport]) -> RolloutStatus | None:
    """The rollout's stages from the reads the board is built from (no read of its own)."""
    if snap.rollout is None:
        return None
    groups = {g.group: g.semaphore for g in snap.groups}
    return rollout_core.status(snap.rollout, groups, reports, snap.now)


def _timed(snap: Snapshot, board: Board) -> Timed:
    """What in `snap` and `board` changes with time alone (core.board.changes_at)."""
    reports = [(r.updated_at, r.next_window) for r in board.reports.values()]
    holds = [
        (h.last_seen, g.semaphore.stale_after, h.expires_at) for g in snap.groups for h in g.holds
    ]
    pauses = [g.semaphore.pause.until for g in snap.groups if g.semaphore.pause is not None]
    pauses += [p.until for p in snap.node_pauses.values()]
    if snap.fleet_pause is not None:
        pauses.append(snap.fleet_pause.until)
    return Timed(reports, holds, pauses)


class Dashboard:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # A node's text is shown with its control characters escaped, as the CLI does
            # (a macro's output, Markup, is the template's own and is left as it is).
            finalize=lambda v: (
                printable(v) if isinstance(v, str) and not isinstance(v, Markup) else v
            ),
        )
        self.env.globals.update(
            when=when,
            ago=ago,
            iso=iso,
            describe_pause=describe_pause,
            duration=format_duration,
            group_label=group_label,
            version=__version__,
            refresh=REFRESH_SECONDS,
            states=FILTER_STATES,
            sorts=tuple(GROUP_SORTS),
        )
        self._fleet: Fleet | None = None
        self._generation = 0
        self._building = asyncio.Lock()

    def _admin(self, request: Request) -> tuple[bool, str]:
        """(controls shown, why a token was refused). Controls need a token the admin API
        accepts; with auth off any token does (the operator asked for admin mode)."""
        header = request.headers.get("authorization", "")
        if not header:
            return False, ""
        who = self.state.auth.admin(header.encode())
        if isinstance(who, Denial):
            return False, who.value
        return True, ""

    # --- the board, kept while the store does not change ---------------------------------------

    async def _revision(self) -> str | None:
        backend = self.state.backend
        return await backend.revision() if isinstance(backend, Revisions) else None

    async def fleet(self, fresh: bool = False) -> Fleet:
        """The board of the store as it is now: the kept one when the store's revision is the
        same and time has not changed it (or, unless `fresh`, when it is young: Fleet.young),
        else a new one (one build at a time; a request that waited for another's build uses
        it)."""
        revision = await self._revision()
        kept = self._fleet
        if kept is not None and kept.current(revision, utcnow()):
            return kept
        if kept is not None and not fresh and kept.young(time.monotonic()):
            return kept
        generation = self._generation
        async with self._building:
            if self._generation != generation and self._fleet is not None:
                return self._fleet  # built while this request waited: newer than its revision
            began = time.monotonic()
            built = await self._build(revision)
            ended = time.monotonic()
            self._fleet = replace(built, built_at=ended, build_seconds=ended - began)
            self._generation = built.generation
            return self._fleet

    async def _build(self, revision: str | None) -> Fleet:
        """Read the store and make the board. The revision was read before, so a write that
        lands during these reads shows as a new revision at the next refresh."""
        backend = self.state.backend
        snap = await backend.status()
        stored = await backend.read_nodes()
        history = await backend.history(None, HISTORY_READ)
        holds = {g.group: g.holds for g in snap.groups}
        silent_after = self.state.settings.silent_after
        nodes = fleet_nodes(
            stored.reports,
            holds,
            history,
            snap.now,
            silent_after,
            node_pauses=snap.node_pauses,
        )
        groups = {
            g.group: (len(g.holds), g.semaphore.max, g.pause is not None) for g in snap.groups
        }
        stale = {(g.group, hold_id) for g in snap.groups for hold_id in g.stale}
        board = Board(nodes, groups, stale)
        rollouts = {
            line.group: current_wave(
                line.group, board.by_group.get(line.group, []), history, snap.now
            )
            for line in board.lines
        }
        return Fleet(
            generation=self._generation + 1,
            revision=revision,
            snapshot=snap,
            board=board,
            rollouts=rollouts,
            history=history[:HISTORY_SHOWN],
            unreadable=stored.unreadable,
            changes_at=changes_at(_timed(snap, board), snap.now, silent_after),
            rollout=rollout_status(snap, stored.reports),
        )

    # --- a rendering -----------------------------------------------------------------------------

    def _etag(self, fleet: Fleet, ask: Ask, admin: tuple[bool, str]) -> str:
        """The live part's ETag: the board's generation (with this process's mark) and a
        digest of what the request asks to see, as whom, and of every block's own mark."""
        marks = "|".join(b.mark(self.state) for b in BLOCKS)
        what = f"{ask!r}\n{admin!r}\n{marks}".encode()
        digest = hashlib.blake2b(what, digest_size=8).hexdigest()
        return f'W/"{PROCESS_MARK}.{fleet.generation}.{digest}"'

    async def _view(self, ask: Ask, fleet: Fleet, admin: tuple[bool, str]) -> View:
        board = fleet.board
        page = page_of(board.select(ask.group, ask.state, ask.prefix), ask.page, PAGE_SIZE)
        blocks = tuple([(b, await b.read(self.state)) for b in BLOCKS])
        return View(
            # The board's marks hold until fleet.changes_at; its times are shown as of now.
            now=utcnow(),
            fleet=fleet,
            ask=ask,
            page=page,
            admin=admin[0],
            admin_refused=admin[1],
            auth_enabled=self.state.auth.enabled,
            blocks=blocks,
        )

    def _context(self, v: View) -> dict[str, Any]:
        snap = v.snapshot
        board = v.fleet.board
        statuses = {g.group: g for g in snap.groups}

        def conditions(g: GroupStatus, hold_id: str) -> tuple[HoldCondition, ...]:
            return hold_conditions(g.group, hold_id, hold_id in g.stale, board.reports)

        lines = sort_groups(board.lines, v.ask.sort)
        return {
            "v": v,
            "board": board,
            "conditions": conditions,
            "lines": lines[:GROUPS_SHOWN],
            "lines_hidden": max(0, len(lines) - GROUPS_SHOWN),
            "statuses": statuses,
            "node_groups": [line.group for line in board.lines],
            "fleet_pause": snap.fleet_pause,
            "node_pauses": list(snap.node_pauses.items()),
            "urgent_reboots": list(snap.urgent_reboots.items()),
            "banners_shown": BANNERS_SHOWN,
            "holds_shown": HOLDS_SHOWN,
            "rollout": v.fleet.rollout,
        }

    def _html(self, request: Request, html: str, etag: str | None) -> Response:
        headers = {"cache-control": "no-cache" if etag else "no-store", "vary": "authorization"}
        if etag:
            headers["etag"] = etag
        body = html.encode()
        if len(body) >= GZIP_FROM and "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=5)
            headers["content-encoding"] = "gzip"
            headers["vary"] = "authorization, accept-encoding"
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)

    async def _render(self, request: Request, template: str) -> Response:
        admin = self._admin(request)
        ask = Ask.of(request)
        try:
            fresh = "no-cache" in request.headers.get("cache-control", "")
            fleet = await self.fleet(fresh)
            etag = self._etag(fleet, ask, admin) if fleet.revision is not None else None
            if template == "live.html" and etag is not None and etag in _etags(request):
                headers = {"etag": etag, "cache-control": "no-cache", "vary": "authorization"}
                return Response(status_code=304, headers=headers)
            v = await self._view(ask, fleet, admin)
        except Exception as exc:
            _, value = self.state.failed("dashboard", exc)
            body = f"<!doctype html><title>stagger</title><p>{escape(value)}</p>"
            return HTMLResponse(body, status_code=503, headers={"cache-control": "no-store"})
        context = self._context(v)
        context["etag"] = etag or ""
        html = self.env.get_template(template).render(context)
        return self._html(request, html, etag if template == "live.html" else None)

    def _refused(self, request: Request) -> Response | None:
        """With `dashboard_auth`, the page needs an admin token: asked for by the browser's
        own password prompt (HTTP Basic, the token as the password)."""
        if not self.state.settings.dashboard_auth:
            return None
        header = request.headers.get("authorization", "").encode() or None
        who = self.state.auth.admin(header)
        if not isinstance(who, Denial):
            return None
        body = (
            "<!doctype html><title>stagger</title><p>This dashboard needs an admin token: "
            "give it as the password (any user name).</p>"
        )
        return HTMLResponse(
            body,
            status_code=401,
            headers={"www-authenticate": DASHBOARD_CHALLENGE, "cache-control": "no-store"},
        )

    async def page(self, request: Request) -> Response:
        return self._refused(request) or await self._render(request, "dashboard.html")

    async def live(self, request: Request) -> Response:
        return self._refused(request) or await self._render(request, "live.html")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/dashboard/live", self.live, methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ]

"""The dashboard at `/`: server-rendered HTML (Jinja2), readable without JavaScript and on a
phone. A small script (static/dashboard.js) re-fetches the live part every few seconds and,
once an operator gives an admin token, shows the admin controls, which call the JSON admin
API with that token.

What it shows comes from the same reads as the API: status (groups, holds, pauses), node
reports plus FleetLock-only nodes from their locks (core.fleet_view.fleet_nodes), history, and
each group's rollout (core.waves.current_wave). Reading needs no token by default (like a status
page); `[server] dashboard_auth = true` asks for the admin token (docs/server.md "Auth"), and
`dashboard = false` turns it off. The controls appear only in a fragment asked for with an
admin token, and the API refuses admin acts without one anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from stagger import __version__
from stagger.backends.protocol import GroupStatus, Snapshot
from stagger.core import rollout as rollouts
from stagger.core.cycle.node_state import State
from stagger.core.durations import format_duration
from stagger.core.fleet_view import (
    HOLDING,
    SEEN,
    HoldCondition,
    NodeView,
    fleet_nodes,
    hold_conditions,
)
from stagger.core.node_report import NodeReport, Unreadable
from stagger.core.rollout import RolloutStatus
from stagger.core.semaphore import FLEET, Event, Pause
from stagger.core.text import printable
from stagger.core.times import format_utc
from stagger.core.waves import Wave, current_wave
from stagger.server.auth import Denial
from stagger.server.context import ServerState

HERE = Path(__file__).parent
DASHBOARD_CHALLENGE = 'Basic realm="stagger dashboard", charset="UTF-8"'
HISTORY_SHOWN = 100
REFRESH_SECONDS = 5
# Every state a node row can be in, in cycle order, for the filter.
STATES = (*(s.value for s in State), HOLDING, SEEN, "silent")


# --- the CLI's words (cli/semaphore.py renders status and history the same way) ---------------


def when(t: datetime | None) -> str:
    return "" if t is None else format_utc(t)


def ago(now: datetime, then: datetime | None) -> str:
    return "" if then is None else format_duration(now - then)


def describe_pause(p: Pause, now: datetime) -> str:
    until = f" until {when(p.until)} (in {ago(p.until, now)})" if p.until else ""
    return f"paused by {p.by}{until}: {p.reason}"


def group_label(group: str) -> str:
    return "(every group)" if group == FLEET else group


@dataclass(frozen=True)
class View:
    """Everything one rendering shows, read at one `now`."""

    now: datetime
    snapshot: Snapshot
    nodes: list[NodeView]
    shown: list[NodeView]  # after the filters
    rollouts: dict[str, Wave]
    history: list[Event]
    group_filter: str
    state_filter: str
    admin: bool
    admin_refused: str
    auth_enabled: bool
    unreadable: tuple[Unreadable, ...] = ()  # stored reports this server cannot read
    rollout: RolloutStatus | None = None  # the rollout's stages (templates/rollout_strip.html)


def rollout_status(snap: Snapshot, reports: Sequence[NodeReport]) -> RolloutStatus | None:
    """The rollout's stages from the reads the page already made (no read of its own)."""
    if snap.rollout is None:
        return None
    groups = {g.group: g.semaphore for g in snap.groups}
    return rollouts.status(snap.rollout, groups, reports, snap.now)


def _matches(n: NodeView, group: str, state: str) -> bool:
    if group and n.group != group:
        return False
    if state == "silent":
        return n.silent
    return not state or n.state == state


class Dashboard:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # A node's text is shown with its control characters escaped, as the CLI does.
            finalize=lambda v: printable(v) if isinstance(v, str) else v,
        )
        self.env.globals.update(
            when=when,
            ago=ago,
            describe_pause=describe_pause,
            duration=format_duration,
            group_label=group_label,
            version=__version__,
            refresh=REFRESH_SECONDS,
            states=STATES,
        )

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

    async def view(self, request: Request) -> View:
        backend = self.state.backend
        snap = await backend.status()
        stored = await backend.read_nodes()
        history = await backend.history(None, HISTORY_SHOWN)
        holds = {g.group: g.holds for g in snap.groups}
        nodes = fleet_nodes(
            stored.reports,
            holds,
            history,
            snap.now,
            self.state.settings.silent_after,
            node_pauses=snap.node_pauses,
        )
        groups = sorted({g.group for g in snap.groups} | {n.group for n in nodes})
        rollouts = {g: current_wave(g, nodes, history, snap.now) for g in groups}
        group_filter = request.query_params.get("group", "")
        state_filter = request.query_params.get("state", "")
        admin, refused = self._admin(request)
        return View(
            now=snap.now,
            snapshot=snap,
            nodes=nodes,
            shown=[n for n in nodes if _matches(n, group_filter, state_filter)],
            rollouts=rollouts,
            history=history,
            group_filter=group_filter,
            state_filter=state_filter,
            admin=admin,
            admin_refused=refused,
            auth_enabled=self.state.auth.enabled,
            unreadable=stored.unreadable,
            rollout=rollout_status(snap, stored.reports),
        )

    def _context(self, v: View) -> dict[str, Any]:
        groups: list[GroupStatus] = list(v.snapshot.groups)
        known = {g.group for g in groups}
        reports = {n.id: n.report for n in v.nodes if n.report is not None}

        def conditions(g: GroupStatus, hold_id: str) -> tuple[HoldCondition, ...]:
            return hold_conditions(g.group, hold_id, hold_id in g.stale, reports)

        return {
            "v": v,
            "conditions": conditions,
            "groups": groups,
            "node_groups": sorted(known | {n.group for n in v.nodes}),
            "fleet_pause": v.snapshot.fleet_pause,
            "node_pauses": v.snapshot.node_pauses,
            "urgent_reboots": v.snapshot.urgent_reboots,
            "rollout": v.rollout,
        }

    async def _render(self, request: Request, template: str) -> Response:
        try:
            v = await self.view(request)
        except Exception as exc:
            _, value = self.state.failed("dashboard", exc)
            body = f"<!doctype html><title>stagger</title><p>{escape(value)}</p>"
            return HTMLResponse(body, status_code=503, headers={"cache-control": "no-store"})
        html = self.env.get_template(template).render(self._context(v))
        return HTMLResponse(html, headers={"cache-control": "no-store"})

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

"""The status and admin JSON API (and its OpenAPI document), for operators, dashboards and
`stagger ... --server URL`. Reads and admin acts need an admin token when auth is on; a
holder's heartbeat needs a node token for its group. Every error is FleetLock-shaped JSON
`{"kind", "value"}` with a kind from ErrorKind.

Why this file is long (~660 lines): the admin API's endpoints and their route table are
kept in one file so that every endpoint's auth check, input model and answer model can be
seen together with /openapi.json's list (server/openapi.py); decisions live in core/ and the
stores, each handler is a few lines.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from stagger.api import (
    ActorRequest,
    AskRebootRequest,
    AskRebootResponse,
    BlockersModel,
    ClearRebootResponse,
    ClearRolloutResponse,
    ConfigureRequest,
    ErrorKind,
    ForgetResponse,
    GroupModel,
    HealthModel,
    HistoryModel,
    HoldModel,
    MaxFailuresRequest,
    MaxFailuresResponse,
    NodeReportRequest,
    NodesModel,
    PaceRequest,
    PaceResponse,
    PauseModel,
    PauseRequest,
    PauseResponse,
    ReportResponse,
    ResumeResponse,
    RolloutModel,
    RolloutRequest,
    SetMaxRequest,
    SetMaxResponse,
    StatusModel,
    TouchResponse,
    UnlockResponse,
    UrgentModel,
)
from stagger.backends.estimates import group_etas
from stagger.backends.node_pages import SummarisedReports, holder_reports, scrape_counts
from stagger.backends.protocol import Snapshot
from stagger.backends.semaphore_store import SemaphoreStore
from stagger.core.errors import InvalidInput
from stagger.core.forget import NodeHoldsSlot
from stagger.core.listing import (
    DEFAULT_PAGE,
    HISTORY,
    MAX_PAGE,
    HistoryQuery,
    NodeQuery,
    decode_history_cursor,
    decode_node_cursor,
    encode_cursor,
)
from stagger.core.node_report import NodeReport
from stagger.core.rollout import plan_from_table
from stagger.core.rollout_gate import budget_to_text, parse_budget
from stagger.core.semaphore import (
    HISTORY_LIMIT,
    MAX_ID_LEN,
    Hold,
    Released,
    validate_group,
    validate_node_id,
)
from stagger.core.text import whole_number
from stagger.core.times import EARLIEST, LATEST
from stagger.server.auth import CHALLENGE, CLIENT_CERT_NAMES, NO_NAMES, Denial
from stagger.server.context import ServerState, error_body
from stagger.server.fleetlock import Reject
from stagger.server.metrics import CONTENT_TYPE
from stagger.server.settings import BY_RE, MAX_BODY

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]

OPERATOR = "operator:api"


def error_response(kind: ErrorKind, value: str, headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if kind is ErrorKind.UNAUTHORIZED:
        headers["www-authenticate"] = CHALLENGE.decode()
    return Response(
        error_body(kind, value),
        status_code=kind.status,
        media_type="application/json",
        headers=headers,
    )


@contextmanager
def invalid_request() -> Iterator[None]:
    """Input core refuses (a filter, a cursor) as a 400 with core's sentence."""
    try:
        yield
    except InvalidInput as exc:
        raise Reject(ErrorKind.INVALID_REQUEST, exc.message) from None


def _instant(raw: str | None, what: str) -> datetime | None:
    """A filter's instant: RFC 3339 with a UTC offset. One outside the times stagger keeps
    (core/times.py) filters like the nearest one it keeps: before 1970 is "everything"."""
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{what} must be an RFC 3339 time, like 2026-01-31T12:00:00Z") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} {raw} has no UTC offset: add one, like {raw}Z")
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = EARLIEST if value.year < EARLIEST.year else LATEST
    return min(max(utc, EARLIEST), LATEST)


def json_response(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 answers, as FleetLock-shaped JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(
            ErrorKind.METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on {request.url.path}",
            dict(exc.headers or {}),
        )
    if exc.status_code == 404:
        return error_response(ErrorKind.NOT_FOUND, f"no endpoint at {request.url.path}")
    return error_response(ErrorKind.INVALID_REQUEST, str(exc.detail))


async def read_model(request: Request, model: type[M], *, optional: bool = False) -> M:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise Reject(ErrorKind.PAYLOAD_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Reject(ErrorKind.PAYLOAD_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
    if optional and not body.strip():
        body = b"{}"
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise Reject(
            ErrorKind.INVALID_REQUEST, f"{where}: {first['msg']} (see /openapi.json)"
        ) from None


def refuse_cross_site(request: Request) -> None:
    """An admin act sent by a browser from another site is refused: a browser that cached
    the dashboard's Basic credentials (`dashboard_auth`) would attach them to a form another
    site posts here. Tools (the CLI, curl, agents) send neither header."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    foreign = site in ("cross-site", "same-site")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        foreign = True
    if foreign:
        raise Reject(
            ErrorKind.FORBIDDEN,
            "admin acts are not accepted from a page of another site: use the dashboard "
            "served by this server, or the CLI",
        )


class Api:
    def __init__(self, state: ServerState) -> None:
        self.state = state

    # --- plumbing ---------------------------------------------------------------------------

    def _endpoint(self, name: str, fn: Handler) -> Handler:
        metrics = self.state.metrics

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await fn(request)
                kind = "ok"
            except Reject as r:
                response = error_response(r.kind, r.value)
                kind = r.kind.value
            except Exception as exc:
                k, value = self.state.failed(name, exc)
                response = error_response(k, value)
                kind = k.value
            metrics.observe(name, kind, time.perf_counter() - started)
            return response

        return endpoint

    def _admin(self, request: Request) -> str:
        """Check for an admin token; returns who acts (for history)."""
        if request.method not in ("GET", "HEAD"):
            refuse_cross_site(request)
        who = self.state.auth.admin(request.headers.get("authorization", "").encode() or None)
        if isinstance(who, Denial):
            raise Reject(who.kind, who.value)
        return who.name if who is not None else OPERATOR

    def _group(self, request: Request) -> str:
        group: str = request.path_params["group"]
        try:
            return validate_group(group)
        except InvalidInput as exc:
            raise Reject(ErrorKind.INVALID_GROUP, exc.message) from None

    async def _known_group(self, request: Request) -> str:
        group = self._group(request)
        if not await self.state.group_known(group):
            raise Reject(
                ErrorKind.UNKNOWN_GROUP,
                f"group {group!r} is not configured on this server "
                "(create it with stagger set-max N --group GROUP)",
            )
        return group

    def _node(self, request: Request, group: str, node_id: str) -> None:
        """For node-facing endpoints: a node acts only for itself (docs/server.md "Auth")."""
        refuse_cross_site(request)
        who = self.state.auth.for_node(
            request.headers.get("authorization", "").encode() or None,
            request.scope.get(CLIENT_CERT_NAMES, NO_NAMES),
            group,
            node_id,
        )
        if isinstance(who, Denial):
            raise Reject(who.kind, who.value)

    def _id(self, request: Request) -> str:
        node_id: str = request.path_params["id"]
        try:
            return validate_node_id(node_id)
        except InvalidInput as exc:
            raise Reject(ErrorKind.INVALID_REQUEST, exc.message) from None

    def _by(self, request: Request, actor: str) -> str:
        """`?by=` (who acts, for history), or the caller's name."""
        by = request.query_params.get("by")
        if by is None:
            return actor
        if len(by) > MAX_ID_LEN or not BY_RE.fullmatch(by):
            raise Reject(
                ErrorKind.INVALID_REQUEST,
                f"by must be 1 to {MAX_ID_LEN} characters without control characters, "
                "like operator:alice",
            )
        return by

    def _limit(self, request: Request) -> int:
        limit = whole_number(request.query_params.get("limit", "100"), 1, HISTORY_LIMIT)
        if limit is None:
            raise Reject(
                ErrorKind.INVALID_REQUEST, f"limit must be a whole number from 1 to {HISTORY_LIMIT}"
            )
        return limit

    # --- reads ------------------------------------------------------------------------------

    async def _reports(self, snap: Snapshot) -> dict[str, NodeReport]:
        """The holders' last reports, so a hold says when its node is halted."""
        return {r.id: r for r in (await holder_reports(self.state.backend, snap)).reports}

    async def status(self, request: Request) -> Response:
        self._admin(request)
        snap = await self.state.backend.status()
        blockers = self.state.blockers.models()
        etas = await group_etas(self.state.backend, snap)
        return json_response(StatusModel.of(snap, await self._reports(snap), blockers, etas))

    async def blockers(self, request: Request) -> Response:
        """The blockers and their last verdicts: from memory, the store is not read."""
        self._admin(request)
        return json_response(BlockersModel(blockers=self.state.blockers.models()))

    async def group(self, request: Request) -> Response:
        self._admin(request)
        group = await self._known_group(request)
        snap = await self.state.backend.status(group)
        eta = (await group_etas(self.state.backend, snap)).get(group)
        return json_response(GroupModel.of(snap.groups[0], await self._reports(snap), eta))

    async def group_history(self, request: Request) -> Response:
        self._admin(request)
        group = await self._known_group(request)
        return await self._history_page(request, group)

    async def history(self, request: Request) -> Response:
        self._admin(request)
        return await self._history_page(request, self._group_filter(request))

    async def _history_page(self, request: Request, group: str | None) -> Response:
        params = request.query_params
        cursor = params.get("cursor")
        with invalid_request():
            query = HistoryQuery(
                group=group,
                since=_instant(params.get("since"), "since"),
                q=params.get("q", ""),
                before=decode_history_cursor(cursor) if cursor else None,
                limit=self._limit(request),
            )
        page = await self.state.backend.history_page(query)
        after = encode_cursor(HISTORY, page.next) if page.next is not None else None
        return json_response(HistoryModel.of(page.events, after))

    # --- admin ------------------------------------------------------------------------------

    async def set_max(self, request: Request) -> Response:
        actor = self._admin(request)
        group = self._group(request)
        body = await read_model(request, SetMaxRequest)
        value = await self.state.backend.set_max(
            group, body.value, by=body.by or actor, percent=body.percent
        )
        self.state.note_group(group)
        return json_response(SetMaxResponse(group=group, max=value, percent=body.percent))

    async def set_pace(self, request: Request) -> Response:
        actor = self._admin(request)
        group = self._group(request)
        body = await read_model(request, PaceRequest)
        pace = timedelta(seconds=body.pace) if body.pace is not None else None
        value = await self.state.backend.set_pace(group, pace, by=body.by or actor)
        self.state.note_group(group)
        seconds = value.total_seconds() if value is not None else None
        return json_response(PaceResponse(group=group, pace=seconds))

    async def configure(self, request: Request) -> Response:
        actor = self._admin(request)
        group = self._group(request)
        body = await read_model(request, ConfigureRequest)
        ttl = timedelta(seconds=body.hold_ttl) if body.hold_ttl is not None else None
        await self.state.backend.configure(
            group,
            by=body.by or actor,
            hold_ttl=ttl,
            stale_after=timedelta(seconds=body.stale_after),
        )
        self.state.note_group(group)
        snap = await self.state.backend.status(group)
        return json_response(GroupModel.of(snap.groups[0], await self._reports(snap)))

    async def _pause(self, request: Request, actor: str, group: str | None) -> Response:
        body = await read_model(request, PauseRequest)
        p = await self.state.backend.pause(
            group, by=body.by or actor, reason=body.reason, until=body.until
        )
        if group is not None:
            self.state.note_group(group)
        model = PauseModel.of(p)
        assert model is not None
        return json_response(PauseResponse(group=group, node=None, pause=model))

    async def _resume(self, request: Request, actor: str, group: str | None) -> Response:
        body = await read_model(request, ActorRequest, optional=True)
        lifted = await self.state.backend.resume(group, by=body.by or actor)
        return json_response(ResumeResponse(group=group, node=None, lifted=PauseModel.of(lifted)))

    async def pause_group(self, request: Request) -> Response:
        return await self._pause(request, self._admin(request), self._group(request))

    async def resume_group(self, request: Request) -> Response:
        return await self._resume(request, self._admin(request), self._group(request))

    async def pause_fleet(self, request: Request) -> Response:
        return await self._pause(request, self._admin(request), None)

    async def resume_fleet(self, request: Request) -> Response:
        return await self._resume(request, self._admin(request), None)

    async def pause_node(self, request: Request) -> Response:
        actor = self._admin(request)
        node_id = self._id(request)
        body = await read_model(request, PauseRequest)
        p = await self.state.backend.pause_node(
            node_id, by=body.by or actor, reason=body.reason, until=body.until
        )
        return json_response(
            PauseResponse(group=None, node=node_id, pause=PauseModel.from_pause(p))
        )

    async def resume_node(self, request: Request) -> Response:
        actor = self._admin(request)
        node_id = self._id(request)
        body = await read_model(request, ActorRequest, optional=True)
        lifted = await self.state.backend.resume_node(node_id, by=body.by or actor)
        return json_response(ResumeResponse(group=None, node=node_id, lifted=PauseModel.of(lifted)))

    async def ask_reboot(self, request: Request) -> Response:
        actor = self._admin(request)
        node_id = self._id(request)
        body = await read_model(request, AskRebootRequest)
        u = await self.state.backend.ask_reboot(
            node_id, by=body.by or actor, reason=body.reason, ignore_blackouts=body.ignore_blackouts
        )
        return json_response(AskRebootResponse(node=node_id, urgent=UrgentModel.of(u)))

    async def clear_reboot(self, request: Request) -> Response:
        """An agent drops its own ask once it rebooted for it (`?done_by=`: its last reboot;
        `?group=`: its group, for its node token), or an admin drops any."""
        node_id = self._id(request)
        group = request.query_params.get("group")
        if group is not None:
            try:
                validate_group(group)
            except InvalidInput as exc:
                raise Reject(ErrorKind.INVALID_GROUP, exc.message) from None
            self._node(request, group, node_id)
        else:
            self._admin(request)
        raw = request.query_params.get("done_by")
        try:
            done_by = datetime.fromisoformat(raw) if raw else None
        except ValueError:
            raise Reject(ErrorKind.INVALID_REQUEST, "done_by must be an RFC 3339 time") from None
        if done_by is not None and done_by.tzinfo is None:
            raise Reject(ErrorKind.INVALID_REQUEST, "done_by must carry a UTC offset")
        cleared = await self.state.backend.clear_reboot(node_id, done_by=done_by)
        model = UrgentModel.of(cleared) if cleared is not None else None
        return json_response(ClearRebootResponse(node=node_id, cleared=model))

    async def unlock(self, request: Request) -> Response:
        actor = self._admin(request)
        group, node_id = self._group(request), self._id(request)
        by = self._by(request, actor)
        outcome = await self.state.backend.release(group, node_id, by=by)
        held = outcome.hold if isinstance(outcome, Released) else None
        return json_response(
            UnlockResponse(
                group=group,
                id=node_id,
                by=by,
                released=held is not None,
                hold=HoldModel.of(held) if held is not None else None,
            )
        )

    async def touch(self, request: Request) -> Response:
        group, node_id = self._group(request), self._id(request)
        self._node(request, group, node_id)
        hold: Hold | None = await self.state.backend.touch(group, node_id)
        return json_response(
            TouchResponse(
                group=group,
                id=node_id,
                held=hold is not None,
                hold=HoldModel.of(hold) if hold is not None else None,
            )
        )

    # --- node reports (stagger's extension) --------------------------------------------------

    async def report(self, request: Request) -> Response:
        node_id = self._id(request)
        body = await read_model(request, NodeReportRequest)
        self._node(request, body.group, node_id)
        try:
            report = body.value(node_id)
        except InvalidInput as exc:
            raise Reject(ErrorKind.INVALID_REQUEST, exc.message) from None
        stored = await self.state.backend.report(report)
        assert stored.updated_at is not None
        return json_response(
            ReportResponse(id=stored.id, group=stored.group, updated_at=stored.updated_at)
        )

    def _group_filter(self, request: Request) -> str | None:
        group = request.query_params.get("group")
        if group is not None:
            try:
                validate_group(group)
            except InvalidInput as exc:
                raise Reject(ErrorKind.INVALID_GROUP, exc.message) from None
        return group

    async def nodes(self, request: Request) -> Response:
        """One page of the fleet view (docs/server.md, "Pages"): `limit`, `cursor`, and the
        filters `group`, `state`, `since`, `q`."""
        self._admin(request)
        group = self._group_filter(request)
        params = request.query_params
        cursor = params.get("cursor")
        limit = whole_number(params.get("limit", str(DEFAULT_PAGE)), 1, MAX_PAGE)
        if limit is None:
            raise Reject(
                ErrorKind.INVALID_REQUEST, f"limit must be a whole number from 1 to {MAX_PAGE}"
            )
        with invalid_request():
            query = NodeQuery(
                group=group,
                state=params.get("state"),
                q=params.get("q", ""),
                since=_instant(params.get("since"), "since"),
                after=decode_node_cursor(cursor) if cursor else None,
                limit=limit,
            )
        page = await self.state.backend.node_page(query, self.state.settings.silent_after)
        return json_response(NodesModel.of(page))

    async def forget(self, request: Request) -> Response:
        actor = self._admin(request)
        node_id = self._id(request)
        by = self._by(request, actor)
        try:
            removed = await self.state.backend.forget(node_id, by=by)
        except NodeHoldsSlot as exc:
            return Response(
                error_body(ErrorKind.NODE_HOLDS_SLOT, exc.message, group=exc.group),
                status_code=ErrorKind.NODE_HOLDS_SLOT.status,
                media_type="application/json",
            )
        return json_response(ForgetResponse(id=node_id, by=by, forgotten=removed))

    # --- probes -----------------------------------------------------------------------------

    # --- the rollout (docs/rollout.md) -------------------------------------------------------

    def _store(self) -> SemaphoreStore:
        backend = self.state.backend
        if not isinstance(backend, SemaphoreStore):
            raise Reject(
                ErrorKind.INVALID_REQUEST,
                "this server's backend keeps no rollout: run it on a sqlite:// or etcd:// store",
            )
        return backend

    async def rollout(self, request: Request) -> Response:
        self._admin(request)
        return json_response(RolloutModel.of(await self._store().rollout_status()))

    async def set_rollout(self, request: Request) -> Response:
        actor = self._admin(request)
        body = await read_model(request, RolloutRequest)
        try:
            stages, budget = plan_from_table(body.table())
        except InvalidInput as exc:
            raise Reject(ErrorKind.INVALID_REQUEST, f"rollout: {exc.message}") from None
        store = self._store()
        await store.set_rollout(stages, budget, by=body.by or actor)
        return json_response(RolloutModel.of(await store.rollout_status()))

    async def clear_rollout(self, request: Request) -> Response:
        actor = self._admin(request)
        body = await read_model(request, ActorRequest, optional=True)
        cleared = await self._store().clear_rollout(by=body.by or actor)
        return json_response(ClearRolloutResponse(cleared=cleared is not None))

    async def set_max_failures(self, request: Request) -> Response:
        actor = self._admin(request)
        group = self._group(request)
        body = await read_model(request, MaxFailuresRequest)
        try:
            budget = parse_budget(body.max_failures) if body.max_failures is not None else None
        except InvalidInput as exc:
            raise Reject(ErrorKind.INVALID_REQUEST, exc.message) from None
        await self._store().set_max_failures(group, budget, by=body.by or actor)
        self.state.note_group(group)
        return json_response(MaxFailuresResponse(group=group, max_failures=budget_to_text(budget)))

    async def healthz(self, request: Request) -> Response:
        return json_response(HealthModel(status="ok"))

    async def readyz(self, request: Request) -> Response:
        await self.state.backend.ping()
        return json_response(HealthModel(status="ready"))

    async def metrics(self, request: Request) -> Response:
        try:
            snap = await self.state.backend.status()
            self.state.metrics.set_groups(snap)
            self.state.metrics.set_nodes(await self._node_counts(snap.now))
        except Exception as exc:
            # The request counters still tell a story while the store is down.
            self.state.failed("metrics", exc)
        return Response(self.state.metrics.render(), media_type=CONTENT_TYPE)

    async def _node_counts(self, now: datetime) -> dict[tuple[str, str], int]:
        """Reporting nodes per (group, state), a silent one as `silent`: from the store's
        summary (SQLite: one row per group and state; etcd: the counts its watch keeps, or
        when that is not in sync the count-only ranges), so a scrape costs the same at any
        fleet size (docs/backends.md, "Counting the reports")."""
        backend = self.state.backend
        # A server runs on sqlite:// or etcd:// (never fleetlock://), and both keep the summary.
        assert isinstance(backend, SummarisedReports), backend
        silent_before = now - self.state.settings.silent_after
        counts, watched = await scrape_counts(backend, silent_before)
        self.state.metrics.set_counts_watched(watched)
        return counts.metric_counts()

    async def openapi(self, request: Request) -> Response:
        from stagger.server.openapi import document

        return Response(document(), media_type="application/json")

    def routes(self) -> list[BaseRoute]:
        e = self._endpoint
        return [
            Route("/v1/status", e("status", self.status), methods=["GET"]),
            Route("/v1/history", e("history", self.history), methods=["GET"]),
            Route("/v1/blockers", e("blockers", self.blockers), methods=["GET"]),
            Route("/v1/pause", e("pause", self.pause_fleet), methods=["POST"]),
            Route("/v1/resume", e("resume", self.resume_fleet), methods=["POST"]),
            Route("/v1/groups/{group}", e("group", self.group), methods=["GET"]),
            Route(
                "/v1/groups/{group}/history",
                e("group-history", self.group_history),
                methods=["GET"],
            ),
            Route("/v1/groups/{group}/max", e("set-max", self.set_max), methods=["PUT"]),
            Route("/v1/groups/{group}/config", e("configure", self.configure), methods=["PUT"]),
            Route(
                "/v1/groups/{group}/max-failures",
                e("set-max-failures", self.set_max_failures),
                methods=["PUT"],
            ),
            Route("/v1/groups/{group}/pace", e("set-pace", self.set_pace), methods=["PUT"]),
            Route("/v1/groups/{group}/pause", e("pause", self.pause_group), methods=["POST"]),
            Route("/v1/groups/{group}/resume", e("resume", self.resume_group), methods=["POST"]),
            Route("/v1/groups/{group}/holds/{id}", e("unlock", self.unlock), methods=["DELETE"]),
            Route("/v1/groups/{group}/holds/{id}/touch", e("touch", self.touch), methods=["POST"]),
            Route("/v1/rollout", e("rollout", self.rollout), methods=["GET"]),
            Route("/v1/rollout", e("set-rollout", self.set_rollout), methods=["PUT"]),
            Route("/v1/rollout", e("clear-rollout", self.clear_rollout), methods=["DELETE"]),
            Route("/v1/nodes", e("nodes", self.nodes), methods=["GET"]),
            Route("/v1/nodes/{id}", e("forget", self.forget), methods=["DELETE"]),
            Route("/v1/nodes/{id}/report", e("report", self.report), methods=["POST"]),
            Route("/v1/nodes/{id}/pause", e("pause-node", self.pause_node), methods=["POST"]),
            Route("/v1/nodes/{id}/resume", e("resume-node", self.resume_node), methods=["POST"]),
            Route("/v1/nodes/{id}/reboot", e("ask-reboot", self.ask_reboot), methods=["POST"]),
            Route(
                "/v1/nodes/{id}/reboot", e("clear-reboot", self.clear_reboot), methods=["DELETE"]
            ),
            Route("/healthz", e("healthz", self.healthz), methods=["GET"]),
            Route("/readyz", e("readyz", self.readyz), methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]

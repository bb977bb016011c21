"""The agent's client for any FleetLock server (stagger's own, airlock, poseidon...):
`fleetlock+http://[NAME:TOKEN@]host:port/prefix/` or `fleetlock+https://...`.

FleetLock has two operations, lock (`pre-reboot`) and unlock-if-held (`steady-state`), so
that is all this backend can do against a foreign server. Against a stagger server it also
speaks the admin API (status, set-max, pause, resume, unlock of another id, history,
heartbeats), which is how `stagger status --server URL` and friends work.

This file is the URL and the operations; the HTTP calls, their retries and what a failed call
means (TLS, credentials, denials as each server spells them) are backends/fleetlock_transport.py.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from pydantic import ValidationError

from stagger.api import (
    AskRebootResponse,
    BlockerModel,
    BlockersModel,
    ClearRebootResponse,
    ClearRolloutResponse,
    ErrorKind,
    ErrorModel,
    ForgetResponse,
    GroupModel,
    HistoryModel,
    MaxFailuresResponse,
    NodeReportRequest,
    NodesModel,
    PaceResponse,
    PauseResponse,
    ReportResponse,
    ResumeResponse,
    RolloutModel,
    SetMaxResponse,
    StatusModel,
    TouchResponse,
    UnlockResponse,
)
from stagger.backends.fleetlock_transport import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    FleetLockTransport,
    read_denial,
    read_error,
)
from stagger.backends.protocol import Clock, Snapshot, option_seconds, utcnow, validate_limit
from stagger.core.errors import BackendUnavailable, ConfigError
from stagger.core.forget import NodeHoldsSlot
from stagger.core.listing import (
    HISTORY,
    MAX_PAGE,
    MAX_PAGES,
    NODES,
    HistoryPage,
    HistoryQuery,
    NodePage,
    NodeQuery,
    decode_history_cursor,
    encode_cursor,
)
from stagger.core.node_report import DEFAULT_SILENT_AFTER, NodeReport, StoredReports, Unreadable
from stagger.core.rollout_gate import Budget, budget_to_text
from stagger.core.secrets import mask_url
from stagger.core.semaphore import (
    DEFAULT_STALE_AFTER,
    Denied,
    Event,
    Granted,
    Hold,
    NotHeld,
    Pause,
    Released,
    Semaphore,
    Urgent,
    validate_group,
    validate_id,
    validate_max,
    validate_node_id,
)
from stagger.core.text import whole_number
from stagger.core.turns import validate_percent

log = logging.getLogger("stagger.backends.fleetlock")

OPTIONS = ("token", "timeout", "retries", "ca_cert", "cert", "key", "clock", "rng")
_ALIASES = {"ca": "ca_cert"}


def server_backend_url(server: str) -> str:
    """`--server http://host:8080/` → the backend URL that reaches it (`fleetlock+http://...`)."""
    if server.startswith(("fleetlock+http://", "fleetlock+https://")):
        return server
    if not server.startswith(("http://", "https://")):
        raise ConfigError(
            f"server URL {mask_url(server)!r} must start with http:// or https:// "
            "(for example http://127.0.0.1:8080/)"
        )
    return "fleetlock+" + server


class FleetLockBackend:
    """The Backend Protocol over HTTP to a FleetLock server."""

    def __init__(self, http: FleetLockTransport, *, clock: Clock = utcnow) -> None:
        self.http = http
        self.url = self.http.url
        self.clock = clock
        # False once the server answered a report as a server that is not stagger: FleetLock
        # has no reports, so the client stops sending them (and said so once in the log).
        self.reports_supported = True

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FleetLockBackend:
        """Options (keyword, or in the URL's query; keywords win; None is ignored): token
        (sent as Bearer), timeout (seconds or a duration), retries, ca_cert (query: ca), cert,
        key, clock, rng. Credentials in the URL (NAME:TOKEN@host) are sent as HTTP Basic."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:  # "[::1/", a port over 65535
            raise ConfigError(
                f"backend URL {mask_url(url)!r} cannot be used: {exc}; write it like "
                "fleetlock+http://host:8080/ (an IPv6 host in brackets, a port up to 65535)"
            ) from None
        scheme = parts.scheme.removeprefix("fleetlock+")
        if parts.scheme not in ("fleetlock+http", "fleetlock+https") or not parts.hostname:
            raise ConfigError(
                f"backend URL {mask_url(url)!r} is not a FleetLock URL: write it like "
                "fleetlock+http://host:8080/ or fleetlock+https://NAME:TOKEN@host/prefix/"
            )
        given: dict[str, Any] = {_ALIASES.get(k, k): v for k, v in parse_qsl(parts.query)}
        given.update({_ALIASES.get(k, k): v for k, v in options.items() if v is not None})
        unknown = sorted(set(given) - set(OPTIONS))
        if unknown:
            raise ConfigError(
                f"the fleetlock backend does not take the option(s) {', '.join(unknown)}: "
                f"it takes {', '.join(OPTIONS[:-2])} (slots are set on the server, not here)"
            )
        retries = whole_number(str(given.get("retries", DEFAULT_RETRIES)), 0, 100)
        if retries is None:
            raise ConfigError("fleetlock option retries must be a whole number from 0 to 100")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        base = f"{scheme}://{host}{f':{port}' if port else ''}{parts.path or '/'}"
        paths = {
            n: Path(str(given[n])).expanduser() for n in ("ca_cert", "cert", "key") if n in given
        }
        transport = FleetLockTransport(
            base,
            url=mask_url(url),
            token=given.get("token"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=option_seconds(
                given.get("timeout", DEFAULT_TIMEOUT), "fleetlock option timeout"
            ),
            retries=retries,
            rng=given.get("rng"),
            **paths,
        )
        return cls(transport, clock=given.get("clock", utcnow))

    def _fleetlock_body(self, group: str, node_id: str) -> dict[str, Any]:
        return {"client_params": {"id": node_id, "group": group}}

    # --- FleetLock ---------------------------------------------------------------------------

    async def acquire(
        self, group: str, node_id: str, *, note: str = "", by: str | None = None
    ) -> Granted | Denied:
        """Granted says `already_held=False` always: FleetLock does not tell the difference.
        FleetLock carries neither `note` nor `by`: the server records the node itself."""
        validate_group(group)
        validate_id(node_id)
        r = await self.http.request(
            "POST", "v1/pre-reboot", json=self._fleetlock_body(group, node_id)
        )
        if r.is_success:
            now = self.clock()
            return Granted(Hold(node_id, now, now, note=note), already_held=False)
        denial = read_denial(r)
        if denial is not None:
            return denial
        raise self.http.fail(r, f"a slot in group {group!r}")

    async def release(
        self, group: str, node_id: str, *, by: str | None = None
    ) -> Released | NotHeld:
        """A node's own release is FleetLock's steady-state, which does not say whether a slot
        was held: the answer is Released with the hold's times unknown (set to now). Releasing
        another id's hold (`by` an operator) needs a stagger server."""
        validate_group(group)
        validate_id(node_id)
        if by is not None and by != node_id:
            doc = await self.http.api(
                "DELETE",
                f"v1/groups/{group}/holds/{quote(node_id, safe='')}",
                UnlockResponse,
                f"release {node_id!r}'s hold",
                params={"by": by},
            )
            if doc.hold is None:
                return NotHeld(node_id)
            return Released(doc.hold.value(), by)
        r = await self.http.request(
            "POST", "v1/steady-state", json=self._fleetlock_body(group, node_id)
        )
        if not r.is_success:
            raise self.http.fail(r, f"releasing a slot in group {group!r}")
        now = self.clock()
        return Released(Hold(node_id, now, now, note="released through FleetLock"), node_id)

    async def touch(self, group: str, node_id: str) -> Hold | None:
        """On a stagger server: the heartbeat endpoint. On another FleetLock server there is
        no heartbeat; the hold is assumed kept (the answer's times are now)."""
        validate_group(group)
        validate_id(node_id)
        r = await self.http.request(
            "POST", f"v1/groups/{group}/holds/{quote(node_id, safe='')}/touch"
        )
        if r.status_code in (404, 405) and read_error(r)[0] not in {k.value for k in ErrorKind}:
            now = self.clock()
            return Hold(node_id, now, now)
        if not r.is_success:
            raise self.http.fail(r, "a heartbeat")
        doc = TouchResponse.model_validate_json(r.content)
        return doc.hold.value() if doc.hold is not None else None

    # --- the admin API (stagger servers only) -------------------------------------------------

    async def set_max(self, group: str, value: int, *, by: str, percent: bool = False) -> int:
        validate_group(group)
        if percent:
            validate_percent(value)
        else:
            validate_max(value)
        doc = await self.http.api(
            "PUT", f"v1/groups/{group}/max", SetMaxResponse, "set max",
            json={"max": f"{value}%" if percent else value, "by": by},
        )  # fmt: skip
        return doc.max

    async def set_pace(self, group: str, pace: timedelta | None, *, by: str) -> timedelta | None:
        validate_group(group)
        seconds = pace.total_seconds() if pace is not None else None
        doc = await self.http.api(
            "PUT", f"v1/groups/{group}/pace", PaceResponse, "set the pace",
            json={"pace": seconds, "by": by},
        )  # fmt: skip
        return timedelta(seconds=doc.pace) if doc.pace is not None else None

    async def configure(
        self,
        group: str,
        *,
        by: str,
        hold_ttl: timedelta | None,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
    ) -> Semaphore:
        validate_group(group)
        body = {
            "hold_ttl": hold_ttl.total_seconds() if hold_ttl is not None else None,
            "stale_after": stale_after.total_seconds(),
            "by": by,
        }
        doc = await self.http.api(
            "PUT", f"v1/groups/{group}/config", GroupModel, "set hold-ttl and stale-after",
            json=body,
        )  # fmt: skip
        return doc.value(self.clock(), None).semaphore

    async def pause(
        self, group: str | None, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause:
        path = "v1/pause" if group is None else f"v1/groups/{validate_group(group)}/pause"
        body = {"reason": reason, "by": by, "until": until.isoformat() if until else None}
        doc = await self.http.api("POST", path, PauseResponse, "pause", json=body)
        return doc.pause.value()

    async def resume(self, group: str | None, *, by: str) -> Pause | None:
        path = "v1/resume" if group is None else f"v1/groups/{validate_group(group)}/resume"
        doc = await self.http.api("POST", path, ResumeResponse, "resume", json={"by": by})
        return doc.lifted.value() if doc.lifted is not None else None

    async def pause_node(
        self, node_id: str, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause:
        path = f"v1/nodes/{quote(validate_node_id(node_id), safe='')}/pause"
        body = {"reason": reason, "by": by, "until": until.isoformat() if until else None}
        doc = await self.http.api("POST", path, PauseResponse, "pause a node", json=body)
        return doc.pause.value()

    async def resume_node(self, node_id: str, *, by: str) -> Pause | None:
        path = f"v1/nodes/{quote(validate_id(node_id), safe='')}/resume"
        doc = await self.http.api("POST", path, ResumeResponse, "resume a node", json={"by": by})
        return doc.lifted.value() if doc.lifted is not None else None

    async def ask_reboot(
        self, node_id: str, *, by: str, reason: str, ignore_blackouts: bool = False
    ) -> Urgent:
        path = f"v1/nodes/{quote(validate_node_id(node_id), safe='')}/reboot"
        body = {"reason": reason, "by": by, "ignore_blackouts": ignore_blackouts}
        doc = await self.http.api("POST", path, AskRebootResponse, "ask for a reboot", json=body)
        return doc.urgent.value()

    async def clear_reboot(
        self, node_id: str, *, done_by: datetime | None = None, group: str | None = None
    ) -> Urgent | None:
        path = f"v1/nodes/{quote(validate_id(node_id), safe='')}/reboot"
        params = {"done_by": done_by.isoformat()} if done_by is not None else {}
        if group is not None:
            params["group"] = validate_group(group)
        doc = await self.http.api(
            "DELETE", path, ClearRebootResponse, "clear a reboot ask", params=params
        )
        return doc.cleared.value() if doc.cleared is not None else None

    async def status(self, group: str | None = None) -> Snapshot:
        if group is None:
            return (await self.http.api("GET", "v1/status", StatusModel, "show status")).value()
        validate_group(group)
        g = await self.http.api("GET", f"v1/groups/{group}", GroupModel, "show status")
        now = self.clock()
        fleet = None
        if g.paused and (g.pause is None or not g.pause.value().active(now)):
            # The group is paused by the fleet-wide pause: fetch it for the full picture.
            full = await self.http.api("GET", "v1/status", StatusModel, "show status")
            fleet = full.fleet_pause.value() if full.fleet_pause is not None else None
        status = g.value(now, fleet)
        return Snapshot(now, (status,), fleet, status.node_pauses, status.urgent_reboots)

    async def blockers(self) -> list[BlockerModel] | None:
        """A stagger server's blockers and their last verdicts (GET /v1/blockers); None from
        a server that has none to tell (not stagger, or older than blockers)."""
        r = await self.http.request("GET", "v1/blockers")
        if r.status_code in (404, 405):
            return None
        if not r.is_success:
            raise self.http.admin_missing(r, "show blockers")
        return self.http.parse(BlockersModel, r, "show blockers").blockers

    async def history(self, group: str | None = None, limit: int = 100) -> list[Event]:
        validate_limit(limit)
        path = "v1/history" if group is None else f"v1/groups/{validate_group(group)}/history"
        doc = await self.http.api(
            "GET", path, HistoryModel, "show history", params={"limit": limit}
        )
        return [e.value() for e in doc.events]

    async def report(self, report: NodeReport) -> NodeReport:
        """POST /v1/nodes/{id}/report, stagger's extension. A server that is not stagger
        (airlock, poseidon...) does not know it: the first such answer is logged once and no
        report is sent again by this client; the report is returned unstamped."""
        if not self.reports_supported:
            return report
        r = await self.http.request(
            "POST",
            f"v1/nodes/{quote(report.id, safe='')}/report",
            json=NodeReportRequest.of(report).model_dump(mode="json"),
        )
        if r.status_code in (404, 405) and read_error(r)[0] != ErrorKind.UNKNOWN_GROUP:
            # Not stagger, or a stagger older than node reports (its 404 is `not_found`).
            self.reports_supported = False
            log.warning(
                "the FleetLock server at %s takes no node reports (HTTP %d): it is not a "
                "stagger server, or an older one; node reports are not sent to it any more",
                self.url,
                r.status_code,
            )
            return report
        if not r.is_success:
            raise self.http.fail(r, f"node {report.id!r}'s report")
        doc = self.http.parse(ReportResponse, r, "a node report")
        return report.stamped(doc.updated_at)

    async def read_nodes(self, group: str | None = None) -> StoredReports:
        """The reports the server holds (nodes known from their locks alone are left out:
        they have no report), and the ones it said it cannot read, page after page."""
        reports: list[NodeReport] = []
        unreadable: list[Unreadable] = []
        query = NodeQuery(group=group, limit=MAX_PAGE)
        for _ in range(MAX_PAGES):
            page = await self.node_page(query, DEFAULT_SILENT_AFTER)
            reports += (v.report for v in page.nodes if v.report is not None)
            unreadable += page.unreadable
            if page.next is None:
                break
            query = replace(query, after=page.next)
        return StoredReports(tuple(reports), tuple(unreadable))

    async def node_page(self, query: NodeQuery, silent_after: timedelta) -> NodePage:
        """GET /v1/nodes with the query's filters and cursor; silent is judged by the
        server's own silent_after."""
        params: dict[str, Any] = {"limit": query.limit}
        if query.group is not None:
            params["group"] = query.group
        if query.state is not None:
            params["state"] = query.state
        if query.q:
            params["q"] = query.q
        if query.since is not None:
            params["since"] = query.since.isoformat()
        if query.after is not None:
            params["cursor"] = encode_cursor(NODES, query.after)
        doc = await self.http.api("GET", "v1/nodes", NodesModel, "list nodes", params=params)
        return doc.value()

    async def history_page(self, query: HistoryQuery) -> HistoryPage:
        params: dict[str, Any] = {"limit": query.limit}
        if query.group is not None:
            params["group"] = query.group
        if query.q:
            params["q"] = query.q
        if query.since is not None:
            params["since"] = query.since.isoformat()
        if query.before is not None:
            params["cursor"] = encode_cursor(HISTORY, query.before)
        doc = await self.http.api("GET", "v1/history", HistoryModel, "show history", params=params)
        after = decode_history_cursor(doc.next_cursor) if doc.next_cursor else None
        return HistoryPage(tuple(e.value() for e in doc.events), after)

    async def nodes(self, group: str | None = None) -> list[NodeReport]:
        return list((await self.read_nodes(group)).reports)

    async def forget(self, node_id: str, *, by: str) -> bool:
        """DELETE /v1/nodes/{id} on a stagger server (admin)."""
        validate_id(node_id)
        r = await self.http.request(
            "DELETE", f"v1/nodes/{quote(node_id, safe='')}", params={"by": by}
        )
        if r.status_code == ErrorKind.NODE_HOLDS_SLOT.status:
            try:
                err = ErrorModel.model_validate_json(r.content)
            except ValidationError:
                err = None
            if err is not None and err.kind is ErrorKind.NODE_HOLDS_SLOT and err.group:
                raise NodeHoldsSlot(node_id, err.group)
        if not r.is_success:
            raise self.http.admin_missing(r, f"forget node {node_id!r}")
        return self.http.parse(ForgetResponse, r, "forget").forgotten

    # --- the rollout, through the server's admin API (docs/rollout.md) --------------------

    async def rollout_document(self) -> RolloutModel:
        return await self.http.api("GET", "v1/rollout", RolloutModel, "show the rollout")

    async def put_rollout(self, table: dict[str, Any], *, by: str) -> RolloutModel:
        body = {**table, "by": by}
        return await self.http.api("PUT", "v1/rollout", RolloutModel, "set the rollout", json=body)

    async def set_max_failures(self, group: str, budget: Budget | None, *, by: str) -> None:
        path = f"v1/groups/{validate_group(group)}/max-failures"
        body = {"max_failures": budget_to_text(budget), "by": by}
        await self.http.api("PUT", path, MaxFailuresResponse, "set max_failures", json=body)

    async def delete_rollout(self, *, by: str) -> bool:
        doc = await self.http.api(
            "DELETE", "v1/rollout", ClearRolloutResponse, "clear the rollout", json={"by": by}
        )
        return doc.cleared

    async def ping(self) -> None:
        """Reachable means answering HTTP; a stagger server must also be ready (its own
        backend answering)."""
        r = await self.http.request("GET", "readyz")
        if r.status_code == 503:
            raise BackendUnavailable(
                f"the server at {self.url} is up but its store is not: {read_error(r)[1]}"
            )

    async def close(self) -> None:
        await self.http.close()

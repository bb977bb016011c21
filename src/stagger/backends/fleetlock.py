"""The agent's client for any FleetLock server (stagger's own, airlock, poseidon...):
`fleetlock+http://[NAME:TOKEN@]host:port/prefix/` or `fleetlock+https://...`.

FleetLock has two operations, lock (`pre-reboot`) and unlock-if-held (`steady-state`), so
that is all this backend can do against a foreign server. Against a stagger server it also
speaks the admin API (status, set-max, pause, resume, unlock of another id, history,
heartbeats), which is how `stagger status --server URL` and friends work.

Transport failures, 5xx answers and 429 are retried with capped exponential back-off and
full jitter; a denial is an answer, never retried here (the agent decides when to ask again).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from stagger.api import (
    AskRebootResponse,
    ClearRebootResponse,
    ErrorKind,
    ErrorModel,
    ForgetResponse,
    GroupModel,
    HistoryModel,
    NodeReportRequest,
    NodesModel,
    PaceResponse,
    PauseModel,
    PauseResponse,
    ReportResponse,
    ResumeResponse,
    SetMaxResponse,
    StatusModel,
    TouchResponse,
    UnlockResponse,
)
from stagger.backends.protocol import Clock, Snapshot, option_seconds, utcnow, validate_limit
from stagger.core.errors import (
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    StaggerError,
)
from stagger.core.forget import NodeHoldsSlot
from stagger.core.node_report import NodeReport, StoredReports
from stagger.core.secrets import mask_url
from stagger.core.semaphore import (
    DEFAULT_STALE_AFTER,
    Denied,
    DenyReason,
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

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger("stagger.backends.fleetlock")

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 4
BACKOFF_BASE = 0.2
BACKOFF_CAP = 5.0
OPTIONS = ("token", "timeout", "retries", "ca_cert", "cert", "key", "clock", "rng")
_ALIASES = {"ca": "ca_cert"}
_HEADERS = {"fleet-lock-protocol": "true", "accept": "application/json"}

# Denials as other servers spell them (reference/fleetlock.md §5): kind → reason.
_FOREIGN_DENIALS = {
    "all_slots_full": DenyReason.FULL,  # heathcliff26/fleetlock
    "lock_held": DenyReason.FULL,  # poseidon/fleetlock
}
# X.509 verification codes (OpenSSL's X509_V_ERR_*): the issuer is not a trusted CA, the
# certificate is for another host name, or it has expired.
_UNKNOWN_CA = frozenset({18, 19, 20, 21})  # self-signed, self-signed in chain, no local issuer
_NAME_MISMATCH = frozenset({62, 64})  # host name, IP address
_EXPIRED = 10
_CLOSED = (ssl.SSLEOFError, BrokenPipeError, ConnectionResetError)
# airlock answers a full semaphore with 500 `failed_lock` "all N semaphore slots currently
# locked" (and CAS conflicts with the same kind, which are worth retrying).
_AIRLOCK_FULL = re.compile(r"all (\d+) semaphore slots currently locked")


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


def _tls_context(ca_cert: Path | None, cert: Path | None, key: Path | None) -> Any:
    """The TLS context for a CA and/or a client certificate; a file that cannot be used is
    one sentence naming it (ssl's own errors name no file)."""
    import ssl

    step, path = "CA certificate", ca_cert
    try:
        context = ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
        if cert is not None:
            step, path = "client certificate or key", cert
            context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot use the FleetLock {step} file {path}"
            f"{f' (key {key})' if key and path == cert else ''}: {why}; check the path, "
            "that stagger may read it and that it is PEM"
        ) from None
    return context


class FleetLockBackend:
    """The Backend Protocol over HTTP to a FleetLock server."""

    def __init__(
        self,
        base_url: str,
        *,
        url: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        ca_cert: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        # The endpoints are joined to a base that ends in exactly one slash, whatever the
        # operator wrote (Zincati drops the last segment of a base without one).
        self.base = base_url.rstrip("/") + "/"
        self.url = url or self.base
        self.retries = retries
        self.clock = clock
        self.rng = rng or random.Random()
        headers = dict(_HEADERS)
        auth: httpx.Auth | None = None
        if token:
            headers["authorization"] = f"Bearer {token}"
        elif username is not None or password is not None:
            auth = httpx.BasicAuth(username or "", password or "")
        verify: Any = True
        self.client_cert = cert
        if ca_cert is not None or cert is not None:
            verify = _tls_context(ca_cert, cert, key)
        self._client = httpx.AsyncClient(
            headers=headers, auth=auth, timeout=timeout, verify=verify, follow_redirects=False
        )
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
        return cls(
            base,
            url=mask_url(url),
            token=given.get("token"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=option_seconds(
                given.get("timeout", DEFAULT_TIMEOUT), "fleetlock option timeout"
            ),
            retries=retries,
            clock=given.get("clock", utcnow),
            rng=given.get("rng"),
            **paths,
        )

    # --- HTTP --------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """One call, retried on transport errors, 429 and 5xx (except airlock's full-semaphore
        500, which is an answer)."""
        last = ""
        closed = 0  # tries in a row that a TLS server closed without answering
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
                await asyncio.sleep(self.rng.uniform(0, delay))
            try:
                r = await self._client.request(method, self.base + path, json=json, params=params)
            except httpx.TransportError as exc:
                refused = _certificate_refused(exc)
                if refused is not None:  # not transient: a retry gets the same answer
                    raise ConfigError(self._untrusted(refused)) from exc
                # A server that requires a client certificate closes the connection right
                # after the handshake without an alert Python shows; twice in a row is not a
                # dropped keep-alive connection.
                closed = closed + 1 if self.base.startswith("https:") and _closed(exc) else 0
                if closed >= min(2, self.retries + 1):
                    raise ConfigError(self._client_cert_refused()) from exc
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            closed = 0
            if r.status_code < 500 and r.status_code != 429:
                return r
            kind, value = _error(r)
            if kind == "failed_lock" and _AIRLOCK_FULL.search(value):
                return r
            last = f"HTTP {r.status_code} {kind}: {value}"
        raise BackendUnavailable(
            f"the FleetLock server at {self.url} did not answer usefully after "
            f"{self.retries + 1} tries (last: {last}); is it running and reachable?"
        )

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> str:
        """What is wrong with the server's certificate, and which option fixes it."""
        at = f"the FleetLock server at {self.url}"
        why = exc.verify_message or str(exc)
        if exc.verify_code in _UNKNOWN_CA:
            return (
                f"{at} presented a certificate signed by a CA this host does not trust ({why}): "
                "give that CA's certificate with ?ca=/path/ca.pem in the URL"
            )
        if exc.verify_code in _NAME_MISMATCH:
            return (
                f"{at} presented a certificate for another name ({why}): write the host name "
                "the certificate is for in the URL, or give the server a certificate for it"
            )
        if exc.verify_code == _EXPIRED:
            return f"{at} presented an expired certificate ({why}): renew it on the server"
        return f"{at} presented a certificate this host cannot trust ({why}); check ?ca="

    def _client_cert_refused(self) -> str:
        at = f"the FleetLock server at {self.url} closed the TLS connection without answering"
        if self.client_cert is None:
            return (
                f"{at}: it requires a client certificate (mutual TLS) and none was given; "
                "give this node's with ?cert=/path/client.pem&key=/path/client.key in the URL"
            )
        return (
            f"{at}: it did not accept the client certificate {self.client_cert}; give one "
            "signed by the CA the server trusts (its --tls-client-ca) with ?cert=...&key=..."
        )

    def _fail(self, r: httpx.Response, what: str) -> StaggerError:
        """A non-2xx answer that is not a denial, as the error an operator can act on."""
        kind, value = _error(r)
        if r.status_code == 401:
            return ConfigError(
                f"the FleetLock server at {self.url} wants credentials for {what} ({value}); "
                "give a token with ?token=TOKEN or https://NAME:TOKEN@host/"
            )
        if r.status_code == 403:
            return ConfigError(f"the FleetLock server at {self.url} refused {what}: {value}")
        if r.status_code == 404 and kind not in (ErrorKind.UNKNOWN_GROUP, ErrorKind.NOT_FOUND):
            return ConfigError(
                f"{self.url} has no endpoint for {what} (HTTP 404): check the base URL and "
                "its path prefix"
            )
        if r.status_code == 404 and kind == ErrorKind.NOT_FOUND:
            return ConfigError(
                f"the server at {self.url} does not offer {what}: check the base URL and prefix"
            )
        if kind in (ErrorKind.INVALID_GROUP, ErrorKind.INVALID_REQUEST, ErrorKind.UNKNOWN_GROUP):
            return InvalidInput(f"the FleetLock server at {self.url} refused {what}: {value}")
        return BackendUnavailable(
            f"the FleetLock server at {self.url} answered {what} with HTTP {r.status_code} "
            f"({kind}: {value})"
        )

    def _admin_missing(self, r: httpx.Response, what: str) -> StaggerError:
        kind, _ = _error(r)
        if r.status_code in (404, 405) and kind not in {k.value for k in ErrorKind}:
            return ConfigError(
                f"the FleetLock server at {self.url} is not a stagger server, so it cannot "
                f"{what}: FleetLock only locks and unlocks; run this against the backend itself "
                "(--backend URL) instead"
            )
        return self._fail(r, what)

    async def _api(
        self,
        method: str,
        path: str,
        model: type[M],
        what: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> M:
        r = await self._request(method, path, json=json, params=params)
        if not r.is_success:
            raise self._admin_missing(r, what)
        try:
            return model.model_validate_json(r.content)
        except ValidationError as exc:
            raise BackendUnavailable(
                f"the server at {self.url} answered {what} with a document this stagger "
                f"cannot read ({exc.error_count()} error(s)); are both the same version?"
            ) from exc

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
        r = await self._request("POST", "v1/pre-reboot", json=self._fleetlock_body(group, node_id))
        if r.is_success:
            now = self.clock()
            return Granted(Hold(node_id, now, now, note=note), already_held=False)
        denial = _denial(r)
        if denial is not None:
            return denial
        raise self._fail(r, f"a slot in group {group!r}")

    async def release(
        self, group: str, node_id: str, *, by: str | None = None
    ) -> Released | NotHeld:
        """A node's own release is FleetLock's steady-state, which does not say whether a slot
        was held: the answer is Released with the hold's times unknown (set to now). Releasing
        another id's hold (`by` an operator) needs a stagger server."""
        validate_group(group)
        validate_id(node_id)
        if by is not None and by != node_id:
            doc = await self._api(
                "DELETE",
                f"v1/groups/{group}/holds/{quote(node_id, safe='')}",
                UnlockResponse,
                f"release {node_id!r}'s hold",
                params={"by": by},
            )
            if doc.hold is None:
                return NotHeld(node_id)
            return Released(doc.hold.value(), by)
        r = await self._request(
            "POST", "v1/steady-state", json=self._fleetlock_body(group, node_id)
        )
        if not r.is_success:
            raise self._fail(r, f"releasing a slot in group {group!r}")
        now = self.clock()
        return Released(Hold(node_id, now, now, note="released through FleetLock"), node_id)

    async def touch(self, group: str, node_id: str) -> Hold | None:
        """On a stagger server: the heartbeat endpoint. On another FleetLock server there is
        no heartbeat; the hold is assumed kept (the answer's times are now)."""
        validate_group(group)
        validate_id(node_id)
        r = await self._request("POST", f"v1/groups/{group}/holds/{quote(node_id, safe='')}/touch")
        if r.status_code in (404, 405) and _error(r)[0] not in {k.value for k in ErrorKind}:
            now = self.clock()
            return Hold(node_id, now, now)
        if not r.is_success:
            raise self._fail(r, "a heartbeat")
        doc = TouchResponse.model_validate_json(r.content)
        return doc.hold.value() if doc.hold is not None else None

    # --- the admin API (stagger servers only) -------------------------------------------------

    async def set_max(self, group: str, value: int, *, by: str, percent: bool = False) -> int:
        validate_group(group)
        if percent:
            validate_percent(value)
        else:
            validate_max(value)
        doc = await self._api(
            "PUT", f"v1/groups/{group}/max", SetMaxResponse, "set max",
            json={"max": f"{value}%" if percent else value, "by": by},
        )  # fmt: skip
        return doc.max

    async def set_pace(self, group: str, pace: timedelta | None, *, by: str) -> timedelta | None:
        validate_group(group)
        seconds = pace.total_seconds() if pace is not None else None
        doc = await self._api(
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
        doc = await self._api(
            "PUT", f"v1/groups/{group}/config", GroupModel, "set hold-ttl and stale-after",
            json=body,
        )  # fmt: skip
        return doc.value(self.clock(), None).semaphore

    async def pause(
        self, group: str | None, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause:
        path = "v1/pause" if group is None else f"v1/groups/{validate_group(group)}/pause"
        body = {"reason": reason, "by": by, "until": until.isoformat() if until else None}
        doc = await self._api("POST", path, PauseResponse, "pause", json=body)
        return doc.pause.value()

    async def resume(self, group: str | None, *, by: str) -> Pause | None:
        path = "v1/resume" if group is None else f"v1/groups/{validate_group(group)}/resume"
        doc = await self._api("POST", path, ResumeResponse, "resume", json={"by": by})
        return doc.lifted.value() if doc.lifted is not None else None

    async def pause_node(
        self, node_id: str, *, by: str, reason: str, until: datetime | None = None
    ) -> Pause:
        path = f"v1/nodes/{quote(validate_node_id(node_id), safe='')}/pause"
        body = {"reason": reason, "by": by, "until": until.isoformat() if until else None}
        doc = await self._api("POST", path, PauseResponse, "pause a node", json=body)
        return doc.pause.value()

    async def resume_node(self, node_id: str, *, by: str) -> Pause | None:
        path = f"v1/nodes/{quote(validate_id(node_id), safe='')}/resume"
        doc = await self._api("POST", path, ResumeResponse, "resume a node", json={"by": by})
        return doc.lifted.value() if doc.lifted is not None else None

    async def ask_reboot(
        self, node_id: str, *, by: str, reason: str, ignore_blackouts: bool = False
    ) -> Urgent:
        path = f"v1/nodes/{quote(validate_node_id(node_id), safe='')}/reboot"
        body = {"reason": reason, "by": by, "ignore_blackouts": ignore_blackouts}
        doc = await self._api("POST", path, AskRebootResponse, "ask for a reboot", json=body)
        return doc.urgent.value()

    async def clear_reboot(
        self, node_id: str, *, done_by: datetime | None = None, group: str | None = None
    ) -> Urgent | None:
        path = f"v1/nodes/{quote(validate_id(node_id), safe='')}/reboot"
        params = {"done_by": done_by.isoformat()} if done_by is not None else {}
        if group is not None:
            params["group"] = validate_group(group)
        doc = await self._api(
            "DELETE", path, ClearRebootResponse, "clear a reboot ask", params=params
        )
        return doc.cleared.value() if doc.cleared is not None else None

    async def status(self, group: str | None = None) -> Snapshot:
        if group is None:
            return (await self._api("GET", "v1/status", StatusModel, "show status")).value()
        validate_group(group)
        g = await self._api("GET", f"v1/groups/{group}", GroupModel, "show status")
        now = self.clock()
        fleet = None
        if g.paused and (g.pause is None or not g.pause.value().active(now)):
            # The group is paused by the fleet-wide pause: fetch it for the full picture.
            full = await self._api("GET", "v1/status", StatusModel, "show status")
            fleet = full.fleet_pause.value() if full.fleet_pause is not None else None
        status = g.value(now, fleet)
        return Snapshot(now, (status,), fleet, status.node_pauses, status.urgent_reboots)

    async def history(self, group: str | None = None, limit: int = 100) -> list[Event]:
        validate_limit(limit)
        path = "v1/history" if group is None else f"v1/groups/{validate_group(group)}/history"
        doc = await self._api("GET", path, HistoryModel, "show history", params={"limit": limit})
        return [e.value() for e in doc.events]

    async def report(self, report: NodeReport) -> NodeReport:
        """POST /v1/nodes/{id}/report, stagger's extension. A server that is not stagger
        (airlock, poseidon...) does not know it: the first such answer is logged once and no
        report is sent again by this client; the report is returned unstamped."""
        if not self.reports_supported:
            return report
        r = await self._request(
            "POST",
            f"v1/nodes/{quote(report.id, safe='')}/report",
            json=NodeReportRequest.of(report).model_dump(mode="json"),
        )
        if r.status_code in (404, 405) and _error(r)[0] != ErrorKind.UNKNOWN_GROUP:
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
            raise self._fail(r, f"node {report.id!r}'s report")
        try:
            doc = ReportResponse.model_validate_json(r.content)
        except ValidationError as exc:
            raise BackendUnavailable(
                f"the server at {self.url} answered a node report with a document this "
                f"stagger cannot read ({exc.error_count()} error(s)); are both the same version?"
            ) from exc
        return report.stamped(doc.updated_at)

    async def read_nodes(self, group: str | None = None) -> StoredReports:
        """The reports the server holds (nodes known from their locks alone are left out:
        they have no report), and the ones it said it cannot read."""
        params = {"group": validate_group(group)} if group is not None else None
        doc = await self._api("GET", "v1/nodes", NodesModel, "list nodes", params=params)
        found = (n.report() for n in doc.nodes)
        return StoredReports(
            tuple(r for r in found if r is not None), tuple(u.value() for u in doc.unreadable)
        )

    async def nodes(self, group: str | None = None) -> list[NodeReport]:
        return list((await self.read_nodes(group)).reports)

    async def forget(self, node_id: str, *, by: str) -> bool:
        """DELETE /v1/nodes/{id} on a stagger server (admin)."""
        validate_id(node_id)
        r = await self._request("DELETE", f"v1/nodes/{quote(node_id, safe='')}", params={"by": by})
        if r.status_code == ErrorKind.NODE_HOLDS_SLOT.status:
            try:
                err = ErrorModel.model_validate_json(r.content)
            except ValidationError:
                err = None
            if err is not None and err.kind is ErrorKind.NODE_HOLDS_SLOT and err.group:
                raise NodeHoldsSlot(node_id, err.group)
        if not r.is_success:
            raise self._admin_missing(r, f"forget node {node_id!r}")
        try:
            return ForgetResponse.model_validate_json(r.content).forgotten
        except ValidationError as exc:
            raise BackendUnavailable(
                f"the server at {self.url} answered forget with a document this stagger "
                f"cannot read ({exc.error_count()} error(s)); are both the same version?"
            ) from exc

    async def ping(self) -> None:
        """Reachable means answering HTTP; a stagger server must also be ready (its own
        backend answering)."""
        r = await self._request("GET", "readyz")
        if r.status_code == 503:
            raise BackendUnavailable(
                f"the server at {self.url} is up but its store is not: {_error(r)[1]}"
            )

    async def close(self) -> None:
        await self._client.aclose()


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it, outermost first (httpx wraps httpcore wraps ssl/OS errors)."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain and len(chain) < 10:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain


def _certificate_refused(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The verification failure of the server's certificate behind a transport error."""
    return next((e for e in _causes(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)


def _closed(exc: BaseException) -> bool:
    """The server closed the TLS connection (during or right after the handshake) without an
    HTTP answer."""
    return any(isinstance(e, _CLOSED) for e in _causes(exc))


def _error(r: httpx.Response) -> tuple[str, str]:
    """(kind, value) of an error answer, whatever shape the server used."""
    try:
        doc = r.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return str(doc.get("kind", f"generic_http_{r.status_code}")), str(doc.get("value", ""))
    return f"generic_http_{r.status_code}", r.text.strip()[:200]


def _denial(r: httpx.Response) -> Denied | None:
    try:
        doc = r.json()
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    kind, value = str(doc.get("kind", "")), str(doc.get("value", ""))
    holders = tuple(h for h in doc.get("holders") or () if isinstance(h, str))
    raw_max = doc.get("max")
    max_ = raw_max if isinstance(raw_max, int) and not isinstance(raw_max, bool) else 0
    raw_position = doc.get("position")
    position = (
        raw_position
        if isinstance(raw_position, int) and not isinstance(raw_position, bool) and raw_position > 0
        else None
    )
    if kind == ErrorKind.FAILED_LOCK_SEMAPHORE_FULL or kind in _FOREIGN_DENIALS:
        return Denied(DenyReason.FULL, max_, holders, position=position)
    if kind == ErrorKind.FAILED_LOCK_QUEUED:
        return Denied(DenyReason.QUEUED, max_, holders, position=position)
    if kind == ErrorKind.FAILED_LOCK_PACING:
        try:
            until = datetime.fromisoformat(str(doc.get("until")))
        except ValueError:
            until = None
        return Denied(DenyReason.PACING, max_, holders, until=until, position=position)
    if kind == ErrorKind.FAILED_LOCK_PAUSED:
        try:
            p = PauseModel.model_validate(doc.get("pause")).value() if doc.get("pause") else None
        except ValidationError:
            p = None
        node = doc.get("node")
        who = node if isinstance(node, str) else ""
        return Denied(DenyReason.PAUSED, max_, holders, p, who, position=position)
    m = _AIRLOCK_FULL.search(value) if kind == "failed_lock" else None
    if m is not None:
        return Denied(DenyReason.FULL, int(m.group(1)), holders)
    return None

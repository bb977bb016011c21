"""The HTTP side of the FleetLock client backend (backends/fleetlock.py): one connection pool
to one server, each call retried on transport errors, 429 and 5xx with capped exponential
back-off and full jitter, and every way a call can fail said in one sentence an operator can
act on: a certificate this host does not trust, a server that wants a client certificate,
missing credentials, a wrong base URL, a server that is not stagger. Denials are read here too,
as stagger, airlock, poseidon and heathcliff26 spell them; a denial is an answer, never retried.
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from stagger.api import ErrorKind, PauseModel
from stagger.core.errors import BackendUnavailable, ConfigError, InvalidInput, StaggerError
from stagger.core.semaphore import BLOCKED_PREFIX, Denied, DenyReason

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 4
BACKOFF_BASE = 0.2
BACKOFF_CAP = 5.0
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


def _tls_context(ca_cert: Path | None, cert: Path | None, key: Path | None) -> Any:
    """The TLS context for a CA and/or a client certificate; a file that cannot be used is
    one sentence naming it (ssl's own errors name no file)."""

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


class FleetLockTransport:
    """Calls to one FleetLock server at `base_url` (`url`: the same, as shown to operators)."""

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
        rng: random.Random | None = None,
    ) -> None:
        # The endpoints are joined to a base that ends in exactly one slash, whatever the
        # operator wrote (Zincati drops the last segment of a base without one).
        self.base = base_url.rstrip("/") + "/"
        self.url = url or self.base
        self.retries = retries
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

    async def request(
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
            kind, value = read_error(r)
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

    def fail(self, r: httpx.Response, what: str) -> StaggerError:
        """A non-2xx answer that is not a denial, as the error an operator can act on."""
        kind, value = read_error(r)
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

    def admin_missing(self, r: httpx.Response, what: str) -> StaggerError:
        kind, _ = read_error(r)
        if r.status_code in (404, 405) and kind not in {k.value for k in ErrorKind}:
            return ConfigError(
                f"the FleetLock server at {self.url} is not a stagger server, so it cannot "
                f"{what}: FleetLock only locks and unlocks; run this against the backend itself "
                "(--backend URL) instead"
            )
        return self.fail(r, what)

    async def api(
        self,
        method: str,
        path: str,
        model: type[M],
        what: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> M:
        r = await self.request(method, path, json=json, params=params)
        if not r.is_success:
            raise self.admin_missing(r, what)
        return self.parse(model, r, what)

    def parse(self, model: type[M], r: httpx.Response, what: str) -> M:
        """A stagger server's answer to `what` as `model`; one this stagger cannot read is
        said so (the two may be of different versions)."""
        try:
            return model.model_validate_json(r.content)
        except ValidationError as exc:
            raise BackendUnavailable(
                f"the server at {self.url} answered {what} with a document this stagger "
                f"cannot read ({exc.error_count()} error(s)); are both the same version?"
            ) from exc

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
    HTTP answer: seen as a broken pipe, a reset or an unexpected EOF in TLS, or, when the
    close arrives before the request is sent, as httpcore's "Server disconnected without
    sending a response" (which one depends on timing)."""
    return any(
        isinstance(e, _CLOSED)
        or (isinstance(e, httpx.RemoteProtocolError) and "disconnected" in str(e))
        for e in _causes(exc)
    )


def read_error(r: httpx.Response) -> tuple[str, str]:
    """(kind, value) of an error answer, whatever shape the server used."""
    try:
        doc = r.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return str(doc.get("kind", f"generic_http_{r.status_code}")), str(doc.get("value", ""))
    return f"generic_http_{r.status_code}", r.text.strip()[:200]


def _rollout_waiting(doc: dict[str, Any], max_: int, holders: tuple[str, ...]) -> Denied:
    """A stagger server's rollout_waiting: the stage it names, and when its bake ends."""
    stage = doc.get("stage")
    try:
        ends = datetime.fromisoformat(doc["bake_ends"]) if doc.get("bake_ends") else None
    except (TypeError, ValueError):
        ends = None
    return Denied(
        DenyReason.ROLLOUT_WAITING,
        max_,
        holders,
        stage=stage if isinstance(stage, str) else "an earlier rollout stage",
        bake_ends=ends,
    )


def _count(raw: object) -> int | None:
    """A positive whole number from an answer's field, else None."""
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else None


def read_denial(r: httpx.Response) -> Denied | None:
    """The denial in an answer to a lock request, as stagger, airlock, poseidon or
    heathcliff26 spell it; None when the answer is not a denial."""
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
    position = _count(doc.get("position"))
    full = _count(doc.get("queue_full")) or 0
    if kind == ErrorKind.FAILED_LOCK_SEMAPHORE_FULL or kind in _FOREIGN_DENIALS:
        return Denied(DenyReason.FULL, max_, holders, position=position, queue_full=full)
    if kind == ErrorKind.FAILED_LOCK_QUEUED:
        return Denied(DenyReason.QUEUED, max_, holders, position=position, queue_full=full)
    if kind == ErrorKind.FAILED_LOCK_PACING:
        try:
            until = datetime.fromisoformat(str(doc.get("until")))
        except ValueError:
            until = None
        return Denied(
            DenyReason.PACING, max_, holders, until=until, position=position, queue_full=full
        )
    if kind == ErrorKind.FAILED_LOCK_PAUSED:
        try:
            p = PauseModel.model_validate(doc.get("pause")).value() if doc.get("pause") else None
        except ValidationError:
            p = None
        node = doc.get("node")
        who = node if isinstance(node, str) else ""
        return Denied(DenyReason.PAUSED, max_, holders, p, who, position=position, queue_full=full)
    if kind == ErrorKind.ROLLOUT_WAITING:
        return _rollout_waiting(doc, max_, holders)
    if kind == ErrorKind.BLOCKED:
        return Denied(DenyReason.BLOCKED, max_, holders, detail=value.removeprefix(BLOCKED_PREFIX))
    m = _AIRLOCK_FULL.search(value) if kind == "failed_lock" else None
    if m is not None:
        return Denied(DenyReason.FULL, int(m.group(1)), holders)
    return None

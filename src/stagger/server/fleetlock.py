"""FleetLock v1, exactly (coreos/zincati docs/development/fleetlock/protocol.md):
`POST /v1/pre-reboot` (RecursiveLock) and `POST /v1/steady-state` (UnlockIfHeld), header
`fleet-lock-protocol: true`, body `{"client_params": {"id", "group"}}`, 200 `{}` on success,
`{"kind", "value"}` JSON on every error.

This is the hot path (a fleet polls it every five minutes per node, and a burst of nodes can
hit it at once), so it is plain ASGI: no request objects, one backend call, one send.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from stagger.backends.base import GroupStatus
from stagger.backends.wire import DENIAL_KINDS, ErrorKind, PauseModel
from stagger.core import semaphore as core
from stagger.core.errors import InvalidInput
from stagger.core.semaphore import (
    Denied,
    DenyReason,
    Granted,
    Pause,
    validate_group,
    validate_node_id,
)
from stagger.server.auth import CHALLENGE, CLIENT_CERT_NAMES, NO_NAMES, Denial, node_denial
from stagger.server.settings import MAX_BODY, Token
from stagger.server.state import ServerState, error_body

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PRE_REBOOT = "pre-reboot"
STEADY_STATE = "steady-state"

_JSON = (b"content-type", b"application/json")
_OK_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [_JSON, (b"content-length", b"2")],
}
_OK_BODY = {"type": "http.response.body", "body": b"{}"}


class Reject(Exception):
    def __init__(self, kind: ErrorKind, value: str, **extra: Any) -> None:
        super().__init__(value)
        self.kind = kind
        self.value = value
        self.extra = extra


async def send_error(
    send: Send,
    kind: ErrorKind,
    value: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    **extra: Any,
) -> None:
    body = error_body(kind, value, **extra)
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *(extra_headers or [])]
    await send({"type": "http.response.start", "status": kind.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, declared: bytes | None) -> bytes:
    """The request body, refusing anything over MAX_BODY before reading it all."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise Reject(ErrorKind.PAYLOAD_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Reject(ErrorKind.INVALID_REQUEST, "the client went away mid-request")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > MAX_BODY:
                raise Reject(ErrorKind.PAYLOAD_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_client_params(body: bytes) -> tuple[str, str]:
    """(id, group) from a FleetLock body, or Reject with what is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Reject(
            ErrorKind.INVALID_REQUEST,
            'the body is not JSON: send {"client_params": {"id": "...", "group": "..."}}',
        ) from None
    params = doc.get("client_params") if isinstance(doc, dict) else None
    if not isinstance(params, dict):
        raise Reject(
            ErrorKind.INVALID_REQUEST,
            'the body has no "client_params" object: send '
            '{"client_params": {"id": "...", "group": "..."}}',
        )
    node_id, group = params.get("id"), params.get("group")
    if not isinstance(node_id, str) or not node_id:
        raise Reject(ErrorKind.INVALID_REQUEST, "client_params.id must be a non-empty string")
    try:
        validate_node_id(node_id)
    except InvalidInput as exc:
        raise Reject(ErrorKind.INVALID_REQUEST, exc.message) from None
    if not isinstance(group, str) or not group:
        raise Reject(ErrorKind.INVALID_GROUP, "client_params.group must be a non-empty string")
    try:
        validate_group(group)
    except InvalidInput as exc:
        raise Reject(ErrorKind.INVALID_GROUP, exc.message) from None
    return node_id, group


def _pause_doc(p: Pause | None) -> dict[str, Any] | None:
    model = PauseModel.of(p)
    return model.model_dump(mode="json") if model is not None else None


def denial_reject(outcome: Denied) -> Reject:
    return Reject(
        DENIAL_KINDS[outcome.reason],
        outcome.sentence(),
        max=outcome.max,
        holders=list(outcome.holders),
        pause=_pause_doc(outcome.pause),
        node=outcome.node or None,
    )


def _plan(current: GroupStatus, node_id: str) -> Granted | Denied:
    """What an acquire would answer on `current` (nothing is written)."""
    return core.acquire(
        current.semaphore,
        node_id,
        current.now,
        fleet_pause=current.fleet_pause,
        node_pause=current.node_pauses.get(node_id),
    ).outcome


def _grants(current: GroupStatus, node_id: str) -> bool:
    """Whether an acquire on `current` would take a new hold (a write)."""
    planned = _plan(current, node_id)
    return isinstance(planned, Granted) and not planned.already_held


class FleetLockEndpoint:
    """One of the two FleetLock operations, as an ASGI callable."""

    def __init__(self, state: ServerState, operation: str) -> None:
        self.state = state
        self.operation = operation
        self.metrics = state.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        kind = "ok"
        try:
            await self._handle(scope, receive)
        except Reject as r:
            kind = r.kind.value
            extra_headers = [(b"www-authenticate", CHALLENGE)] if r.kind.status == 401 else []
            if r.kind is ErrorKind.METHOD_NOT_ALLOWED:
                extra_headers.append((b"allow", b"POST"))
            await send_error(send, r.kind, r.value, extra_headers, **r.extra)
        else:
            await send(_OK_START)
            await send(_OK_BODY)
        self.metrics.observe(self.operation, kind, time.perf_counter() - started)

    def _denial(self, group: str, node_id: str, outcome: Denied, now: datetime) -> Reject:
        if outcome.reason is DenyReason.PAUSED:
            # Told to people once per node and pause; queued, never awaited.
            self.state.notifier.denied_paused(group, node_id, outcome.pause, now)
        return denial_reject(outcome)

    async def _handle(self, scope: Scope, receive: Receive) -> None:
        if scope["method"] != "POST":
            raise Reject(
                ErrorKind.METHOD_NOT_ALLOWED,
                f"{self.operation} takes POST only (FleetLock v1), not {scope['method']}",
            )
        protocol = authorization = length = None
        for name, value in scope["headers"]:
            if name == b"fleet-lock-protocol":
                protocol = value
            elif name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
        body = await read_body(receive, length)
        state = self.state
        who: Token | None = None
        if state.auth.enabled:
            identified = state.auth.identify(authorization)
            if isinstance(identified, Denial):
                raise Reject(identified.kind, identified.value)
            who = identified
        if protocol is None or protocol.strip().lower() != b"true":
            raise Reject(
                ErrorKind.INVALID_REQUEST,
                "the header `fleet-lock-protocol: true` is missing: FleetLock requires it",
            )
        node_id, group = parse_client_params(body)
        denied = node_denial(who, scope.get(CLIENT_CERT_NAMES, NO_NAMES), group, node_id)
        if denied is not None:
            raise Reject(denied.kind, denied.value)
        # History names who really acted: the node itself, or the admin acting for it.
        by = who.name if who is not None and who.name != node_id else None
        backend = state.backend
        try:
            if not await state.group_known(group):
                raise Reject(
                    ErrorKind.UNKNOWN_GROUP,
                    f"group {group!r} is not configured on this server; ask an operator to "
                    "create it (stagger set-max N --group GROUP)",
                )
            # A change the backend's remembered view says is due (a free slot, a hold to
            # release) goes straight to the backend: its guarded write decides, so a stale
            # view costs a retry there, never a wrong answer, and a change is one etcd
            # transaction. Everything else is decided from a batched linearizable read when
            # no write is needed (a denial, a holder asking again, releasing nothing), and the
            # backend's own compare-and-swap decides the rest. A lock asked while the backend
            # is writing a change to the group (a release, say) also goes to the backend: it is
            # decided in order right after that change and written with the next batch (etcd
            # group commit), so a freed slot is granted in the next transaction.
            hint = state.reads.remembered(group)
            if self.operation == PRE_REBOOT:
                if hint is None or not (_grants(hint, node_id) or state.reads.changing(group)):
                    snap = await state.reads.read(group)
                    hint = snap.groups[0]
                    planned = _plan(hint, node_id)
                    if isinstance(planned, Granted) and planned.already_held:
                        return
                    if isinstance(planned, Denied):
                        raise self._denial(group, node_id, planned, hint.now)
                outcome = await backend.acquire(group, node_id, by=by)
                if isinstance(outcome, Denied):
                    raise self._denial(group, node_id, outcome, hint.now)
                return
            if hint is None or node_id not in hint.semaphore.holds:
                hint = (await state.reads.read(group)).groups[0]
            if node_id in hint.semaphore.holds:
                await backend.release(group, node_id, by=by)
        except Reject:
            raise
        except Exception as exc:
            kind, value = state.failed(self.operation, exc)
            raise Reject(kind, value) from exc

"""FleetLock v1, exactly (coreos/zincati docs/development/fleetlock/protocol.md):
`POST /v1/pre-reboot` (RecursiveLock) and `POST /v1/steady-state` (UnlockIfHeld), header
`fleet-lock-protocol: true`, body `{"client_params": {"id", "group"}}`, 200 `{}` on success,
`{"kind", "value"}` JSON on every error.

This is the hot path (a fleet polls it every five minutes per node, and a burst of nodes can
hit it at once), so it is plain ASGI: no request objects, one backend call, one send. The
callers one batched read answers (server/batched_reads.py) share one decision and one encoded denial
(Admissions): per request, what is left is parsing the body and the checks of auth.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stagger.api import DENIAL_KINDS, ErrorKind, PauseModel
from stagger.backends.protocol import GroupStatus
from stagger.core import semaphore as core
from stagger.core.blockers import Blocked
from stagger.core.errors import InvalidInput
from stagger.core.rollout_gate import Rollout
from stagger.core.semaphore import (
    Denied,
    DenyReason,
    Pause,
    Semaphore,
    validate_group,
    validate_node_id,
)
from stagger.core.times import rfc3339
from stagger.server.auth import CHALLENGE, CLIENT_CERT_NAMES, NO_NAMES, Denial, node_denial
from stagger.server.context import ServerState, error_body
from stagger.server.settings import MAX_BODY, Token

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


@dataclass(frozen=True)
class Answer:
    """An error answer as the two ASGI messages that send it. Built once and sent as often as
    needed: a denial is the same for every caller that one group value answers."""

    kind: ErrorKind
    start: dict[str, Any]
    body: dict[str, Any]

    @classmethod
    def of(
        cls,
        kind: ErrorKind,
        value: str,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        **extra: Any,
    ) -> Answer:
        body = error_body(kind, value, **extra)
        headers = [_JSON, (b"content-length", str(len(body)).encode()), *(extra_headers or [])]
        return cls(
            kind,
            {"type": "http.response.start", "status": kind.status, "headers": headers},
            {"type": "http.response.body", "body": body},
        )

    async def send(self, send: Send) -> None:
        await send(self.start)
        await send(self.body)


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
        stage=outcome.stage or None,
        bake_ends=rfc3339(outcome.bake_ends) if outcome.bake_ends is not None else None,
        until=rfc3339(outcome.until) if outcome.until is not None else None,
        position=outcome.position,
        queue_full=outcome.queue_full or None,
    )


@dataclass(frozen=True)
class Refusal:
    """A denial and its answer, encoded once."""

    denied: Denied
    answer: Answer

    @classmethod
    def of(cls, denied: Denied) -> Refusal:
        r = denial_reject(denied)
        return cls(denied, Answer.of(r.kind, r.value, **r.extra))


def blocked_refusal(blocked: Blocked) -> Refusal:
    """A grant refused by blockers: kind `blocked`, their reasons, and their names."""
    denied = Denied(DenyReason.BLOCKED, 0, detail=blocked.reason)
    return Refusal(
        denied, Answer.of(ErrorKind.BLOCKED, denied.sentence(), blockers=list(blocked.names))
    )


@dataclass(frozen=True)
class Admission:
    """What a lock asked on one group value answers (core.lineup): an id in `holders` keeps
    its slot (nothing written); an id whose lock changes the group (a new slot, joining the
    queue, a due last-ask mark) goes to the backend; any other id, a queued node asking
    again, gets the refusal for its place in the queue, encoded once per place."""

    holders: frozenset[str]
    turn: core.Lineup
    # The nodes a rollout_waiting refusal already noted (core.semaphore.waiting_in): any
    # other node's first ask is noted by the backend (one write per node and rollout).
    gated: frozenset[str] = frozenset()
    _refusals: dict[int, Refusal] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, current: GroupStatus) -> Admission:
        decided = core.lineup(
            current.semaphore, current.now, fleet_pause=current.fleet_pause, rollout=current.rollout
        )
        gated = core.waiting_in(decided.semaphore, current.rollout)
        return cls(frozenset(decided.semaphore.holds), decided.outcome, gated)

    def _gate(self) -> Denied | None:
        denial = self.turn.denial
        if denial is not None and denial.reason is DenyReason.ROLLOUT_WAITING:
            return denial
        return None

    def writes(self, node_id: str, now: datetime) -> bool:
        """Whether a lock by `node_id` at `now` changes the group (the backend decides it): a
        new slot, joining the queue or a due last-ask mark, beginning the next rollout after
        a complete one, or the node's first ask that a rollout stage holds back (noted, so the
        rollout knows the node waits)."""
        if node_id in self.holders:
            return False
        gate = self._gate()
        if gate is not None:
            return gate.restart or node_id not in self.gated
        return self.turn.writes(node_id, now)

    def refusal(self, node_id: str) -> Refusal:
        """The answer to a node whose lock writes nothing (writes() is False)."""
        gate = self._gate()
        position = 0 if gate is not None else self.turn.position(node_id)
        refusal = self._refusals.get(position)
        if refusal is None:
            denied = gate if gate is not None else self.turn.denial_of(node_id)
            refusal = self._refusals[position] = Refusal.of(denied)
        return refusal


def _own_pause(current: GroupStatus, node_id: str) -> Denied | None:
    """The denial of a node with a pause of its own (rare: decided per node, in core, and
    named before the group's answer), or None."""
    pause = current.node_pauses.get(node_id)
    if pause is None or not pause.active(current.now):
        return None
    outcome = core.acquire(
        current.semaphore, node_id, current.now, fleet_pause=current.fleet_pause, node_pause=pause
    ).outcome
    return outcome if isinstance(outcome, Denied) else None


# Groups whose last Admission is kept: far more than any fleet has; beyond it, start over.
_ADMISSIONS_KEPT = 10_000


@dataclass(frozen=True)
class _Decided:
    """An Admission with what it was decided from: a group value, the fleet pause, the
    rollout, the instant, and until when the same ones answer the same
    (core.admission_until)."""

    semaphore: Semaphore
    fleet_pause: Pause | None
    at: datetime
    until: datetime | None
    admission: Admission
    rollout: Rollout | None


class Admissions:
    """The Admission of the newest value seen of each group, so that the callers of one
    batched read (server/batched_reads.py), and of the next reads while the group is
    unchanged, share one decision and one encoded denial."""

    def __init__(self) -> None:
        self._last: dict[str, _Decided] = {}

    def of(self, current: GroupStatus, *, exact: bool = True) -> Admission:
        """The Admission of `current`: that of the same stored value and fleet pause decided
        at an earlier instant when core says nothing between the two changes it (no hold
        expiry, no pause end). With exact=False, one decided at any instant will do: for a
        backend's remembered view, a hint whose every use the backend's guarded write or a
        fresh read confirms (holds only expire and pauses only end with time, and either way
        the answer comes from the store)."""
        sem, now = current.semaphore, current.now
        last = self._last.get(sem.group)
        if (
            last is not None
            and last.semaphore is sem
            and last.fleet_pause is current.fleet_pause
            and last.rollout is current.rollout
            and (
                not exact
                or last.at == now
                or (last.at <= now and (last.until is None or now < last.until))
            )
        ):
            return last.admission
        admission = Admission.of(current)
        if len(self._last) >= _ADMISSIONS_KEPT:
            self._last.clear()
        until = core.admission_until(
            sem, now, fleet_pause=current.fleet_pause, rollout=current.rollout
        )
        self._last[sem.group] = _Decided(
            sem, current.fleet_pause, now, until, admission, current.rollout
        )
        return admission


class FleetLockEndpoint:
    """One of the two FleetLock operations, as an ASGI callable."""

    def __init__(self, state: ServerState, operation: str) -> None:
        self.state = state
        self.operation = operation
        self.metrics = state.metrics
        self.admissions = Admissions()  # pre-reboot's; steady-state needs no decision
        self._blocked_refusals: dict[Blocked, Refusal] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            answer = await self._handle(scope, receive)
        except Reject as r:
            extra_headers = [(b"www-authenticate", CHALLENGE)] if r.kind.status == 401 else []
            if r.kind is ErrorKind.METHOD_NOT_ALLOWED:
                extra_headers.append((b"allow", b"POST"))
            answer = Answer.of(r.kind, r.value, extra_headers, **r.extra)
        if answer is None:
            await send(_OK_START)
            await send(_OK_BODY)
            kind = "ok"
        else:
            await answer.send(send)
            kind = answer.kind.value
        self.metrics.observe(self.operation, kind, time.perf_counter() - started)

    def _blocked(self, blocked: Blocked) -> Refusal:
        """The denial of `blocked`, encoded once per verdict."""
        refusal = self._blocked_refusals.get(blocked)
        if refusal is None:
            if len(self._blocked_refusals) >= _ADMISSIONS_KEPT:
                self._blocked_refusals.clear()
            refusal = self._blocked_refusals[blocked] = blocked_refusal(blocked)
        return refusal

    def _denial(self, group: str, node_id: str, refusal: Refusal, now: datetime) -> Answer:
        denied = refusal.denied
        if denied.reason is DenyReason.PAUSED:
            # Told to people once per node and pause; queued, never awaited.
            self.state.notifier.denied_paused(group, node_id, denied.pause, now)
        return refusal.answer

    async def _handle(self, scope: Scope, receive: Receive) -> Answer | None:
        """None for `200 {}`, else the error answer; Reject for what is wrong with the
        request."""
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
        reads = state.reads
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
            hint = reads.remembered(group)
            if self.operation == PRE_REBOOT:
                admissions = self.admissions
                # A blocker's verdict is in memory (server/blockers.py): no request here.
                blocked = state.blockers.blocked(group)
                if (
                    blocked is not None
                    or hint is None
                    or not (
                        admissions.of(hint, exact=False).writes(node_id, hint.now)
                        or reads.changing(group)
                    )
                ):
                    hint = (await reads.read(group)).groups[0]
                    admission = admissions.of(hint)
                    # A holder asking again keeps its slot, blocked or not (as under a pause).
                    if node_id in admission.holders:
                        return None
                    paused = _own_pause(hint, node_id)
                    if paused is not None:
                        return self._denial(group, node_id, Refusal.of(paused), hint.now)
                    denial = admission.turn.denial
                    # An operator's pause is named first; a blocker before a full semaphore
                    # or a rollout stage (a blocked ask writes nothing, not even the note).
                    if blocked is not None and (
                        denial is None or denial.reason is not DenyReason.PAUSED
                    ):
                        return self._denial(group, node_id, self._blocked(blocked), hint.now)
                    if not admission.writes(node_id, hint.now):
                        return self._denial(group, node_id, admission.refusal(node_id), hint.now)
                outcome = await backend.acquire(group, node_id, by=by)
                if isinstance(outcome, Denied):
                    return self._denial(group, node_id, Refusal.of(outcome), hint.now)
                return None
            if hint is None or node_id not in hint.semaphore.holds:
                hint = (await reads.read(group)).groups[0]
            if node_id in hint.semaphore.holds:
                await backend.release(group, node_id, by=by)
            return None
        except Reject:
            raise
        except Exception as exc:
            kind, value = state.failed(self.operation, exc)
            raise Reject(kind, value) from exc

"""The error document: FleetLock's `{"kind", "value"}` with stagger's fixed set of kinds (the
FleetLock spec asks for a small, bounded set, since Zincati uses `kind` as a metrics label).
FleetLock's own request and response format is fixed by the protocol; only the extra fields of
a denial (`max`, `holders`, `pause`, `group`, `node`) are stagger's.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from stagger.api.base import MaybeInstant, Model
from stagger.api.groups import PauseModel
from stagger.core.semaphore import BLOCKED_PREFIX, Denied, DenyReason


class ErrorKind(StrEnum):
    """Every `kind` the server can answer with, and the HTTP status that goes with it."""

    INVALID_REQUEST = "invalid_request"  # 400: header, JSON, id or a field is wrong
    INVALID_GROUP = "invalid_group"  # 400: group does not match GROUP_RE
    UNAUTHORIZED = "unauthorized"  # 401: no or unknown credentials
    FORBIDDEN = "forbidden"  # 403: the token may not do this (group, or admin-only)
    NOT_FOUND = "not_found"  # 404: no such endpoint
    UNKNOWN_GROUP = "unknown_group"  # 404: group not configured (unknown-group policy refuse)
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
    PAYLOAD_TOO_LARGE = "payload_too_large"  # 413: body over 64 KiB
    FAILED_LOCK_SEMAPHORE_FULL = "failed_lock_semaphore_full"  # 423: every slot is held
    FAILED_LOCK_PAUSED = "failed_lock_paused"  # 423: reboots in the group are paused
    BLOCKED = "blocked"  # 423: a fleet-wide blocker (firing alerts, a failing check) says no
    ROLLOUT_WAITING = "rollout_waiting"  # 423: an earlier rollout stage has not ended and baked
    FAILED_LOCK_PACING = "failed_lock_pacing"  # 423: a freed slot cools down (pace); `until`
    FAILED_LOCK_QUEUED = "failed_lock_queued"  # 423: a slot is free, earlier askers go first
    NODE_HOLDS_SLOT = "node_holds_slot"  # 409: a node to forget holds a slot; release it first
    BACKEND_UNAVAILABLE = "backend_unavailable"  # 503: the store did not answer; retry later
    INTERNAL_ERROR = "internal_error"  # 500: a bug in stagger; please report it

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS = {
    ErrorKind.INVALID_REQUEST: 400,
    ErrorKind.INVALID_GROUP: 400,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.UNKNOWN_GROUP: 404,
    ErrorKind.METHOD_NOT_ALLOWED: 405,
    ErrorKind.PAYLOAD_TOO_LARGE: 413,
    ErrorKind.FAILED_LOCK_SEMAPHORE_FULL: 423,
    ErrorKind.FAILED_LOCK_PAUSED: 423,
    ErrorKind.BLOCKED: 423,
    ErrorKind.ROLLOUT_WAITING: 423,
    ErrorKind.FAILED_LOCK_PACING: 423,
    ErrorKind.FAILED_LOCK_QUEUED: 423,
    ErrorKind.NODE_HOLDS_SLOT: 409,
    ErrorKind.BACKEND_UNAVAILABLE: 503,
    ErrorKind.INTERNAL_ERROR: 500,
}

DENIAL_KINDS = {
    DenyReason.FULL: ErrorKind.FAILED_LOCK_SEMAPHORE_FULL,
    DenyReason.PAUSED: ErrorKind.FAILED_LOCK_PAUSED,
    DenyReason.BLOCKED: ErrorKind.BLOCKED,
    DenyReason.ROLLOUT_WAITING: ErrorKind.ROLLOUT_WAITING,
    DenyReason.PACING: ErrorKind.FAILED_LOCK_PACING,
    DenyReason.QUEUED: ErrorKind.FAILED_LOCK_QUEUED,
}


class ErrorModel(Model):
    """A FleetLock error body. `max` and `holders` come with every denial, `pause` with a
    paused one (and `node` when it is that node's own pause), `until` with a pacing one,
    `position` (the node's 1-based place in the group's queue) with every denial of a queued
    node, `queue_full` (the queue's length) with that of a node the full queue had no place
    for, `blockers` (their names) with a blocked one, `stage` and `bake_ends` with
    rollout_waiting, and `group` with node_holds_slot (extra fields FleetLock clients ignore)."""

    kind: ErrorKind
    value: str = Field(min_length=1)
    max: int | None = None
    holders: list[str] | None = None
    pause: PauseModel | None = None
    group: str | None = None
    node: str | None = None
    blockers: list[str] | None = None
    # With rollout_waiting: the stage that must end first, and when its bake ends.
    stage: str | None = None
    bake_ends: MaybeInstant = None
    until: MaybeInstant = None
    position: int | None = Field(None, ge=1)
    queue_full: int | None = Field(None, ge=1)

    def denial(self) -> Denied | None:
        for reason, kind in DENIAL_KINDS.items():
            if kind is self.kind:
                p = self.pause.value() if self.pause is not None else None
                blocked = reason is DenyReason.BLOCKED
                detail = self.value.removeprefix(BLOCKED_PREFIX) if blocked else ""
                return Denied(
                    reason,
                    self.max or 0,
                    tuple(self.holders or ()),
                    p,
                    self.node or "",
                    detail,
                    stage=self.stage or "",
                    bake_ends=self.bake_ends,
                    until=self.until,
                    position=self.position,
                    queue_full=self.queue_full or 0,
                )
        return None

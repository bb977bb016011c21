"""A role: a job that one of several servers does at a time (sending notifications), held
with a lease, as a value.

Rules of this file:
- Pure: values in, values out; `now` comes in as an argument. A backend loads the role,
  calls `claim` or `release`, and writes the result atomically (writing nothing when the
  value did not change).
- Invariant: at any `now`, at most one owner holds a live role. A holder keeps it by claiming
  again before `expires_at`; a holder that stops (crash, partition) loses it at `expires_at`,
  judged by the backend's clock, and the next claimant takes it.
- `mark` is an opaque note the holder leaves for its successor (where it got to). It
  survives the holder: expiry and release end the lease, never the mark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from stagger.core.errors import InvalidInput
from stagger.core.semaphore import validate_id, validate_name


def validate_role(name: str) -> str:
    return validate_name(name, "role", "'notify'")


def validate_ttl(ttl: timedelta) -> timedelta:
    if ttl <= timedelta(0):
        raise InvalidInput(f"a role's ttl must be longer than 0 s, not {ttl}: give one like 10s")
    return ttl


@dataclass(frozen=True)
class Role:
    """Who holds the role `name` until `expires_at` (the backend's clock), and the mark its
    holder left. An expired role is free; its owner and mark stay for the successor."""

    name: str
    owner: str
    expires_at: datetime
    mark: str = ""

    def live(self, now: datetime) -> bool:
        return now < self.expires_at

    def held_by(self, owner: str, now: datetime) -> bool:
        return self.owner == owner and self.live(now)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: the stored form in every backend."""
        return {
            "version_format": 1,
            "name": self.name,
            "owner": self.owner,
            "expires_at": self.expires_at.isoformat(),
            "mark": self.mark,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Role:
        """The inverse of to_dict; raises ValueError/KeyError/TypeError on a broken one."""
        return cls(
            name=str(doc["name"]),
            owner=str(doc["owner"]),
            expires_at=datetime.fromisoformat(doc["expires_at"]),
            mark=str(doc.get("mark", "")),
        )


def claim(
    current: Role | None,
    name: str,
    owner: str,
    now: datetime,
    ttl: timedelta,
    mark: str | None = None,
) -> tuple[Role, bool]:
    """`owner` asks for the role at `now`: (the role's new value, whether `owner` holds it).

    Free (never held, or expired) or already `owner`'s: it is `owner`'s until `now + ttl`,
    with `mark` when given (None keeps the stored one: the previous holder's, on a takeover).
    Held by another owner and live: unchanged, and not `owner`'s.
    """
    validate_role(name)
    validate_id(owner)
    validate_ttl(ttl)
    if current is not None and current.live(now) and current.owner != owner:
        return current, False
    kept = current.mark if current is not None else ""
    return Role(name, owner, now + ttl, kept if mark is None else mark), True


def release(current: Role | None, owner: str, now: datetime) -> Role | None:
    """`owner` gives the role up at `now`: the freed role (mark kept) to write, or None when
    `owner` does not hold it (nothing to write: releasing is owned and idempotent)."""
    validate_id(owner)
    if current is None or not current.held_by(owner, now):
        return None
    return replace(current, expires_at=now)

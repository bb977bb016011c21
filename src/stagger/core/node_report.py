"""A node's report: what a stagger agent publishes about itself, and how stored reports are read
back, one at a time.

Rules of this file:
- Pure: values in, values out. The backends store NodeReports as JSON (`to_dict`).
- Silence is judged by the backend's clock (`updated_at` is stamped by the backend that
  stored the report, never by the node), like hold expiry.
- One report a backend cannot read (a newer agent's state, a damaged value) leaves out that
  node only (`decode_reports`), never the whole fleet view.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from stagger.core.cycle.node_state import CheckResult, NodeState, State
from stagger.core.semaphore import validate_group, validate_id
from stagger.core.times import check_instant

DEFAULT_SILENT_AFTER = timedelta(minutes=15)
# The agent publishes at every transition and at least this often (the issue: 5 minutes).
REPORT_INTERVAL = timedelta(minutes=5)
MAX_TEXT = 1000  # reason, detector and health detail are cut to this many characters


@dataclass(frozen=True)
class NodeReport:
    """What a stagger agent publishes about itself. `updated_at` is the storing backend's
    time of the last report."""

    id: str
    group: str
    state: State
    reason: str = ""
    needed_since: datetime | None = None
    detector: str = ""
    next_window: datetime | None = None  # the next opening of a reboot window, if known
    last_reboot: datetime | None = None
    last_health: CheckResult | None = None
    version: str = ""
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        validate_id(self.id)
        validate_group(self.group)
        # One time no reader can show must not break the fleet view: refused when sent, and
        # a stored one makes this report unreadable (decode_reports), never the whole view.
        for name in ("needed_since", "next_window", "last_reboot", "updated_at"):
            value = getattr(self, name)
            if value is not None:
                check_instant(value, name)
        if self.last_health is not None:
            check_instant(self.last_health.at, "last_health.at")

    @classmethod
    def of(
        cls,
        node_id: str,
        group: str,
        state: NodeState,
        *,
        version: str,
        next_window: datetime | None = None,
    ) -> NodeReport:
        """The report of an agent whose saved state is `state`."""
        need = state.needed
        return cls(
            id=node_id,
            group=group,
            state=state.cycle,
            reason=state.reason[:MAX_TEXT],
            needed_since=need.since if need is not None else None,
            detector=need.detector[:MAX_TEXT] if need is not None else "",
            next_window=next_window,
            last_reboot=state.last_reboot,
            last_health=state.last_health,
            version=version,
        )

    def stamped(self, now: datetime) -> NodeReport:
        return replace(self, updated_at=now)

    def is_silent(self, now: datetime, silent_after: timedelta) -> bool:
        return self.updated_at is None or now - self.updated_at > silent_after

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (times as RFC 3339): the stored form in every backend."""
        health = self.last_health
        return {
            "version_format": 1,
            "id": self.id,
            "group": self.group,
            "state": self.state.value,
            "reason": self.reason,
            "needed_since": _ts(self.needed_since),
            "detector": self.detector,
            "next_window": _ts(self.next_window),
            "last_reboot": _ts(self.last_reboot),
            "last_health": (
                None
                if health is None
                else {"ok": health.ok, "detail": health.detail, "at": health.at.isoformat()}
            ),
            "version": self.version,
            "updated_at": _ts(self.updated_at),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> NodeReport:
        """The inverse of to_dict. Raises ValueError/KeyError/TypeError on a broken document;
        a state this stagger does not know (a newer agent's) raises ValueError too."""
        h = doc.get("last_health")
        return cls(
            id=doc["id"],
            group=doc["group"],
            state=State(doc["state"]),
            reason=str(doc.get("reason", "")),
            needed_since=_dt(doc.get("needed_since")),
            detector=str(doc.get("detector", "")),
            next_window=_dt(doc.get("next_window")),
            last_reboot=_dt(doc.get("last_reboot")),
            last_health=(
                None
                if not h
                else CheckResult(bool(h["ok"]), str(h["detail"]), datetime.fromisoformat(h["at"]))
            ),
            version=str(doc.get("version", "")),
            updated_at=_dt(doc.get("updated_at")),
        )


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Unreadable:
    """A stored report this stagger cannot read: where it is (`key`: the node id in SQLite,
    the key in etcd) and why (`error`)."""

    key: str
    error: str


@dataclass(frozen=True)
class StoredReports:
    """What a backend holds: the reports it could read, and the ones it could not."""

    reports: tuple[NodeReport, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()


def decode_reports(stored: Iterable[tuple[str, str | bytes]]) -> StoredReports:
    """Each (key, stored JSON) as a NodeReport, in the given order; one that cannot be read
    (broken JSON, a missing field, a state a newer agent knows and this stagger does not) is
    left out and named in `unreadable`, so it never hides the others."""
    reports: list[NodeReport] = []
    unreadable: list[Unreadable] = []
    for key, raw in stored:
        try:
            reports.append(NodeReport.from_dict(json.loads(raw)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)
            unreadable.append(Unreadable(key, reason[:MAX_TEXT]))
    return StoredReports(tuple(reports), tuple(unreadable))


def stored_group(raw: str | bytes) -> str | None:
    """The group a stored report names, when it can be read that far (a report that is
    unreadable otherwise may still say it); None when not."""
    try:
        doc = json.loads(raw)
        return validate_group(doc["group"]) if isinstance(doc, dict) else None
    except (ValueError, KeyError, TypeError):
        return None

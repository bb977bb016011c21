"""What the fleet tells people, decided (pure): which history events, stale holds and halted
nodes are news since the last look at the store (`changes`), in what words (`Notification`),
and where a notifier got to, so another server can take over from it (the mark).

The shell (server/notify.py) reads the store, asks these functions, and delivers; several
servers on one store agree through a server role (core/roles.py) which one sends.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stagger.core.cycle.node_state import State
from stagger.core.durations import format_duration
from stagger.core.node_report import NodeReport
from stagger.core.semaphore import FLEET, Action, Event

# A mark names every event it has dealt with from this long before its newest one: events are
# stamped by their writers' clocks before they are committed, so one may land in the history
# slightly older than an event already seen (commit delay, clock skew between servers).
MARK_MARGIN = timedelta(seconds=5)
# The notifier writes its mark again at least this often, even unchanged, so a successor can
# tell a mark left moments ago from one left before a long outage of every server. A mark
# older than MARK_MAX_AGE is not followed: the new notifier starts from now (as a server alone
# does), instead of sending a backlog of events from long ago.
MARK_REFRESH = timedelta(minutes=5)
MARK_MAX_AGE = timedelta(minutes=15)
MARK_FORMAT = 1

# History actions → notification events (CONFIGURED is not worth a person's attention).
_FROM_HISTORY = {
    Action.ACQUIRED: "granted",
    Action.RELEASED: "released",
    Action.EXPIRED: "released",
    Action.PAUSED: "paused",
    Action.RESUMED: "resumed",
    Action.MAX_CHANGED: "max_changed",
    Action.REBOOT_ASKED: "reboot_asked",
    Action.STAGE_DONE: "stage_done",
    Action.ROLLOUT_HALTED: "rollout_halted",
}


@dataclass(frozen=True)
class Notification:
    """Something that happened, in the words of the CLI and the history."""

    event: str
    time: datetime
    group: str | None  # None: the fleet-wide pause
    id: str = ""
    by: str = ""
    detail: str = ""

    def sentence(self) -> str:
        where = f"group {self.group}" if self.group else "every group"
        by = f" by {self.by}" if self.by and self.by != self.id else ""
        detail = f": {self.detail}" if self.detail else ""
        if self.event == "granted":
            return f"{self.id} took a reboot slot in {where}{by}"
        if self.event == "released":
            return f"{self.id} released its slot in {where}{by}{detail}"
        if self.event == "denied_paused":
            return f"{self.id} was denied a slot in {where}: reboots are paused{detail}"
        if self.event == "halted":
            return f"{self.id} in {where} is HALTED: health checks failed after its reboot{detail}"
        if self.event == "stale":
            return f"{self.id}'s hold in {where} is stale: not seen for {self.detail}"
        if self.event == "paused":
            if self.id:  # one node's pause (stagger pause --node)
                return f"reboots of node {self.id} were paused{by}{detail}"
            return f"reboots in {where} were paused{by}{detail}"
        if self.event == "resumed":
            if self.id:
                return f"reboots of node {self.id} were resumed{by}"
            return f"reboots in {where} were resumed{by}"
        if self.event == "reboot_asked":
            return f"an emergency reboot of node {self.id} was asked{by}{detail}"
        if self.event == "stage_done":
            return f"a rollout stage ended: {self.detail}"
        if self.event == "rollout_halted":
            return self.detail or "the rollout halted"
        if self.event == "max_changed":
            return f"max in {where} changed{by}{detail}"
        return f"{self.event} in {where}{detail}"


EventKey = tuple[datetime, str, str, str, str, str]


def _key(e: Event) -> EventKey:
    return (e.time, e.group, e.action.value, e.by, e.id, e.detail)


@dataclass(frozen=True)
class Seen:
    """What the watcher saw last time: events, stale holds, halted nodes."""

    events: frozenset[EventKey] = frozenset()
    stale: frozenset[tuple[str, str]] = frozenset()
    halted: frozenset[str] = frozenset()


def from_event(e: Event) -> Notification | None:
    name = _FROM_HISTORY.get(e.action)
    if name is None:
        return None
    group = None if e.group == FLEET else e.group
    return Notification(name, e.time, group, e.id, e.by, e.detail)


def changes(
    before: Seen | None,
    history: Sequence[Event],
    stale_since: Mapping[tuple[str, str], datetime],
    reports: Iterable[NodeReport],
    now: datetime,
) -> tuple[Seen, list[Notification]]:
    """What happened since `before` (None: the first look, which only takes a baseline), from
    the history, the stale holds ((group, id) → last seen) and the node reports read at the
    store's `now`."""
    stale = set(stale_since)
    halted = {r.id: r for r in reports if r.state is State.HALTED}
    seen = Seen(frozenset(_key(e) for e in history), frozenset(stale), frozenset(halted))
    if before is None:
        return seen, []
    out: list[Notification] = []
    # Oldest first; events of one change share a time and keep their order (history is
    # newest first, so it is reversed before the stable sort).
    for e in sorted(reversed(history), key=lambda e: e.time):
        if _key(e) not in before.events:
            n = from_event(e)
            if n is not None:
                out.append(n)
    for group, node_id in sorted(stale - before.stale):
        ago = format_duration(now - stale_since[(group, node_id)])
        out.append(Notification("stale", now, group, node_id, detail=ago))
    for node_id in sorted(set(halted) - before.halted):
        r = halted[node_id]
        health = r.last_health.detail if r.last_health is not None else r.reason
        out.append(Notification("halted", r.updated_at or now, r.group, node_id, detail=health))
    return seen, out


# --- the mark a notifier leaves for its successor ---------------------------------------------


def _key_doc(k: EventKey) -> list[str]:
    return [k[0].isoformat(), *k[1:]]


def _key_of(doc: Sequence[Any]) -> EventKey:
    time, group, action, by, node_id, detail = doc
    return (datetime.fromisoformat(time), str(group), str(action), str(by), str(node_id),
            str(detail))  # fmt: skip


def mark_body(seen: Seen) -> dict[str, Any]:
    """Where a notifier got to, for its successor: the time of the newest event it dealt with,
    the events it dealt with from MARK_MARGIN before that, and the stale holds and halted
    nodes it knew of. Deterministic, so an unchanged view gives an equal body."""
    newest = max((k[0] for k in seen.events), default=None)
    keys = [] if newest is None else sorted(k for k in seen.events if k[0] >= newest - MARK_MARGIN)
    return {
        "version_format": MARK_FORMAT,
        "newest": newest.isoformat() if newest is not None else None,
        "events": [_key_doc(k) for k in keys],
        "stale": sorted([g, i] for g, i in seen.stale),
        "halted": sorted(seen.halted),
    }


def encode_mark(seen: Seen, written: datetime) -> str:
    """The mark as stored: `mark_body` and when it was written (the store's time)."""
    return json.dumps({**mark_body(seen), "written": written.isoformat()}, separators=(",", ":"))


def seen_from_mark(mark: str, history: Sequence[Event], now: datetime) -> Seen | None:
    """What the notifier that left `mark` had dealt with, given the history now: events older
    than MARK_MARGIN before its newest one, and the ones it named. None when there is no mark
    (no notifier ever left one) or it was written over MARK_MAX_AGE before `now` (every
    server was down: start from now). Raises ValueError on a mark this stagger cannot read."""
    if not mark:
        return None
    try:
        doc = json.loads(mark)
        if doc["version_format"] != MARK_FORMAT:
            raise ValueError(f"mark format {doc['version_format']!r} is not {MARK_FORMAT}")
        if now - datetime.fromisoformat(doc["written"]) > MARK_MAX_AGE:
            return None
        named = frozenset(_key_of(k) for k in doc["events"])
        newest = datetime.fromisoformat(doc["newest"]) if doc["newest"] is not None else None
        stale = frozenset((str(g), str(i)) for g, i in doc["stale"])
        halted = frozenset(str(i) for i in doc["halted"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the notifier's mark cannot be read ({exc})") from exc
    older: frozenset[EventKey] = frozenset()
    if newest is not None:
        older = frozenset(_key(e) for e in history if e.time < newest - MARK_MARGIN)
    return Seen(older | named, stale, halted)


def mark_due(
    body: Mapping[str, Any], last: Mapping[str, Any] | None, written: datetime | None, now: datetime
) -> bool:
    """Whether the notifier writes its mark with this look: when its view changed since the
    mark it last wrote (`last`, at `written`), or that one is MARK_REFRESH old."""
    fresh = written is not None and now - written < MARK_REFRESH
    return not (fresh and body == last)

"""The stored form of semaphores and events: versioned JSON, shared by every backend so a
group written by one can be read by the tools of another (and by people, with etcdctl)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from stagger.core.errors import BackendUnavailable
from stagger.core.rollout_gate import Budget, Rollout, Stage, StageMark, parse_budget
from stagger.core.semaphore import (
    DEFAULT_MAX,
    DEFAULT_STALE_AFTER,
    Action,
    Event,
    Hold,
    Pause,
    Semaphore,
    Urgent,
)

FORMAT_VERSION = 1
# A group with a percentage max or a pace is written as version 2: a stagger that knows only
# version 1 would grant past them, so it refuses the group instead (codec docs in
# docs/backends.md). Everything else stays version 1, readable by both.
TURNS_VERSION = 2
READABLE_VERSION = TURNS_VERSION


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _req_dt(value: Any) -> datetime:
    parsed = _dt(value)
    if parsed is None:
        raise ValueError("missing timestamp")
    return parsed


# The turns' many times (one or two per active node) are microseconds since the Unix epoch:
# a number is read and written far faster than RFC 3339 text, and exactly.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


_us_kept: dict[datetime, int] = {}


def _us(value: datetime) -> int:
    # A record is rewritten with mostly the same times: remember their numbers.
    known = _us_kept.get(value)
    if known is None:
        if len(_us_kept) >= 100_000:
            _us_kept.clear()
        known = _us_kept[value] = (value - _EPOCH) // _US
    return known


def _from_us(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a time in microseconds")
    return _EPOCH + timedelta(microseconds=value)


def _secs(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def pause_to_dict(p: Pause | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"reason": p.reason, "by": p.by, "since": _ts(p.since), "until": _ts(p.until)}


def pause_from_dict(d: dict[str, Any] | None) -> Pause | None:
    if not d:
        return None
    return Pause(
        reason=d["reason"], by=d["by"], since=_req_dt(d["since"]), until=_dt(d.get("until"))
    )


def hold_to_dict(h: Hold) -> dict[str, Any]:
    return {
        "since": _ts(h.since),
        "last_seen": _ts(h.last_seen),
        "expires_at": _ts(h.expires_at),
        "note": h.note,
    }


def semaphore_to_dict(sem: Semaphore) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": TURNS_VERSION
        if sem.max_percent is not None or sem.pace is not None
        else FORMAT_VERSION,
        "group": sem.group,
        "max": sem.max,
        "holds": {k: hold_to_dict(h) for k, h in sorted(sem.holds.items())},
        "pause": pause_to_dict(sem.pause),
        "hold_ttl": _secs(sem.hold_ttl),
        "stale_after": _secs(sem.stale_after),
    }
    # Optional (only the FLEET record has it, only while a node is paused): a stagger that
    # does not know it ignores it, so the format stays version 1.
    if sem.node_pauses:
        doc["node_pauses"] = {k: pause_to_dict(p) for k, p in sorted(sem.node_pauses.items())}
    if sem.urgent_reboots:  # optional too, like node_pauses
        doc["urgent_reboots"] = {
            k: urgent_to_dict(u) for k, u in sorted(sem.urgent_reboots.items())
        }
    _rollout_fields_to_dict(sem, doc)
    # The turns (core/turns.py): optional; the queue and the memory of nodes (seen) are safe
    # to ignore for an older stagger (it grants in its own order), a percent or pace is not.
    if sem.max_percent is not None:
        doc["max_percent"] = sem.max_percent
    if sem.pace is not None:
        doc["pace"] = _secs(sem.pace)
    if sem.releases:
        doc["releases"] = [_us(t) for t in sem.releases]
    # The queue is a list, in the order nodes joined it, of [id, first ask, last ask]; the
    # last asks of the other nodes seen are in `seen`.
    seen = sem.seen
    if sem.waiting:
        doc["waiting"] = [
            [k, _us(t), _us(seen[k]) if k in seen else None] for k, t in sem.waiting.items()
        ]
    others = {k: _us(t) for k, t in seen.items() if k not in sem.waiting}
    if others:
        doc["seen"] = others
    return doc


def _rollout_fields_to_dict(sem: Semaphore, doc: dict[str, Any]) -> None:
    """The rollout's fields (core/rollout.py), each optional like node_pauses."""
    if sem.rollout is not None:
        doc["rollout"] = rollout_to_dict(sem.rollout)
    if sem.finished:
        doc["finished"] = {k: _ts(t) for k, t in sorted(sem.finished.items())}
    if sem.gated:
        doc["gated"] = {k: _ts(t) for k, t in sorted(sem.gated.items())}
    if sem.max_failures is not None:
        doc["max_failures"] = sem.max_failures.text()
    if sem.budget_tripped:
        doc["budget_tripped"] = list(sem.budget_tripped)


def _rollout_fields_from_dict(d: dict[str, Any]) -> dict[str, Any]:
    budget = d.get("max_failures")
    return {
        "rollout": rollout_from_dict(d["rollout"]) if d.get("rollout") else None,
        "finished": {k: _req_dt(v) for k, v in (d.get("finished") or {}).items()},
        "gated": {k: _req_dt(v) for k, v in (d.get("gated") or {}).items()},
        "max_failures": parse_budget(budget) if budget is not None else None,
        "budget_tripped": tuple(str(n) for n in d.get("budget_tripped") or ()),
    }


def rollout_to_dict(r: Rollout) -> dict[str, Any]:
    return {
        "stages": [
            {"groups": list(s.groups), "bake": _secs(s.bake), "close_after": _secs(s.close_after)}
            for s in r.stages
        ],
        "started_at": _ts(r.started_at),
        "by": r.by,
        "max_failures": r.max_failures.text() if r.max_failures is not None else None,
        "generation": r.generation,
        "marks": [
            {
                "done_at": _ts(m.done_at),
                "bake_ends": _ts(m.bake_ends),
                "left_behind": list(m.left_behind),
                "closed": m.closed,
                **({"behind": m.behind} if m.behind > len(m.left_behind) else {}),
            }
            for m in r.marks
        ],
        "tripped_by": list(r.tripped_by),
    }


def rollout_from_dict(d: dict[str, Any]) -> Rollout:
    budget: Budget | None = None
    if d.get("max_failures") is not None:
        budget = parse_budget(d["max_failures"])
    return Rollout(
        stages=tuple(
            Stage(
                tuple(str(g) for g in s["groups"]),
                timedelta(seconds=s.get("bake") or 0),
                timedelta(seconds=s["close_after"]) if s.get("close_after") is not None else None,
            )
            for s in d["stages"]
        ),
        started_at=_req_dt(d["started_at"]),
        by=str(d.get("by", "")),
        max_failures=budget,
        generation=int(d.get("generation", 1)),
        marks=tuple(
            StageMark(
                _req_dt(m["done_at"]),
                _req_dt(m["bake_ends"]),
                tuple(str(n) for n in m.get("left_behind") or ()),
                m.get("closed") is True,
                int(m.get("behind") or 0),
            )
            for m in d.get("marks") or ()
        ),
        tripped_by=tuple(str(n) for n in d.get("tripped_by") or ()),
    )


def urgent_to_dict(u: Urgent) -> dict[str, Any]:
    return {
        "reason": u.reason,
        "by": u.by,
        "since": _ts(u.since),
        "ignore_blackouts": u.ignore_blackouts,
    }


def urgent_from_dict(d: dict[str, Any]) -> Urgent:
    return Urgent(
        reason=d["reason"],
        by=d["by"],
        since=_req_dt(d["since"]),
        ignore_blackouts=d.get("ignore_blackouts") is True,
    )


def semaphore_from_dict(d: dict[str, Any]) -> Semaphore:
    ttl = d.get("hold_ttl")
    stale = d.get("stale_after")
    return Semaphore(
        group=d["group"],
        max=int(d.get("max", DEFAULT_MAX)),
        holds={
            k: Hold(
                id=k,
                since=_req_dt(h["since"]),
                last_seen=_req_dt(h["last_seen"]),
                expires_at=_dt(h.get("expires_at")),
                note=h.get("note", ""),
            )
            for k, h in d.get("holds", {}).items()
        },
        pause=pause_from_dict(d.get("pause")),
        hold_ttl=timedelta(seconds=ttl) if ttl is not None else None,
        stale_after=timedelta(seconds=stale) if stale is not None else DEFAULT_STALE_AFTER,
        node_pauses={
            k: p for k, v in (d.get("node_pauses") or {}).items() if (p := pause_from_dict(v))
        },
        urgent_reboots={k: urgent_from_dict(v) for k, v in (d.get("urgent_reboots") or {}).items()},
        **_rollout_fields_from_dict(d),
        max_percent=int(d["max_percent"]) if d.get("max_percent") is not None else None,
        pace=timedelta(seconds=d["pace"]) if d.get("pace") is not None else None,
        releases=tuple(_from_us(t) for t in d.get("releases") or ()),
        seen={k: _from_us(t) for k, t in (d.get("seen") or {}).items()}
        | {str(w[0]): _from_us(w[2]) for w in d.get("waiting") or () if w[2] is not None},
        waiting={str(w[0]): _from_us(w[1]) for w in d.get("waiting") or ()},
    )


# The values last encoded or decoded, by their stored text: a group with a long queue is read
# far more often than it changes, and decoding its every node's times on each read would make
# a lock cost as much as the queue is long. Values are immutable, so sharing one is safe.
_DECODED_KEPT = 256
_decoded: dict[str, Semaphore] = {}


def _keep(raw: str, sem: Semaphore) -> None:
    if len(_decoded) >= _DECODED_KEPT:
        _decoded.clear()
    _decoded[raw] = sem


def encode_semaphore(sem: Semaphore) -> str:
    raw = json.dumps(semaphore_to_dict(sem), separators=(",", ":"), sort_keys=True)
    if sem.waiting or sem.seen:
        _keep(raw, replace(sem, stored=True))
    return raw


def decode_semaphore(raw: str | bytes, where: str) -> Semaphore:
    text = raw.decode() if isinstance(raw, bytes) else raw
    known = _decoded.get(text)
    if known is not None:
        return known
    try:
        doc = json.loads(text)
        if doc.get("version", FORMAT_VERSION) > READABLE_VERSION:
            raise BackendUnavailable(
                f"{where} was written by a newer stagger (format {doc['version']}); "
                "upgrade this stagger before using it"
            )
        sem = semaphore_from_dict(doc)
        if sem.waiting or sem.seen:
            _keep(text, sem)
        return sem
    except BackendUnavailable:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackendUnavailable(
            f"{where} holds data stagger cannot read ({exc}); "
            "inspect it by hand before writing to this group"
        ) from exc


def event_to_dict(e: Event) -> dict[str, Any]:
    return {
        "time": _ts(e.time),
        "group": e.group,
        "action": e.action.value,
        "by": e.by,
        "id": e.id,
        "detail": e.detail,
    }


def event_from_dict(d: dict[str, Any]) -> Event:
    return Event(
        time=_req_dt(d["time"]),
        group=d["group"],
        action=Action(d["action"]),
        by=d["by"],
        id=d.get("id", ""),
        detail=d.get("detail", ""),
    )


def encode_event(e: Event) -> str:
    return json.dumps(event_to_dict(e), separators=(",", ":"), sort_keys=True)


def decode_event(raw: str | bytes) -> Event:
    return event_from_dict(json.loads(raw))


log = logging.getLogger("stagger.backends")
_ACTIONS = frozenset(a.value for a in Action)
_unknown_logged: set[str] = set()


def decode_events(raws: Iterable[str | bytes]) -> list[Event]:
    """Stored history, in order. An event whose action this stagger does not know (a newer
    stagger wrote it, sharing the store during an upgrade) is left out and logged once per
    action, so the rest of the history still reads; a broken document still raises."""
    events = []
    for raw in raws:
        doc = json.loads(raw)
        action = doc.get("action") if isinstance(doc, dict) else None
        if isinstance(action, str) and action not in _ACTIONS:
            if action not in _unknown_logged:
                _unknown_logged.add(action)
                log.warning(
                    "history events with action %r come from a newer stagger and are left out "
                    "here: upgrade this stagger to see them",
                    action,
                )
            continue
        events.append(event_from_dict(doc))
    return events

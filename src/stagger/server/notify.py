"""Notifications: the server tells people (Slack, any webhook) what happened to the fleet.

Where events come from:
- a watcher reads the store every `notify_interval` seconds: new history events (granted,
  released, paused, resumed, max_changed — whoever wrote them: this server, another one, the
  CLI, an agent on etcd), holds that turned stale, and node reports that turned halted;
- the FleetLock endpoint reports `denied_paused` itself (denials are not history), once per
  node and pause.

Several servers on one store send each notification once: every look, each server claims the
store's notifier role (core/roles.py, a lease of ROLE_TTL_MIN or three looks, whichever is
longer). Only its holder offers what changed; the others keep looking (so their view of stale
holds and halted nodes stays current) and offer nothing. The holder leaves a mark in the role
(where it got to: `encode_mark`), so a server that takes over after it died or stopped offers
exactly what the old one had not (`seen_from_mark`): events of the gap are sent once.

What counts as news, in what words, and the mark are decided in core/notices.py; this file
reads the store, claims the role and delivers.

How they leave: each `[[notify]]` target has its own bounded queue and one sender task, so a
slow or dead receiver delays nobody else and never a lock decision (offering is a
`put_nowait`; a full queue drops the oldest and counts it). A failed POST is retried with
doubling back-off; every failure is counted in /metrics and logged with the target's name and
host only (webhook URLs and headers carry secrets).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from stagger import __version__
from stagger.backends.node_pages import reports_in_state
from stagger.backends.protocol import Backend, Roles, Snapshot
from stagger.config.notify_section import NotifyConfig
from stagger.core.cycle.node_state import State
from stagger.core.durations import format_duration
from stagger.core.notices import (
    MARK_MAX_AGE,
    Notification,
    Seen,
    changes,
    encode_mark,
    mark_body,
    mark_due,
    seen_from_mark,
)
from stagger.core.semaphore import Event, Pause
from stagger.core.times import rfc3339
from stagger.server.metrics import Metrics

log = logging.getLogger("stagger.server.notify")

QUEUE_MAX = 1000  # per target; beyond it the oldest waiting notification is dropped
BACKOFF_CAP = 300.0  # seconds
HISTORY_WINDOW = 200  # events read per watch; a burst larger than this between two reads is cut
# The notifier role's lease: three looks, and never shorter than this, so a slow look or a
# short hiccup of the store does not hand the role over (and a new notifier takes over within
# this long after the old one died).
ROLE_TTL_MIN = timedelta(seconds=10)


@dataclass(frozen=True)
class NotifyTarget:
    """One `[[notify]]` entry, ready to use."""

    name: str
    url: str = field(repr=False)
    events: frozenset[str]
    format: str = "json"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    retries: int = 5
    backoff: float = 2.0
    timeout: float = 5.0

    @classmethod
    def of(cls, cfg: NotifyConfig, index: int) -> NotifyTarget:
        return cls(
            name=cfg.name or f"notify-{index}",
            url=cfg.url,
            events=frozenset(cfg.events),
            format=cfg.format,
            headers=dict(cfg.headers),
            retries=cfg.retries,
            backoff=cfg.backoff_delta().total_seconds(),
            timeout=cfg.timeout_delta().total_seconds(),
        )

    @property
    def where(self) -> str:
        """The target for logs: its name and host, never the path or query (Slack's secret)."""
        return f"{self.name} ({urlsplit(self.url).hostname or '?'})"


def targets_of(configs: Sequence[NotifyConfig]) -> tuple[NotifyTarget, ...]:
    return tuple(NotifyTarget.of(c, i) for i, c in enumerate(configs, 1))


def payload(n: Notification, fmt: str) -> dict[str, Any]:
    """The body sent to a target: stagger's JSON document, or a Slack incoming-webhook one."""
    text = "stagger: " + n.sentence()
    if fmt == "slack":
        return {"text": text}
    return {
        "source": "stagger",
        "version": __version__,
        "event": n.event,
        "time": rfc3339(n.time),
        "group": n.group,
        "id": n.id,
        "by": n.by,
        "detail": n.detail,
        "text": text,
    }


# --- one notifier among several servers (pure) ------------------------------------------------


def stale_holds(snapshot: Snapshot) -> dict[tuple[str, str], datetime]:
    """The snapshot's stale holds: (group, id) → when the holder was last seen."""
    return {
        (g.group, h.id): h.last_seen for g in snapshot.groups for h in g.holds if h.id in g.stale
    }


def role_ttl(interval: float) -> timedelta:
    """How long the notifier role lasts without a renewal, for looks every `interval` s."""
    return max(timedelta(seconds=3 * interval), ROLE_TTL_MIN)


def role_name(targets: Sequence[NotifyTarget]) -> str:
    """The role servers with the same `[[notify]]` destinations share. Servers configured with
    different ones (a rolling change of the config) each have their own notifier, so a
    destination gets duplicates for a while rather than nothing."""
    what = sorted((t.url, t.format, sorted(t.events)) for t in targets)
    digest = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:12]
    return f"notify-{digest}"


def default_owner() -> str:
    """This server among its store's servers: host, process and a random part (a restarted
    server is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


# --- delivery -----------------------------------------------------------------------------------


class Sender:
    """One target's queue and sender task."""

    def __init__(self, target: NotifyTarget, metrics: Metrics, rng: random.Random) -> None:
        self.target = target
        self.metrics = metrics
        self.rng = rng
        self.queue: asyncio.Queue[Notification] = asyncio.Queue(maxsize=QUEUE_MAX)
        self.client = httpx.AsyncClient(timeout=target.timeout, follow_redirects=False)
        self.task: asyncio.Task[None] | None = None

    def offer(self, n: Notification) -> None:
        if n.event not in self.target.events:
            return
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.metrics.notify_dropped(self.target.name, "queue_full")
        self.queue.put_nowait(n)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.client.aclose()

    async def _run(self) -> None:
        while True:
            n = await self.queue.get()
            await self.deliver(n)

    async def deliver(self, n: Notification) -> bool:
        t = self.target
        body = payload(n, t.format)
        delay = t.backoff
        for attempt in range(t.retries + 1):
            if attempt:
                await asyncio.sleep(self.rng.uniform(delay / 2, delay))
                delay = min(delay * 2, BACKOFF_CAP)
            try:
                r = await self.client.post(t.url, json=body, headers=dict(t.headers))
            except httpx.HTTPError as exc:
                why = type(exc).__name__
            else:
                if r.is_success:
                    self.metrics.notify_sent(t.name, n.event)
                    return True
                why = f"HTTP {r.status_code}"
            self.metrics.notify_failed(t.name)
            log.warning(
                "notification %s to %s failed (try %d of %d): %s",
                n.event, t.where, attempt + 1, t.retries + 1, why,
            )  # fmt: skip
        self.metrics.notify_dropped(t.name, "given_up")
        log.error("gave up sending notification %s to %s", n.event, t.where)
        return False


class Notifier:
    """Every target's sender, the watcher, the notifier role, and the once-per-pause memory of
    denials."""

    def __init__(
        self,
        targets: Sequence[NotifyTarget],
        metrics: Metrics,
        *,
        interval: float = 2.0,
        rng: random.Random | None = None,
        owner: str | None = None,
        ttl: timedelta | None = None,
    ) -> None:
        self.targets = tuple(targets)
        self.metrics = metrics
        self.interval = interval
        self.rng = rng or random.Random()
        self.owner = owner or default_owner()
        self.role = role_name(self.targets)
        self.ttl = ttl if ttl is not None else role_ttl(interval)
        self.leader = False  # whether this server sends what the watcher finds
        self.senders: list[Sender] = []
        self._backend: Backend | None = None
        self._watch: asyncio.Task[None] | None = None
        self._seen: Seen | None = None
        self._mark: dict[str, Any] | None = None  # the mark body this server last left
        self._mark_written: datetime | None = None  # and when
        self._denied: set[tuple[str, str, datetime]] = set()
        self._failing = False
        self._bad_marks: set[str] = set()

    def offer(self, n: Notification) -> None:
        """Queue `n` for every target that wants it. Never blocks, never raises."""
        for s in self.senders:
            s.offer(n)

    def denied_paused(self, group: str, node_id: str, pause: Pause | None, now: datetime) -> None:
        """A FleetLock denial because of a pause: told once per node and pause."""
        since = pause.since if pause is not None else now
        key = (group, node_id, since)
        if key in self._denied:
            return
        if len(self._denied) > 10 * QUEUE_MAX:
            self._denied.clear()
        self._denied.add(key)
        detail = ""
        if pause is not None:
            detail = f"{pause.reason} (paused by {pause.by})"
        self.offer(Notification("denied_paused", now, group, node_id, detail=detail))

    async def start(self, backend: Backend) -> None:
        for t in self.targets:
            s = Sender(t, self.metrics, self.rng)
            s.start()
            self.senders.append(s)
        if self.targets:
            self._backend = backend
            # The first look (a baseline, unless an earlier notifier left a mark) happens
            # before the server answers, so every event after it is ready is sent.
            await self._look(backend)
            self._watch = asyncio.get_running_loop().create_task(self._watch_loop(backend))

    async def stop(self) -> None:
        """Stop watching and sending; as the notifier, hand the role over at once."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        backend = self._backend
        if self.leader and isinstance(backend, Roles):
            try:
                await backend.release_role(self.role, self.owner)
            except Exception as exc:  # it ends at its ttl anyway
                log.warning("notifications: could not hand the notifier role over: %s", exc)
        self._lead(False, "")
        for s in self.senders:
            await s.stop()

    def _lead(self, leader: bool, holder: str) -> None:
        if leader != self.leader:
            if leader:
                log.info("this server (%s) is now the notifier: it sends notifications", holder)
            else:
                log.info("this server is no longer the notifier (now: %s)", holder or "none")
        self.leader = leader
        self.metrics.set_notify_leader(leader)

    async def _look(self, backend: Backend) -> None:
        """One look at the store: as the notifier, offer what changed since the last look (or
        since the previous notifier's mark, on a takeover). On a failed read or claim nothing
        is taken as seen, so it is offered at the next look."""
        try:
            history = await backend.history(None, HISTORY_WINDOW)
            snapshot = await backend.status()
            # Only the halted reports are news (core/notices.py): read through the state index.
            reports = (await reports_in_state(backend, State.HALTED)).reports
        except Exception as exc:  # the store is down: look again later, say so once
            self._warn("cannot read the store", exc)
            return
        now = snapshot.now
        stale = stale_holds(snapshot)
        seen, found = changes(self._seen, history, stale, reports, now)
        if not isinstance(backend, Roles):  # alone on its store (no roles): always the notifier
            self._failing = False
            self._lead(True, self.owner)
            self._offer_all(seen, found)
            return
        was_leader = self.leader
        leave = self._leave(seen, now) if was_leader else None
        try:
            role, mine = await backend.claim_role(self.role, self.owner, self.ttl, mark=leave)
        except Exception as exc:
            self._warn("cannot claim the notifier role", exc)
            return
        self._failing = False
        if not mine:
            self._seen = seen  # current, for stale and halted when this server takes over
            self._lead(False, role.owner)
            return
        if was_leader:
            if leave is not None:
                self._mark, self._mark_written = mark_body(seen), now
            self._offer_all(seen, found)
            return
        before = self._from_mark(role.mark, history, now)
        if before is not None:
            seen, found = changes(before, history, stale, reports, now)
        self._lead(True, self.owner)
        self._offer_all(seen, found)
        try:
            await backend.claim_role(self.role, self.owner, self.ttl, mark=encode_mark(seen, now))
            self._mark, self._mark_written = mark_body(seen), now
        except Exception as exc:  # left with the next look
            self._warn("cannot leave the notifier's mark", exc)

    def _leave(self, seen: Seen, now: datetime) -> str | None:
        """The mark to write with this look's claim: None while the view is unchanged and the
        last one written is younger than MARK_REFRESH."""
        if not mark_due(mark_body(seen), self._mark, self._mark_written, now):
            return None
        return encode_mark(seen, now)

    def _offer_all(self, seen: Seen, found: Sequence[Notification]) -> None:
        self._seen = seen
        for n in found:
            self.offer(n)

    def _from_mark(self, mark: str, history: Sequence[Event], now: datetime) -> Seen | None:
        try:
            seen = seen_from_mark(mark, history, now)
            if seen is None and mark:
                log.info(
                    "notifications: the last notifier's mark is over %s old (every server was "
                    "down): starting from now; events before are not sent",
                    format_duration(MARK_MAX_AGE),
                )
            return seen
        except ValueError as exc:
            if mark not in self._bad_marks:
                self._bad_marks.add(mark)
                log.warning(
                    "notifications: %s; continuing from this server's own last look (an older "
                    "or newer stagger left it: upgrade the servers to one version)",
                    exc,
                )
            return None

    def _warn(self, what: str, exc: Exception) -> None:
        if not self._failing:
            log.warning("notifications: %s: %s", what, exc)
        self._failing = True

    async def _watch_loop(self, backend: Backend) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._look(backend)

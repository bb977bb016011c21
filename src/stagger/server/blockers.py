"""The server's blocker watch: each `[[blocker]]` is checked in the background, at most once
per its interval, and its last verdict kept in memory. A FleetLock grant asks `blocked(group)`
(a dict lookup, never a request to the monitoring) and is refused while it answers something.

What an answer means is decided in core/blockers.py; this file fetches, times and counts.
Nothing here ever lets a reboot go on an error: a check that fails for any reason leaves a
blocking verdict that says why (fail closed), and so does a blocker not checked yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import httpx

from stagger.api.blockers import BlockerModel, blocker_models
from stagger.core.blockers import (
    Blocked,
    Blocker,
    BlockerKind,
    BlockIndex,
    Verdict,
    judge_alerts,
    judge_http,
    not_checked,
    parse_alerts,
    unreachable,
)
from stagger.core.durations import format_duration
from stagger.core.errors import ConfigError, InvalidInput, StaggerError
from stagger.server.metrics import Metrics

log = logging.getLogger("stagger.server.blockers")

# The most of an answer read: an alert list far larger than this is not a filtered one.
MAX_ANSWER = 16 * 1024 * 1024


def tls_verify(blocker: Blocker) -> ssl.SSLContext | bool:
    """How an https URL of `blocker` is verified: its `ca_cert`, else the default CAs. A CA
    file that cannot be used is one sentence naming it (checked when the server starts)."""
    if blocker.ca_cert is None:
        return True
    try:
        return ssl.create_default_context(cafile=blocker.ca_cert)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"[[blocker]] {blocker.name}: cannot use ca_cert {blocker.ca_cert}: {why}; give a "
            "PEM file stagger may read"
        ) from None


def _client(blocker: Blocker) -> httpx.AsyncClient:
    # Redirects are followed (a base URL without its trailing slash, say); the final answer
    # decides.
    return httpx.AsyncClient(follow_redirects=True, verify=tls_verify(blocker))


def _now() -> datetime:
    return datetime.now(UTC)


def _transport_why(exc: httpx.HTTPError, blocker: Blocker) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {format_duration(blocker.timeout)}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BlockerWatch:
    """The verdicts of the configured blockers and the index grants read."""

    def __init__(
        self,
        blockers: Sequence[Blocker],
        metrics: Metrics,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.blockers = tuple(blockers)
        self.metrics = metrics
        self.clock = clock
        self.verdicts: dict[str, Verdict] = {b.name: not_checked(b) for b in self.blockers}
        self.index = BlockIndex.build(self.blockers, self.verdicts)
        # Counts the verdict changes: what a cached page of the verdicts is checked against.
        self.version = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: dict[str, httpx.AsyncClient] = {}
        for b in self.blockers:
            metrics.set_blocker(b.name, self.verdicts[b.name])

    def blocked(self, group: str) -> Blocked | None:
        """Why a grant in `group` is refused now, or None: an in-memory lookup."""
        return self.index.of(group)

    def models(self) -> list[BlockerModel]:
        """The blockers and their last verdicts, as the status document shows them."""
        return blocker_models(self.blockers, self.verdicts)

    async def start(self) -> None:
        if not self.blockers or self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._watch(b), name=f"blocker {b.name}") for b in self.blockers
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def _watch(self, blocker: Blocker) -> None:
        """Check, keep the verdict, wait an interval; until the server stops."""
        while True:
            self.record(blocker, await self.check(blocker))
            await asyncio.sleep(blocker.interval.total_seconds())

    def record(self, blocker: Blocker, verdict: Verdict) -> None:
        before = self.verdicts.get(blocker.name)
        self.verdicts[blocker.name] = verdict
        self.metrics.set_blocker(blocker.name, verdict)
        if before is None or (before.blocking, before.reason) != (verdict.blocking, verdict.reason):
            # A new index (a new value: a grant in flight keeps reading the old one whole).
            self.index = BlockIndex.build(self.blockers, self.verdicts)
            self.version += 1
            if verdict.blocking:
                log.warning("%s", verdict.reason)
            else:
                log.info("blocker %s lets reboots go again: %s", blocker.name, verdict.reason)

    async def check(self, blocker: Blocker) -> Verdict:
        """One check of `blocker`: its verdict, blocking on any failure."""
        url, params = blocker.request()
        try:
            client = self._clients.get(blocker.name)
            if client is None:
                client = self._clients[blocker.name] = _client(blocker)
            answer = await client.get(
                url,
                params=params,
                timeout=blocker.timeout.total_seconds(),
                headers={"accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            return unreachable(blocker, _transport_why(exc, blocker), self.clock())
        except StaggerError as exc:
            return unreachable(blocker, exc.message, self.clock())
        except Exception as exc:  # a bug must not leave an old "go" in force
            log.error("blocker %s: the check failed", blocker.name, exc_info=exc)
            return unreachable(blocker, f"the check failed: {type(exc).__name__}", self.clock())
        now = self.clock()
        if blocker.kind is BlockerKind.HTTP:
            return judge_http(blocker, answer.status_code, now)
        if not answer.is_success:
            return unreachable(blocker, f"it answered HTTP {answer.status_code}", now)
        if len(answer.content) > MAX_ANSWER:
            return unreachable(blocker, f"its answer is over {MAX_ANSWER} bytes", now)
        try:
            alerts = parse_alerts(json.loads(answer.content))
        except ValueError as exc:  # InvalidInput is a ValueError, and so is bad JSON
            why = exc.message if isinstance(exc, InvalidInput) else "the answer is not JSON"
            return unreachable(blocker, why, now)
        return judge_alerts(blocker, alerts, now)

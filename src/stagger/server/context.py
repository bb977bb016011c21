"""What every request handler shares: settings, the backend, auth, metrics, and the set of
groups known to exist (for the `refuse` unknown-group policy)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from stagger.api import ErrorKind
from stagger.backends.factory import open_backend
from stagger.backends.node_pages import WatchedSummary
from stagger.backends.protocol import Backend
from stagger.backends.semaphore_store import SemaphoreStore
from stagger.core.errors import (
    BackendConflict,
    BackendUnavailable,
    ConfigError,
    InvalidInput,
    StaggerError,
)
from stagger.server.auth import Authenticator
from stagger.server.batched_reads import GroupReads
from stagger.server.blockers import BlockerWatch
from stagger.server.metrics import Metrics
from stagger.server.notify import Notifier
from stagger.server.settings import ServerSettings, UnknownGroups

log = logging.getLogger("stagger.server")

SERVER_ACTOR = "stagger-server"
# Under the `refuse` policy a miss re-reads the group list at most this often, so a flood of
# calls for a bogus group costs one backend read per interval, not one per call.
KNOWN_REFRESH_SECONDS = 1.0


def error_body(kind: ErrorKind, value: str, **extra: Any) -> bytes:
    doc: dict[str, Any] = {"kind": kind.value, "value": value}
    doc.update({k: v for k, v in extra.items() if v is not None})
    return json.dumps(doc, separators=(",", ":")).encode()


def classify(exc: BaseException) -> tuple[ErrorKind, str]:
    """The error kind and sentence a failed backend call answers with."""
    if isinstance(exc, InvalidInput):
        return ErrorKind.INVALID_REQUEST, exc.message
    if isinstance(exc, BackendUnavailable | BackendConflict | ConfigError):
        return ErrorKind.BACKEND_UNAVAILABLE, f"the store is unavailable: {exc.message}"
    if isinstance(exc, StaggerError):
        return ErrorKind.INTERNAL_ERROR, exc.message
    return ErrorKind.INTERNAL_ERROR, "the server hit a bug; its log has the details"


class ServerState:
    def __init__(self, settings: ServerSettings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.auth = Authenticator(settings.tokens)
        self.metrics = Metrics()
        self._backend = backend
        self._reads: GroupReads | None = None
        self._known: set[str] = set(settings.groups)
        self._refreshed_at = -KNOWN_REFRESH_SECONDS
        self.notifier = Notifier(settings.notify, self.metrics, interval=settings.notify_interval)
        self.blockers = BlockerWatch(settings.blockers, self.metrics)
        self._rollout_task: asyncio.Task[None] | None = None

    @property
    def reads(self) -> GroupReads:
        if self._reads is None:
            self._reads = GroupReads(self.backend)
        return self._reads

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise BackendUnavailable("the server has not opened its backend yet; retry shortly")
        return self._backend

    async def start(self) -> None:
        # First, so that the first checks are under way while the store is opened.
        await self.blockers.start()
        if self._backend is None:
            options: dict[str, Any] = dict(self.settings.backend_options)
            if self.settings.default_max != 1:
                options.setdefault("default_max", self.settings.default_max)
            # a server creates its SQLite store when it starts (never over an existing file)
            self._backend = open_backend(self.settings.backend_url, create=True, **options)
        if isinstance(self._backend, WatchedSummary):
            self._backend.watch_counts()  # for /metrics; stopped by the backend's close()
        await self._create_configured_groups()
        await self.notifier.start(self.backend)
        if isinstance(self._backend, SemaphoreStore):
            await self._set_configured_rollout(self._backend)
            self._rollout_task = asyncio.get_running_loop().create_task(
                self._judge_rollout(self._backend)
            )

    async def _set_configured_rollout(self, store: SemaphoreStore) -> None:
        """The [rollout] table, set when it differs from the stored rollout: a restart (or a
        second server with the same file) keeps the rollout's progress."""
        if self.settings.rollout is None:
            return
        stages, budget = self.settings.rollout
        try:
            current = (await store.status(None)).rollout
            if current is None or (current.stages, current.max_failures) != (stages, budget):
                await store.set_rollout(stages, budget, by=SERVER_ACTOR)
                log.info("set the rollout from the configuration: %d stage(s)", len(stages))
        except StaggerError as exc:
            log.warning("could not set the configured rollout yet: %s", exc.message)

    async def _judge_rollout(self, store: SemaphoreStore) -> None:
        """Every rollout_interval: write the stage ends and budget pauses the store calls for
        (several servers may: the writes are guarded, and a decision made writes nothing)."""
        while True:
            await asyncio.sleep(self.settings.rollout_interval)
            try:
                await store.advance_rollout()
            except StaggerError as exc:
                log.warning("could not judge the rollout: %s", exc.message)
            except Exception:
                log.exception("judging the rollout failed")

    async def _create_configured_groups(self) -> None:
        if not self.settings.groups:
            return
        try:
            snap = await self.backend.status()
        except StaggerError as exc:
            log.warning("could not create the configured groups yet: %s", exc.message)
            return
        existing = {g.group for g in snap.groups}
        self._known |= existing
        for name, value in self.settings.groups.items():
            if name not in existing:
                await self.backend.set_max(name, value, by=SERVER_ACTOR)
                log.info("created group %s with max %d", name, value)

    async def stop(self) -> None:
        await self.blockers.stop()
        if self._rollout_task is not None:
            self._rollout_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rollout_task
            self._rollout_task = None
        await self.notifier.stop()
        if self._backend is not None:
            await self._backend.close()

    def note_group(self, group: str) -> None:
        self._known.add(group)

    async def group_known(self, group: str) -> bool:
        if self.settings.unknown_groups is UnknownGroups.CREATE or group in self._known:
            return True
        now = time.monotonic()
        if now - self._refreshed_at < KNOWN_REFRESH_SECONDS:
            return False
        self._refreshed_at = now
        snap = await self.backend.status()
        self._known.update(g.group for g in snap.groups)
        return group in self._known

    def failed(self, operation: str, exc: BaseException) -> tuple[ErrorKind, str]:
        kind, value = classify(exc)
        if kind is ErrorKind.BACKEND_UNAVAILABLE:
            self.metrics.backend_error(operation)
            log.warning("%s failed: %s", operation, value)
        elif kind is ErrorKind.INTERNAL_ERROR:
            log.error("%s failed", operation, exc_info=exc)
        return kind, value

"""The node reports' counts per group and state on etcd, kept from a watch, so that a server's
`/metrics` scrape reads them from memory instead of having etcd count the fleet's keys
(docs/backends.md, "Counting the reports").

Rules of this file:
- The counts are read once at one revision R (node_index.py's count-only ranges), then kept
  from a watch of the `node-state/{state}/{group}!{id}` keys from R + 1: a key created (its
  version is 1) is +1 for the group and state its name says, a key deleted is -1 (etcd sends a
  delete only for a key that was there), a key written again changes no count.
- Any doubt starts over from a fresh count, and meanwhile `counts()` answers None (the reader
  counts in etcd itself): the watch cancelled because a compaction passed the revision it
  watches from, the stream broken (etcd restarted, the member lost its leader, the connection
  dropped), or no answer to a progress request for a whole `heartbeat` (a stream gone silent).
- It only reads, in its own task: nothing a FleetLock request waits for is held here, and each
  response costs a dict update per event.
- Only the server keeps such a watch (started and stopped with it); the CLI and the agents read
  the counts from etcd each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aetcd import rpc

from stagger.backends.etcd.client import EtcdClient, WatchStream, prefix_end
from stagger.backends.etcd.node_index import NodeKeys
from stagger.core.cycle.node_state import State
from stagger.core.errors import BackendUnavailable, StaggerError

log = logging.getLogger("stagger.backends.etcd")

ByGroup = dict[str, dict[str, int]]  # group -> state -> reports
Read = Callable[[], Awaitable[tuple[ByGroup, int]]]  # the counts and the revision they are at
HEARTBEAT = 10.0  # seconds of silence after which the stream is asked for a progress answer
RETRY = (0.5, 30.0)  # the pause before the first new try after a failure, and the longest
_DELETE = rpc.Event.DELETE
_STATES = frozenset(s.value for s in State)


class WatchedCounts:
    """The counts of one store's reports, kept by a watch that runs from `start()` to
    `stop()` on the running loop. `read` is the direct count (EtcdNodes.state_counts)."""

    def __init__(
        self,
        client: EtcdClient,
        keys: NodeKeys,
        read: Read,
        *,
        heartbeat: float = HEARTBEAT,
        retry: tuple[float, float] = RETRY,
    ) -> None:
        self._client = client
        self._keys = keys
        self._read = read
        self.heartbeat = heartbeat
        self.retry = retry
        self._counts: dict[tuple[str, str], int] = {}
        self.synced = False  # the counts are the store's (as of the events received)
        self.fresh_reads = 0  # direct counts read: 1 once in sync, one more after each doubt
        self._heard = 0  # responses received on the current stream
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="node counts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self.synced = False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def counts(self) -> ByGroup | None:
        """Per group and state (the states this version knows, as the direct count), or None
        while the watch is not in sync."""
        if not self.synced:
            return None
        out: ByGroup = {}
        for (group, state), n in self._counts.items():
            if n > 0 and state in _STATES:
                out.setdefault(group, {})[state] = n
        return out

    async def _run(self) -> None:
        pause = self.retry[0]
        while True:
            try:
                await self._follow()
                pause = self.retry[0]  # compacted past our revision: count again at once
                continue
            except StaggerError as exc:
                pause = self.retry[0] if self.synced else pause  # a first failure: retry soon
                log.info("node counts: %s; counting again in %g s", exc.message, pause)
            except Exception:
                pause = self.retry[0] if self.synced else pause
                log.exception("node counts: the watch failed; counting again in %g s", pause)
            finally:
                self.synced = False
            await asyncio.sleep(pause)
            pause = min(2 * pause, self.retry[1])

    async def _follow(self) -> None:
        """Count, then keep the counts from the watch until it must start over (returns when
        a compaction passed the revision counted at; raises when the stream broke)."""
        by_group, at = await self._read()
        self.fresh_reads += 1
        counts = {(g, s): n for g, states in by_group.items() for s, n in states.items()}
        start = self._keys.key("node-state", "")
        create = rpc.WatchCreateRequest(
            key=start, range_end=prefix_end(start), start_revision=at + 1
        )
        stream = await self._client.watch(create)
        reader = asyncio.get_running_loop().create_task(self._apply(stream, counts))
        try:
            await self._guard(stream, reader)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, StaggerError):
                await reader
            stream.close()

    async def _guard(self, stream: WatchStream, reader: asyncio.Task[None]) -> None:
        """Until `reader` ends: after a `heartbeat` of silence ask for a progress answer, and
        after another one give up on the stream."""
        asked = False
        while True:
            heard = self._heard
            done, _ = await asyncio.wait({reader}, timeout=self.heartbeat)
            if done:
                return reader.result()
            if self._heard != heard:
                asked = False
            elif not asked:
                stream.progress()
                asked = True
            else:
                raise BackendUnavailable(
                    f"etcd did not answer the watch for {2 * self.heartbeat:g} s"
                )

    async def _apply(self, stream: WatchStream, counts: dict[tuple[str, str], int]) -> None:
        async for resp in stream:
            self._heard += 1
            if resp.compact_revision:
                log.info(
                    "node counts: etcd compacted past the revision counted at (%d); counting again",
                    resp.compact_revision,
                )
                return
            if resp.canceled:
                raise BackendUnavailable(
                    f"etcd cancelled the watch ({resp.cancel_reason or 'no reason'})"
                )
            if resp.created:
                self._counts, self.synced = counts, True
                log.debug("node counts: in sync (etcd at revision %d)", resp.header.revision)
            for event in resp.events:
                if event.type == _DELETE:
                    step = -1
                elif event.kv.version == 1:
                    step = 1
                else:
                    continue
                key = self._keys.state_of(event.kv.key)
                counts[key] = counts.get(key, 0) + step

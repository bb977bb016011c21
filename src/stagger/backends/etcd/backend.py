"""EtcdBackend: the Backend Protocol on an etcd v3 cluster.

Rules of this file:
- It owns the I/O of a change and the answers to callers: where a change starts (the
  newest view of its group this object has seen), when a view may answer a change that
  writes nothing (`_fresh`, `_answerable`), the loop that applies a batch of queued changes,
  grants the leases its plan needs, THEN sends the plan as one transaction, and retries a lost
  guard (`_run_batch`), and the reads (status, history, node reports).
- It decides nothing about keys: what a view reads and what a write puts, deletes and guards
  is layout.py's (`Layout.plan_commit`); what a change means is core's (via store.py); the
  queueing is group_commit.py's; the transport is client.py's; the roles are roles.py's.

A change applies one core operation to a view of the group (its value, lease keys, event
counter and the fleet pause, as one read transaction saw them) and writes everything in ONE
transaction guarded by the group key's mod_revision (and, for acquire, the fleet key's), so
a concurrent writer or fleet pause is never missed. The view is the newest this object has
seen (any read of the group, or its own last write), so a change usually costs that one
transaction; a lost guard returns a fresh view from the transaction's failure branch and is
retried (retry_cas). Changes to one group that queue while one is in flight are applied in
order and written together in the next such transaction (group commit). An operation that
changes nothing writes nothing, and is only answered from a view read after it began, or one
a committed guard confirmed after it began (why: docs/backends.md, "Group commit"). A write
whose outcome is unknown is re-read before answering.

Why this file is long (~590 lines): the etcd Backend's operations (grant leases, send the
planned transaction, the report and its index, roles, pages) in one class; the key layout
and plans are layout.py, batching group_commit.py, the transport client.py, the node index
node_index.py and the counts a server keeps from a watch node_counts.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from aetcd import rpc

from stagger.backends.codec import decode_events
from stagger.backends.etcd.client import (
    ClientSettings,
    EtcdClient,
    OutcomeUnknown,
    delete,
    prefix_end,
    put,
    range_op,
    unchanged,
)
from stagger.backends.etcd.group_commit import Applied, GroupQueues, Queued, apply_in_order
from stagger.backends.etcd.layout import (
    MAX_EVENTS_PER_TXN,
    Layout,
    Plan,
    Put,
    View,
    Write,
    view_after,
)
from stagger.backends.etcd.node_counts import WatchedCounts
from stagger.backends.etcd.node_index import EtcdNodes, GroupReads
from stagger.backends.etcd.roles import EtcdRoles
from stagger.backends.etcd.url import DEFAULT_PREFIX, read_options
from stagger.backends.etcd.view_reads import ViewReads
from stagger.backends.node_pages import read_node_page
from stagger.backends.protocol import (
    Clock,
    GroupStatus,
    Snapshot,
    UnreadableReports,
    group_status,
    snapshot_of,
    utcnow,
    validate_limit,
)
from stagger.backends.retry import retry_cas
from stagger.backends.semaphore_store import Op, SemaphoreStore, Settle, check_default_max
from stagger.core import roles
from stagger.core.errors import BackendUnavailable, ConfigError
from stagger.core.forget import check_forget, forgotten
from stagger.core.listing import (
    EventKey,
    HistoryPage,
    HistoryQuery,
    NodeCounts,
    NodePage,
    NodeQuery,
    ReportPage,
)
from stagger.core.node_report import NodeReport, StoredReports, decode_reports, stored_group
from stagger.core.semaphore import (
    DEFAULT_MAX,
    HISTORY_LIMIT,
    Change,
    Denied,
    Event,
    Granted,
    Hold,
    Semaphore,
    validate_group,
    validate_id,
)

# Groups whose last view one backend object remembers (a few hundred bytes each, per hold).
MAX_CACHED_GROUPS = 10_000


T = TypeVar("T")


def _judged_by_etcd(outcome: T) -> T:
    """Core stamps a new or touched hold with `now + hold_ttl`; on etcd that guess from our
    clock means nothing (the lease decides), so callers get `expires_at=None` as stored."""
    if isinstance(outcome, Hold) and outcome.expires_at is not None:
        return replace(outcome, expires_at=None)
    if isinstance(outcome, Granted) and outcome.hold.expires_at is not None:
        return replace(outcome, hold=replace(outcome.hold, expires_at=None))
    return outcome


def _ranges(keys: list[tuple[bytes, bool]]) -> list[Any]:
    return [range_op(key, prefix=prefix) for key, prefix in keys]


def _txn(plan: Plan, granted: Mapping[str, int], failure: list[Any]) -> Any:
    """`plan` as one etcd transaction, its new lease keys on the leases `granted`."""
    success = [
        put(op.key, op.value, granted[op.lease_for] if op.lease_for is not None else 0)
        if isinstance(op, Put)
        else delete(op.key, op.range_end)
        for op in plan.ops
    ]
    compare = [unchanged(guard.key, guard.revision) for guard in plan.guards]
    return rpc.TxnRequest(compare=compare, success=success, failure=failure)


class EtcdBackend(SemaphoreStore):
    """The Backend Protocol on an etcd v3 cluster (its keys: layout.py)."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        default_max: int = DEFAULT_MAX,
        history_limit: int = HISTORY_LIMIT,
        clock: Clock = utcnow,
    ) -> None:
        check_default_max(default_max)
        if not prefix:
            raise ConfigError("the etcd key prefix is empty: give one, like prefix=stagger/v1/")
        self.url = url
        # Which keys hold what, and what a write sends: layout.py.
        self.layout = Layout(prefix, default_max=default_max, history_limit=history_limit)
        self.prefix = self.layout.prefix
        self.default_max = default_max
        self.history_limit = history_limit
        self.clock = clock
        # Compare-and-swaps lost to another writer (each was retried): a contention gauge.
        self.conflicts = 0
        self._client = EtcdClient(settings)
        # The newest view of each group this object has seen: where a change starts (_apply).
        self._views: dict[str, View] = {}
        # Each group's read transaction (_load), without the records it knows: view_reads.py.
        self._view_reads = ViewReads(self.layout, MAX_CACHED_GROUPS)
        self._requests = 0
        # Group commit: the changes to one group that arrive while one is in flight queue
        # here (instead of racing each other's guards) and are written together by the next
        # transaction, each decided in order on the value the one before it left (_run_batch).
        self._queues = GroupQueues(self._run_batch)
        self._unreadable = UnreadableReports(lambda key: f"etcdctl get {key}")
        self._roles = EtcdRoles(self._client, self.layout.key, lambda: self.clock())
        self._nodes = EtcdNodes(self._client, self.layout.key)
        self._watched = WatchedCounts(self._client, self._nodes.keys, self._nodes.state_counts)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> EtcdBackend:
        """Options (keyword, or in the URL's query; keywords win; None is ignored): prefix,
        timeout (seconds or a duration like 3s), ca_cert (query: ca), cert, key, username
        (query: user), password, tls, default_max, history_limit, clock."""
        o = read_options(url, options)
        return cls(
            o.settings,
            url=o.url,
            prefix=o.prefix,
            default_max=o.default_max,
            history_limit=o.history_limit,
            clock=o.clock,
        )

    # --- loading --------------------------------------------------------------------------

    def _view(
        self, group: str, resp: Any, now: datetime, sent: int, found: list[Any] | None = None
    ) -> View:
        """The view in the answer to layout's `view_ranges` (a read transaction's, or the
        failure branch of a guarded write's; `found`: its ranges when the answer stands for
        some, view_reads.py), remembered as the group's newest if it is."""
        if found is None:
            found = [r.response_range.kvs for r in resp.responses]
        read_at = int(resp.header.revision)
        return self._remember(
            group, self.layout.read_view(group, found, now, read_at=read_at, sent=sent)
        )

    async def _load(self, group: str, now: datetime) -> View:
        """A fresh view: one linearizable read transaction."""
        sent = self._request()
        asked = self._view_reads.ask(group)
        resp = await self._client.read_txn(asked.request)
        return self._view(group, resp, now, sent, self._view_reads.found(group, asked, resp))

    def _request(self) -> int:
        """Number the next request to etcd (or the start of a change): see _fresh."""
        self._requests += 1
        return self._requests

    @staticmethod
    def _fresh(view: View, began: int) -> bool:
        """Whether `view` shows the group at a moment after the change numbered `began`
        started: it answers a request sent after that, so it shows every write completed
        before. A view made from our own write shows the group at that write's revision,
        except for lease keys etcd may have ended since the view it was made from: so it
        counts only when it has no lease keys."""
        return view.sent > began and not (view.derived and view.leases)

    def _remember(self, group: str, view: View) -> View:
        known = self._views.get(group)
        if known is None or view.read_at >= known.read_at:
            if known is None and len(self._views) >= MAX_CACHED_GROUPS:
                self._views.pop(next(iter(self._views)))  # the oldest remembered group
            self._views[group] = view
        return view

    def changing(self, group: str) -> bool:
        """Whether a change to `group` is queued or in flight here (base.RemembersGroups): a
        change made now joins the next batch, written right after it."""
        return self._queues.busy(group)

    def remembered(self, group: str) -> GroupStatus | None:
        """The newest view of `group` this object has seen (base.RemembersGroups)."""
        view = self._views.get(group)
        if view is None:
            return None
        return group_status(view.semaphore, self.clock(), view.fleet)

    # --- writing --------------------------------------------------------------------------

    async def _commit(self, view: View, write: Write, now: datetime) -> tuple[bool, View]:
        """Write `write` over `view` in one transaction (layout's plan), if nobody wrote the
        group (or, for an acquire, the fleet pause) since `view`: the leases the plan needs are
        granted first, then the transaction is sent. (True, the view after the write), or
        (False, a fresh view from the transaction's failure branch) when we lost that race."""
        group = view.group
        plan = self.layout.plan_commit(view, write)
        granted: dict[str, int] = {}
        try:
            for need in plan.new_leases:
                granted[need.node_id] = await self._client.lease_grant(need.ttl)
            sent = self._request()
            failure = _ranges(self.layout.view_ranges(group))
            resp = await self._client.txn(_txn(plan, granted, failure))
        except OutcomeUnknown:
            raise  # the new leases may be in use now: let them live (they expire on their own)
        except Exception:
            for lease_id in granted.values():
                await self._client.lease_revoke(lease_id)
            raise
        if not resp.succeeded:
            for lease_id in granted.values():
                await self._client.lease_revoke(lease_id)
            return False, self._view(group, resp, now, sent)
        for lease_id in plan.ended_leases:
            await self._client.lease_revoke(lease_id)
        written = int(resp.header.revision)
        after = view_after(view, plan, granted, revision=written, sent=sent)
        return True, self._remember(group, after)

    async def _hold_alive(self, group: str, node_id: str) -> bool:
        """Refresh the hold's lease, so etcd's clock (not ours) decides its expiry."""
        view = await self._load(group, self.clock())
        if node_id not in view.semaphore.holds:
            return False
        lease = view.leases.get(node_id)
        # <= 0: etcd expired it just now; the next write records that
        return lease is None or await self._client.lease_keepalive(lease.lease_id) > 0

    async def _apply(
        self,
        group: str,
        op: Op[T],
        *,
        what: str,
        with_fleet: bool = False,
        settle: Settle[T] | None = None,
    ) -> T:
        """Queue `op` for the group's next batch (_run_batch) and wait for its own outcome."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queues.submit(group, Queued(op, what, with_fleet, settle, self._request(), future))
        return cast(T, await future)

    @staticmethod
    def _answerable(view: View, applied: Applied) -> bool:
        """Whether every change of the batch that writes nothing may be answered from `view`:
        it was read after that change was asked, or the batch writes and its guard will
        confirm the view at the commit (only for a view without lease keys). Why these two:
        docs/backends.md, "Group commit"."""
        confirmed = applied.writes and not view.leases
        # A denial that writes (a node joining the queue) is an answer too: it must not rest
        # on a lease key etcd may have ended since the view (the guard does not cover those).
        return all(
            confirmed or EtcdBackend._fresh(view, step.change.began)
            for step in applied.steps
            if (not step.wrote or isinstance(step.outcome, Denied)) and step.error is None
        )

    async def _run_batch(self, group: str, batch: list[Queued]) -> None:
        """Apply the queued changes IN ORDER to the group (each on the value the one before
        left) and compare-and-swap the result with all their events in ONE transaction,
        retrying lost races (retry_cas) on the whole batch. Each caller gets its own outcome;
        after a write with an unknown outcome, a fresh view decides through each change's
        `settle` which took effect. The first attempt starts from the remembered view; why
        that, and answering a change that writes nothing from it (`_answerable`), is safe:
        docs/backends.md, "Group commit"."""
        live = list(batch)
        unknown = False  # a write of this batch may or may not have been applied

        async def load(now: datetime) -> View:
            try:
                return await self._load(group, now)
            except BackendUnavailable as exc:
                if unknown:
                    for queued in live:
                        queued.fail(
                            BackendUnavailable(
                                f"{exc.message}; the last change ({queued.what}) may or may not "
                                "have been applied: check with `stagger status` before acting "
                                "on it"
                            )
                        )
                raise

        def finish(applied: Applied) -> None:
            for step in applied.steps:
                if step.error is None:
                    step.change.answer(_judged_by_etcd(step.outcome))
            live.clear()

        async def attempt() -> tuple[bool, None]:
            nonlocal unknown
            now = self.clock()
            newest = max(queued.began for queued in live)
            view = self._views.get(group)
            if view is None or (unknown and not self._fresh(view, newest)):
                view = await load(now)
            if unknown:  # the view is fresh for every change: did our write take effect?
                for queued in list(live):
                    if queued.settle is None or not queued.has_planned:
                        continue
                    settled = queued.settle(view.semaphore, queued.planned)
                    if settled is not None:
                        queued.answer(_judged_by_etcd(settled))
                        live.remove(queued)
                if not live:
                    return True, None
            applied = apply_in_order(view.semaphore, view.fleet, now, live)
            if not self._answerable(view, applied):
                view = await load(now)  # read after every change of the batch was asked
                applied = apply_in_order(view.semaphore, view.fleet, now, live)
            for step in applied.steps:
                if step.error is not None:
                    step.change.fail(step.error)
                    live.remove(step.change)
            if not applied.writes:
                finish(applied)
                return True, None
            with_fleet = any(s.change.with_fleet for s in applied.steps if s.error is None)
            write = Write(applied.semaphore, (*view.expired, *applied.events), with_fleet)
            try:
                ok, _ = await self._commit(view, write, now)
            except OutcomeUnknown:
                unknown = True
                for step in applied.steps:
                    step.change.planned = step.outcome
                self._views.pop(group, None)
                return False, None
            if ok:
                finish(applied)
                return True, None
            self.conflicts += 1
            return False, None

        what = batch[0].what if len(batch) == 1 else f"{len(batch)} changes to group {group}"
        await retry_cas(attempt, what=what)

    # --- reads (the changes are SemaphoreStore's) ---------------------------------------

    async def status(self, group: str | None = None) -> Snapshot:
        now = self.clock()
        if group is not None:
            # One group: the same view a change starts from, so it is remembered for one.
            view = await self._load(validate_group(group), now)
            return snapshot_of(now, (view.semaphore,), view.fleet)
        # One read transaction: the groups, their lease keys and the fleet pause agree.
        ranges = _ranges(self.layout.fleet_ranges())
        resp = await self._client.read_txn(rpc.TxnRequest(success=ranges))
        sems, fleet = self.layout.read_fleet([r.response_range.kvs for r in resp.responses], now)
        return snapshot_of(now, sems, fleet)

    async def history(self, group: str | None = None, limit: int = 100) -> list[Event]:
        """Newest first. `group=None`: every group's events and the fleet-wide ones."""
        if group is not None:
            validate_group(group)
        validate_limit(limit)
        parts = ("events",) if group is None else ("events", group)
        start = self.layout.key(*parts, "")
        # Newest by write revision across groups; within one group the key (seq) orders.
        target = rpc.RangeRequest.KEY if group is not None else rpc.RangeRequest.MOD
        resp = await self._client.range(
            rpc.RangeRequest(
                key=start,
                range_end=prefix_end(start),
                limit=limit,
                sort_order=rpc.RangeRequest.DESCEND,
                sort_target=target,
            )
        )
        kvs = sorted(resp.kvs, key=lambda kv: (kv.mod_revision, kv.key), reverse=True)
        return self._decode_events(start, (kv.value for kv in kvs))

    async def report(self, report: NodeReport) -> NodeReport:
        """The report and its index entries in one guarded write (node_index.py)."""
        stored = report.stamped(self.clock())
        await self._nodes.write(stored)
        await self._reported(stored)
        return stored

    async def read_nodes(self, group: str | None = None) -> StoredReports:
        """Every report is read (the key has no group in it) and filtered here; a report that
        cannot be read is named whatever the filter, since its group cannot be known."""
        if group is not None:
            validate_group(group)
        start = self.layout.key("nodes", "")
        kvs, _ = await self._client.range_all(start, prefix_end(start))
        found = decode_reports((kv.key.decode(errors="replace"), kv.value) for kv in kvs)
        mine = sorted(
            (r for r in found.reports if group is None or r.group == group),
            key=lambda r: (r.group, r.id),
        )
        return self._unreadable.tell(StoredReports(tuple(mine), found.unreadable))

    async def nodes(self, group: str | None = None) -> list[NodeReport]:
        return list((await self.read_nodes(group)).reports)

    # --- pages and summaries (core/listing.py) ---------------------------------------------

    async def report_page(self, query: NodeQuery) -> ReportPage:
        return self._unreadable_page(await self._nodes.page(query))

    def _unreadable_page(self, page: ReportPage) -> ReportPage:
        self._unreadable.tell(StoredReports((), page.unreadable))
        return page

    async def node_counts(self, silent_before: datetime) -> NodeCounts:
        return await self._nodes.counts(silent_before)

    def watch_counts(self) -> None:
        self._watched.start()

    async def watched_counts(self, silent_before: datetime) -> tuple[NodeCounts, bool]:
        by_group = self._watched.counts()
        if by_group is None:
            return await self.node_counts(silent_before), False
        return NodeCounts(by_group, await self._nodes.silent_counts(silent_before)), True

    async def reported(self, ids: Iterable[str]) -> frozenset[str]:
        return await self._nodes.reported(ids)

    async def reports_of(self, ids: Iterable[str]) -> StoredReports:
        return self._unreadable.tell(await self._nodes.reports_of(ids))

    async def group_nodes(self, named: Mapping[str, Collection[str] | None]) -> GroupReads:
        return await self._nodes.group_nodes(named, self._unreadable.tell)

    async def node_page(self, query: NodeQuery, silent_after: timedelta) -> NodePage:
        return await read_node_page(self, query, silent_after)

    async def history_page(self, query: HistoryQuery) -> HistoryPage:
        """Newest first by (write revision, key), read in chunks until the page is full. One
        write holds at most MAX_EVENTS_PER_TXN events, all at one revision, so a chunk longer
        than that which comes back full has whole revisions but its last: that one is read
        again with the next chunk. The history is bounded, so is the walk."""
        parts = ("events",) if query.group is None else ("events", query.group)
        start = self.layout.key(*parts, "")
        chunk = query.limit + MAX_EVENTS_PER_TXN + 1
        shown: list[tuple[EventKey, Event]] = []
        before = query.before
        while len(shown) <= query.limit:
            resp = await self._client.range(
                rpc.RangeRequest(
                    key=start,
                    range_end=prefix_end(start),
                    limit=chunk,
                    sort_order=rpc.RangeRequest.DESCEND,
                    sort_target=rpc.RangeRequest.MOD,
                    max_mod_revision=before[0] if before is not None else 0,
                )
            )
            kvs = sorted(resp.kvs, key=lambda kv: (kv.mod_revision, kv.key), reverse=True)
            full = len(kvs) >= chunk
            if full:  # the oldest revision in it may be cut: it comes with the next chunk
                kvs = [kv for kv in kvs if kv.mod_revision != kvs[-1].mod_revision]
            keyed = [
                ((int(kv.mod_revision), kv.key.decode(errors="replace")), kv.value) for kv in kvs
            ]
            keyed = [(k, v) for k, v in keyed if before is None or k < before]
            events = self._decode_events(start, (v for _, v in keyed))
            shown += [(k, e) for (k, _), e in zip(keyed, events, strict=True) if query.matches(e)]
            if not full or not keyed:
                break
            before = keyed[-1][0]
        page = shown[: query.limit]
        more = len(shown) > query.limit
        return HistoryPage(tuple(e for _, e in page), page[-1][0] if more and page else None)

    def _decode_events(self, start: bytes, raw: Iterable[bytes]) -> list[Event]:
        try:
            return decode_events(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendUnavailable(
                f"the history under etcd prefix {self.prefix!r} holds an event stagger cannot "
                f"read ({exc}); inspect it with `etcdctl get --prefix {start.decode()}`"
            ) from exc

    async def forget(self, node_id: str, *, by: str) -> bool:
        """Check every group's holds, record the event through the report's group (whose own
        holds are checked again there, in the same guarded write), then delete the report.
        A node that takes a slot in ANOTHER group between the check and the delete loses its
        report until its next one (it sends one at every step of its cycle): it is shown from
        its hold meanwhile."""
        validate_id(node_id)
        key = self.layout.node_key(node_id)
        resp = await self._client.range(rpc.RangeRequest(key=key))
        snap = await self.status()
        check_forget(node_id, {g.group: g.holds for g in snap.groups})
        if not resp.kvs:
            return False
        group = stored_group(resp.kvs[0].value)
        if group is not None:

            def op(sem: Semaphore, now: datetime, _: Semaphore | None) -> Change[None]:
                check_forget(node_id, {sem.group: sem.live_holds(now)})
                if not sem.stored:  # a group never written has no history: do not create it
                    return Change(sem, None)
                return Change(sem, None, (forgotten(node_id, sem.group, now, by=by),))

            await self._apply(group, op, what=f"forget {node_id}")
        await self._nodes.remove(node_id)
        return True

    async def ping(self) -> None:
        """A linearizable read: answers only when a quorum (and our credentials) work."""
        key = self.layout.key("groups", "")
        await self._client.range(
            rpc.RangeRequest(key=key, range_end=prefix_end(key), limit=1, keys_only=True)
        )

    async def revision(self) -> str:
        """protocol.Revisions: the cluster's revision, which every write and every lease
        expiry moves on (a write by another application under another prefix too), read
        linearizably with one key-only lookup."""
        key = self.layout.key("groups", "")
        resp = await self._client.range(
            rpc.RangeRequest(key=key, range_end=prefix_end(key), limit=1, keys_only=True)
        )
        return str(resp.header.revision)

    async def close(self) -> None:
        await self._watched.stop()
        await self._client.close()

    # --- roles (base.Roles; roles.py) ---------------------------------------------------------

    async def claim_role(
        self, name: str, owner: str, ttl: timedelta, mark: str | None = None
    ) -> tuple[roles.Role, bool]:
        return await self._roles.claim_role(name, owner, ttl, mark)

    async def release_role(self, name: str, owner: str) -> None:
        await self._roles.release_role(name, owner)

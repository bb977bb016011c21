"""The etcd v3 backend: a fleet's semaphores in an etcd cluster, for fleets and for running
several stagger servers against one store. Its URL and options are read in etcd_url.py;
etcd_client.py talks to the cluster (failover, TLS, auth).

Key layout, under a prefix (default `stagger/v1/`; docs/backends.md shows it to operators):
- `{prefix}groups/{group}`: the group's Semaphore as the codec's JSON. The fleet-wide pause
  is the value of the pseudo-group `*` (core.semaphore.FLEET): `{prefix}groups/*`.
- `{prefix}leases/{group}/{id}`: `{"ttl": N}`, attached to an etcd lease of N seconds; exists
  only for holds of groups with a hold_ttl. When etcd expires the lease it deletes the key,
  and the next load drops the hold (core.semaphore.expire_lost): etcd's clock decides.
- `{prefix}events/{group}/{seq:020d}`: one event (codec JSON); `{prefix}seq/{group}` holds
  the group's last event number. Trimmed to the newest `history_limit` in the same
  transaction that adds to it.
- `{prefix}nodes/{id}`: the node's last report (core.reports.NodeReport as JSON), replaced by
  the next; its `updated_at` is the writer's clock (etcd keeps no time of its own).
- `{prefix}roles/{name}` and `{prefix}role-holders/{name}`: a job one server does at a time
  (core/roles.py; the notifier; etcd_roles.py): the mark, and the holder id on an etcd lease.

A change applies one core operation to a view of the group (its value, lease keys, event
counter and the fleet pause, as one read transaction saw them) and writes everything in ONE
transaction guarded by the group key's mod_revision (and, for acquire, the fleet key's), so
a concurrent writer or fleet pause is never missed. The view is the newest this object has
seen (any read of the group, or its own last write), so a change usually costs that one
transaction; a lost guard returns a fresh view from the transaction's failure branch and is
retried (retry_cas). Changes to one group that queue while one is in flight are applied in
order and written together in the next such transaction (group commit: etcd_batch.py). An
operation that changes nothing writes nothing, and is only answered from a view read after it
began, or one a committed guard confirmed after it began (_run_batch explains why). A write
whose outcome is unknown is re-read before answering.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from aetcd import rpc

from stagger.backends.base import (
    Clock,
    GroupStatus,
    Snapshot,
    UnreadableReports,
    group_status,
    retry_cas,
    snapshot_of,
    utcnow,
    validate_limit,
)
from stagger.backends.codec import decode_events, decode_semaphore, encode_event, encode_semaphore
from stagger.backends.etcd_batch import Applied, GroupQueues, Queued, apply_in_order
from stagger.backends.etcd_client import ClientSettings, EtcdClient, OutcomeUnknown
from stagger.backends.etcd_ops import (
    delete,
    prefix_end,
    put,
    range_op,
    ttl_seconds,
    unchanged,
)
from stagger.backends.etcd_roles import EtcdRoles
from stagger.backends.etcd_url import DEFAULT_PREFIX, read_options
from stagger.backends.store import Op, SemaphoreStore, Settle, check_default_max
from stagger.core import roles
from stagger.core import semaphore as core
from stagger.core.errors import BackendUnavailable, ConfigError
from stagger.core.reports import (
    NodeReport,
    StoredReports,
    check_forget,
    decode_reports,
    forgotten,
    stored_group,
)
from stagger.core.semaphore import (
    DEFAULT_MAX,
    FLEET,
    HISTORY_LIMIT,
    Action,
    Change,
    Event,
    Granted,
    Hold,
    Semaphore,
    validate_group,
    validate_id,
)

# etcd refuses a transaction of more than --max-txn-ops operations (128 by default); beyond
# this many events in one change, the "expired" ones are folded into one.
MAX_EVENTS_PER_TXN = 64
# Groups whose last view one backend object remembers (a few hundred bytes each, per hold).
MAX_CACHED_GROUPS = 10_000


T = TypeVar("T")


# --- what one load sees ------------------------------------------------------------------


@dataclass(frozen=True)
class _HoldLease:
    lease_id: int
    ttl: int


@dataclass(frozen=True)
class _View:
    """A group as one etcd read saw it (or as our own write left it), with holds whose lease
    is gone dropped. Everything a change needs: the value and its revision, the lease keys,
    the event counter and the fleet pause with its revision."""

    semaphore: Semaphore
    expired: tuple[Event, ...]  # recorded with the next write
    revision: int  # the group key's mod_revision; 0 when absent
    leases: Mapping[str, _HoldLease]
    seq: int
    fleet: Semaphore | None  # the FLEET record: the fleet-wide pause and the node pauses
    fleet_revision: int
    read_at: int  # the store revision it shows (the response header's): newer views win
    sent: int  # the number of the request it answers (EtcdBackend._request): see _fresh
    derived: bool = False  # made from our own write's success, not read from etcd


def _without_expiry(sem: Semaphore) -> Semaphore:
    """On etcd, a hold expires when etcd expires its lease, never by `expires_at` and a
    reader's clock: so `expires_at` is neither stored nor believed, and core's clock-based
    `expire(now)` (which every acquire runs) finds nothing to drop."""
    if all(h.expires_at is None for h in sem.holds.values()):
        return sem
    return replace(sem, holds={k: replace(h, expires_at=None) for k, h in sem.holds.items()})


def _judged_by_etcd(outcome: T) -> T:
    """Core stamps a new or touched hold with `now + hold_ttl`; on etcd that guess from our
    clock means nothing (the lease decides), so callers get `expires_at=None` as stored."""
    if isinstance(outcome, Hold) and outcome.expires_at is not None:
        return replace(outcome, expires_at=None)
    if isinstance(outcome, Granted) and outcome.hold.expires_at is not None:
        return replace(outcome, hold=replace(outcome.hold, expires_at=None))
    return outcome


def _fold(events: tuple[Event, ...]) -> tuple[Event, ...]:
    if len(events) <= MAX_EVENTS_PER_TXN:
        return events
    expired = [e for e in events if e.action is Action.EXPIRED]
    rest = [e for e in events if e.action is not Action.EXPIRED]
    first = expired[0]
    ids = ", ".join(e.id for e in expired)
    folded = replace(first, id="", detail=f"{len(expired)} hold leases expired: {ids}")
    return (folded, *rest)


class EtcdBackend(SemaphoreStore):
    """The Backend Protocol on an etcd v3 cluster (see the module docstring for the layout)."""

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
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.default_max = default_max
        self.history_limit = history_limit
        self.clock = clock
        # Compare-and-swaps lost to another writer (each was retried): a contention gauge.
        self.conflicts = 0
        self._client = EtcdClient(settings)
        # The newest view of each group this object has seen: where a change starts (_apply).
        self._views: dict[str, _View] = {}
        self._requests = 0
        # Group commit: the changes to one group that arrive while one is in flight queue
        # here (instead of racing each other's guards) and are written together by the next
        # transaction, each decided in order on the value the one before it left (_run_batch).
        self._queues = GroupQueues(self._run_batch)
        self._unreadable = UnreadableReports(lambda key: f"etcdctl get {key}")
        self._roles = EtcdRoles(self._client, self._key, lambda: self.clock())

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

    # --- keys -----------------------------------------------------------------------------

    def _key(self, *parts: str) -> bytes:
        return (self.prefix + "/".join(parts)).encode()

    def group_key(self, group: str) -> bytes:
        return self._key("groups", group)

    def lease_key(self, group: str, node_id: str) -> bytes:
        return self._key("leases", group, node_id)

    def event_key(self, group: str, seq: int) -> bytes:
        return self._key("events", group, f"{seq:020d}")

    def seq_key(self, group: str) -> bytes:
        return self._key("seq", group)

    def node_key(self, node_id: str) -> bytes:
        return self._key("nodes", node_id)

    def _where(self, group: str) -> str:
        return f"etcd key {self.group_key(group).decode()!r}"

    # --- loading --------------------------------------------------------------------------

    def _decode(self, group: str, raw: bytes) -> Semaphore:
        return _without_expiry(decode_semaphore(raw, self._where(group)))

    def _leases(self, group: str, kvs: Iterable[Any]) -> dict[str, _HoldLease]:
        start = len(self._key("leases", group, ""))
        found: dict[str, _HoldLease] = {}
        for kv in kvs:
            try:
                ttl = int(json.loads(kv.value).get("ttl", 0))
            except (ValueError, AttributeError):
                ttl = 0
            found[kv.key[start:].decode()] = _HoldLease(int(kv.lease), ttl)
        return found

    def _view_ops(self, group: str) -> list[Any]:
        """The ranges a view of `group` reads: the group, its lease keys, its event counter
        and the fleet pause (always: one more range in the same transaction costs ~nothing,
        and then every view serves every operation)."""
        return [
            range_op(self.group_key(group)),
            range_op(self._key("leases", group, ""), prefix=True),
            range_op(self.seq_key(group)),
            range_op(self.group_key(FLEET)),
        ]

    def _view(self, group: str, resp: Any, now: datetime, sent: int) -> _View:
        """The view in the answer to `_view_ops` (a read transaction's, or the failure branch
        of a guarded write's), remembered as the group's newest if it is."""
        group_kvs, lease_kvs, seq_kvs, fleet_kvs = (r.response_range.kvs for r in resp.responses)
        if group_kvs:
            sem, revision = self._decode(group, group_kvs[0].value), group_kvs[0].mod_revision
        else:
            sem, revision = Semaphore(group, max=self.default_max, stored=False), 0
        leases = self._leases(group, lease_kvs)
        swept = core.expire_lost(sem, frozenset(leases), now)
        fleet, fleet_revision = None, 0
        if fleet_kvs:
            fleet = self._decode(FLEET, fleet_kvs[0].value)
            fleet_revision = fleet_kvs[0].mod_revision
        return self._remember(
            group,
            _View(
                semaphore=swept.semaphore,
                expired=swept.events,
                revision=revision,
                leases=leases,
                seq=int(seq_kvs[0].value) if seq_kvs else 0,
                fleet=fleet,
                fleet_revision=fleet_revision,
                read_at=int(resp.header.revision),
                sent=sent,
            ),
        )

    async def _load(self, group: str, now: datetime) -> _View:
        """A fresh view: one linearizable read transaction."""
        sent = self._request()
        resp = await self._client.read_txn(rpc.TxnRequest(success=self._view_ops(group)))
        return self._view(group, resp, now, sent)

    def _request(self) -> int:
        """Number the next request to etcd (or the start of a change): see _fresh."""
        self._requests += 1
        return self._requests

    @staticmethod
    def _fresh(view: _View, began: int) -> bool:
        """Whether `view` shows the group at a moment after the change numbered `began`
        started: it answers a request sent after that, so it shows every write completed
        before. A view made from our own write shows the group at that write's revision,
        except for lease keys etcd may have ended since the view it was made from: so it
        counts only when it has no lease keys."""
        return view.sent > began and not (view.derived and view.leases)

    def _remember(self, group: str, view: _View) -> _View:
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

    async def _commit(
        self,
        group: str,
        view: _View,
        new: Semaphore,
        events: tuple[Event, ...],
        fleet: bool,
        now: datetime,
    ) -> tuple[bool, _View]:
        """Write `new` and its events in one transaction, if nobody wrote the group (or, for
        an acquire, the fleet pause) since `view`. (True, the view after the write), or
        (False, a fresh view from the transaction's failure branch) when we lost that race."""
        ops = [put(self.group_key(group), encode_semaphore(_without_expiry(new)).encode())]
        events = _fold(events)
        last = view.seq
        if events:
            last = view.seq + len(events)
            ops.append(put(self.seq_key(group), b"%d" % last))
            for i, event in enumerate(events, start=view.seq + 1):
                ops.append(put(self.event_key(group, i), encode_event(event).encode()))
            if last > self.history_limit:
                first_kept = self.event_key(group, last - self.history_limit + 1)
                ops.append(delete(self._key("events", group, ""), first_kept))

        # Holds of a group with a hold_ttl each get a lease key; the rest get none.
        ttl = ttl_seconds(new.hold_ttl)
        leases = dict(view.leases)
        granted: list[int] = []
        dropped: list[int] = []
        try:
            for node_id in new.holds if ttl is not None else ():
                have = view.leases.get(node_id)
                if ttl is None or (have is not None and have.ttl == ttl):
                    continue
                lease_id = await self._client.lease_grant(ttl)
                granted.append(lease_id)
                leases[node_id] = _HoldLease(lease_id, ttl)
                value = json.dumps({"ttl": ttl}).encode()
                ops.append(put(self.lease_key(group, node_id), value, lease_id))
                if have is not None:
                    dropped.append(have.lease_id)
            for node_id, have in view.leases.items():
                if ttl is None or node_id not in new.holds:
                    ops.append(delete(self.lease_key(group, node_id)))
                    dropped.append(have.lease_id)
                    del leases[node_id]

            compare = [unchanged(self.group_key(group), view.revision)]
            if fleet:
                compare.append(unchanged(self.group_key(FLEET), view.fleet_revision))
            sent = self._request()
            resp = await self._client.txn(
                rpc.TxnRequest(compare=compare, success=ops, failure=self._view_ops(group))
            )
        except OutcomeUnknown:
            raise  # the new leases may be in use now: let them live (they expire on their own)
        except Exception:
            for lease_id in granted:
                await self._client.lease_revoke(lease_id)
            raise
        if not resp.succeeded:
            for lease_id in granted:
                await self._client.lease_revoke(lease_id)
            return False, self._view(group, resp, now, sent)
        for lease_id in dropped:
            await self._client.lease_revoke(lease_id)
        written = int(resp.header.revision)
        after = replace(
            view,
            semaphore=_without_expiry(new),
            expired=(),
            revision=written,
            leases=leases,
            seq=last,
            read_at=written,
            sent=sent,
            derived=True,
        )
        if group == FLEET:
            after = replace(after, fleet=new, fleet_revision=written)
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
    def _answerable(view: _View, applied: Applied) -> bool:
        """Whether every change of the batch that writes nothing may be answered from `view`
        (see _run_batch): it was read after that change was asked, or the batch writes and
        its guard will confirm the view at the commit (only for a view without lease keys)."""
        confirmed = applied.writes and not view.leases
        return all(
            confirmed or EtcdBackend._fresh(view, step.change.began)
            for step in applied.steps
            if not step.wrote and step.error is None
        )

    async def _run_batch(self, group: str, batch: list[Queued]) -> None:
        """Apply the queued changes IN ORDER to the group (each on the value the one before
        left) and compare-and-swap the result with all their events in ONE transaction,
        retrying lost races (retry_cas): a lost guard re-applies the whole batch, in the same
        order, on the fresh view its failure branch returned. Each caller gets its own
        outcome. After a write with an unknown outcome, a fresh view decides, change by change
        through its `settle`, which took effect; the others run again.

        The first attempt starts from the remembered view of the group (`self._views`: the
        newest this object has seen, from any read or write, e.g. the server's batched status
        read, or the batch before), so a batch usually costs ONE transaction. Why it is safe:
        - A remembered view is only used to PROPOSE a write. The write is guarded by the
          group key's mod_revision (and, when the batch holds an acquire, the fleet key's), so
          it commits only if the group is still exactly what the view saw: a stale view costs
          a retry, never a wrong grant. (Lease keys can vanish without touching the group key;
          that only makes a view count a hold etcd already ended, never a free slot that is
          not.)
        - An outcome that writes nothing (a denial, a holder asking again, releasing nothing)
          is an answer about the present: it must reflect every write completed before its
          caller asked. Two things give that:
          (a) a view READ after the call was made (_fresh: its request was sent after), such
              as the failure branch of a lost guard (etcd evaluates it at the transaction's
              own revision) or a read a change queued behind. A remembered view that is older
              than the call does not: a write by another server may have completed between it
              and the call. So a batch's view serves a no-op only if its read began after
              that request arrived;
          (b) a batch that WRITES and commits: its guard proves that at the commit's revision
              (after every caller in the batch asked, since the transaction is sent after the
              batch was formed) the group key (and the fleet key) were still exactly the
              view's, so each no-op is the answer at that revision, in its place in the order.
              Not for a view with lease keys: etcd may end a lease without moving the group
              key, so then (a) is needed.
          Otherwise the batch reads the group first and is applied again on that view.
        """
        live = list(batch)
        unknown = False  # a write of this batch may or may not have been applied

        async def load(now: datetime) -> _View:
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
            events = (*view.expired, *applied.events)
            try:
                ok, _ = await self._commit(group, view, applied.semaphore, events, with_fleet, now)
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
        resp = await self._client.read_txn(
            rpc.TxnRequest(
                success=[
                    range_op(self._key("groups", ""), prefix=True),
                    range_op(self._key("leases", ""), prefix=True),
                ]
            )
        )
        group_kvs, lease_kvs = (r.response_range.kvs for r in resp.responses)
        start = len(self._key("groups", ""))
        sems: dict[str, Semaphore] = {}
        for kv in group_kvs:
            name = kv.key[start:].decode()
            sems[name] = self._decode(name, kv.value)
        fleet = sems.pop(FLEET, None)
        alive: dict[str, set[str]] = {}
        lease_start = len(self._key("leases", ""))
        for kv in lease_kvs:
            name, _, node_id = kv.key[lease_start:].decode().partition("/")
            alive.setdefault(name, set()).add(node_id)
        swept = (
            core.expire_lost(sems[n], frozenset(alive.get(n, ())), now).semaphore
            for n in sorted(sems)
        )
        return snapshot_of(now, swept, fleet)

    async def history(self, group: str | None = None, limit: int = 100) -> list[Event]:
        """Newest first. `group=None`: every group's events and the fleet-wide ones."""
        if group is not None:
            validate_group(group)
        validate_limit(limit)
        start = self._key("events", group, "") if group is not None else self._key("events", "")
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
        try:
            return decode_events(kv.value for kv in kvs)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendUnavailable(
                f"the history under etcd prefix {self.prefix!r} holds an event stagger cannot "
                f"read ({exc}); inspect it with `etcdctl get --prefix {start.decode()}`"
            ) from exc

    async def report(self, report: NodeReport) -> NodeReport:
        stored = report.stamped(self.clock())
        value = json.dumps(stored.to_dict(), separators=(",", ":"), sort_keys=True).encode()
        request = rpc.TxnRequest(success=[put(self.node_key(stored.id), value)])
        for _ in range(3):  # a plain put is idempotent: an unknown outcome is simply sent again
            try:
                await self._client.txn(request)
                return stored
            except OutcomeUnknown:
                continue
        raise BackendUnavailable(
            f"etcd did not confirm node {stored.id!r}'s report after 3 tries; it is sent again "
            "with the next report"
        )

    async def read_nodes(self, group: str | None = None) -> StoredReports:
        """Every report is read (the key has no group in it) and filtered here; a report that
        cannot be read is named whatever the filter, since its group cannot be known."""
        if group is not None:
            validate_group(group)
        start = self._key("nodes", "")
        resp = await self._client.range(rpc.RangeRequest(key=start, range_end=prefix_end(start)))
        found = decode_reports((kv.key.decode(errors="replace"), kv.value) for kv in resp.kvs)
        mine = sorted(
            (r for r in found.reports if group is None or r.group == group),
            key=lambda r: (r.group, r.id),
        )
        return self._unreadable.tell(StoredReports(tuple(mine), found.unreadable))

    async def nodes(self, group: str | None = None) -> list[NodeReport]:
        return list((await self.read_nodes(group)).reports)

    async def forget(self, node_id: str, *, by: str) -> bool:
        """Check every group's holds, record the event through the report's group (whose own
        holds are checked again there, in the same guarded write), then delete the report.
        A node that takes a slot in ANOTHER group between the check and the delete loses its
        report until its next one (it sends one at every step of its cycle): it is shown from
        its hold meanwhile."""
        validate_id(node_id)
        key = self.node_key(node_id)
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
        request = rpc.TxnRequest(success=[delete(key)])
        for _ in range(3):  # a delete is idempotent: an unknown outcome is simply sent again
            try:
                await self._client.txn(request)
                return True
            except OutcomeUnknown:
                continue
        raise BackendUnavailable(
            f"etcd did not confirm the removal of node {node_id!r}'s report after 3 tries; "
            f"check with `etcdctl get {key.decode()}` and run forget again"
        )

    async def ping(self) -> None:
        """A linearizable read: answers only when a quorum (and our credentials) work."""
        key = self._key("groups", "")
        await self._client.range(
            rpc.RangeRequest(key=key, range_end=prefix_end(key), limit=1, keys_only=True)
        )

    async def close(self) -> None:
        await self._client.close()

    # --- roles (base.Roles; etcd_roles.py) ----------------------------------------------------

    async def claim_role(
        self, name: str, owner: str, ttl: timedelta, mark: str | None = None
    ) -> tuple[roles.Role, bool]:
        return await self._roles.claim_role(name, owner, ttl, mark)

    async def release_role(self, name: str, owner: str) -> None:
        await self._roles.release_role(name, owner)

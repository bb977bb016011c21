"""The etcd key layout of a fleet's semaphores, and what one change to a group writes.

Rules of this file:
- Every key the semaphores, their events and the node reports live under is named here
  (`Layout`); docs/backends.md shows the same layout to operators. The server roles' keys are
  roles.py's.
- How a write looks is decided here and nowhere else: `Layout.plan_commit(view, write)` says
  which keys one change puts and deletes, which guards it compares and which hold lease keys
  need a NEW etcd lease. It is pure (no I/O, no etcd, no clock), so it is tested without etcd;
  the backend grants the leases the plan asks for, then sends the plan as one transaction.
- How groups are read is decided here too: `view_ranges` names what one read of a group
  covers and `read_view` turns the answer into a `View`; `fleet_ranges` and `read_fleet` do
  the same for a read of every group at once.

Key layout, under a prefix (default `stagger/v1/`):
- `{prefix}groups/{group}`: the group's Semaphore as the codec's JSON. The fleet-wide pause
  is the value of the pseudo-group `*` (core.semaphore.FLEET): `{prefix}groups/*`, which also
  keeps the node pauses, the emergency reboots asked for nodes and the rollout.
- `{prefix}leases/{group}/{id}`: `{"ttl": N}`, attached to an etcd lease of N seconds; exists
  only for holds of groups with a hold_ttl. When etcd expires the lease it deletes the key,
  and the next read drops the hold (core.semaphore.expire_lost): etcd's clock decides.
- `{prefix}events/{group}/{seq:020d}`: one event (codec JSON); `{prefix}seq/{group}` holds
  the group's last event number. Trimmed to the newest `history_limit` in the same
  transaction that adds to it.
- `{prefix}nodes/{id}`: the node's last report (core.node_report.NodeReport as JSON), replaced by
  the next; its `updated_at` is the writer's clock (etcd keeps no time of its own).
- `{prefix}roles/{name}` and `{prefix}role-holders/{name}`: roles.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from stagger.backends.codec import decode_semaphore, encode_event, encode_semaphore
from stagger.backends.etcd.client import ttl_seconds
from stagger.core import semaphore as core
from stagger.core.semaphore import FLEET, Action, Event, Semaphore

# etcd refuses a transaction of more than --max-txn-ops operations (128 by default); beyond
# this many events in one change, the "expired" ones are folded into one.
MAX_EVENTS_PER_TXN = 64


@dataclass(frozen=True)
class HoldLease:
    lease_id: int
    ttl: int


@dataclass(frozen=True)
class View:
    """A group as one etcd read saw it (or as our own write left it), with holds whose lease
    is gone dropped. Everything a change needs: the value and its revision, the lease keys,
    the event counter and the fleet pause with its revision."""

    group: str
    semaphore: Semaphore
    expired: tuple[Event, ...]  # recorded with the next write
    revision: int  # the group key's mod_revision; 0 when absent
    leases: Mapping[str, HoldLease]
    seq: int
    fleet: Semaphore | None  # the FLEET record: the fleet-wide pause and the node pauses
    fleet_revision: int
    read_at: int  # the store revision it shows (the response header's): newer views win
    sent: int  # the number of the request it answers (EtcdBackend._request): see _fresh
    derived: bool = False  # made from our own write's success, not read from etcd


@dataclass(frozen=True)
class Write:
    """One change to write over a view: the group's new value, the events to record (the
    view's expired holds first), and whether the fleet pause must be unchanged too (for an
    acquire, which a fleet pause refuses)."""

    semaphore: Semaphore
    events: tuple[Event, ...]
    with_fleet: bool = False


@dataclass(frozen=True)
class Put:
    key: bytes
    value: bytes
    lease_for: str | None = None  # on the NEW lease granted for this hold (Plan.new_leases)


@dataclass(frozen=True)
class Delete:
    key: bytes
    range_end: bytes = b""  # b"": the key alone; else every key from `key` up to this one


@dataclass(frozen=True)
class Guard:
    """ "`key` is as read at `revision`" (0: absent, and nobody created it since)."""

    key: bytes
    revision: int


@dataclass(frozen=True)
class NewLease:
    """A hold whose lease key needs a new etcd lease of `ttl` seconds before the write."""

    node_id: str
    ttl: int


@dataclass(frozen=True)
class Plan:
    """Everything one write sends, and what the group is after it commits."""

    guards: tuple[Guard, ...]
    ops: tuple[Put | Delete, ...]  # in this order, in one transaction, if every guard holds
    new_leases: tuple[NewLease, ...]  # grant these first; a Put names the one it rides on
    ended_leases: tuple[int, ...]  # revoke these once the write committed (their key is gone)
    kept_leases: Mapping[str, HoldLease]  # the view's lease keys the write leaves alone
    semaphore: Semaphore  # the value as stored
    seq: int  # the event counter after the write


def without_expiry(sem: Semaphore) -> Semaphore:
    """On etcd, a hold expires when etcd expires its lease, never by `expires_at` and a
    reader's clock: so `expires_at` is neither stored nor believed, and core's clock-based
    `expire(now)` (which every acquire runs) finds nothing to drop."""
    if all(h.expires_at is None for h in sem.holds.values()):
        return sem
    return replace(sem, holds={k: replace(h, expires_at=None) for k, h in sem.holds.items()})


def fold(events: tuple[Event, ...]) -> tuple[Event, ...]:
    """At most MAX_EVENTS_PER_TXN events: beyond that, the "expired" ones become one."""
    if len(events) <= MAX_EVENTS_PER_TXN:
        return events
    expired = [e for e in events if e.action is Action.EXPIRED]
    rest = [e for e in events if e.action is not Action.EXPIRED]
    first = expired[0]
    ids = ", ".join(e.id for e in expired)
    folded = replace(first, id="", detail=f"{len(expired)} hold leases expired: {ids}")
    return (folded, *rest)


# Groups whose last decoded value is kept: far more than any fleet has.
MAX_DECODED_GROUPS = 10_000


class Layout:
    """The keys under one prefix, and how a group is read from and written to them."""

    def __init__(self, prefix: str, *, default_max: int, history_limit: int) -> None:
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.default_max = default_max
        self.history_limit = history_limit
        # The last value decoded of each group (its stored bytes and the Semaphore): a group
        # read again unchanged, as every batched read of a busy group is, is not decoded
        # again, and gives the same object, which lets the server reuse what it decided
        # from it (server/fleetlock.py Admissions). A Semaphore is never changed in place.
        self._decoded: dict[str, tuple[bytes, Semaphore]] = {}

    # --- keys -----------------------------------------------------------------------------

    def key(self, *parts: str) -> bytes:
        return (self.prefix + "/".join(parts)).encode()

    def group_key(self, group: str) -> bytes:
        return self.key("groups", group)

    def lease_key(self, group: str, node_id: str) -> bytes:
        return self.key("leases", group, node_id)

    def event_key(self, group: str, seq: int) -> bytes:
        return self.key("events", group, f"{seq:020d}")

    def seq_key(self, group: str) -> bytes:
        return self.key("seq", group)

    def node_key(self, node_id: str) -> bytes:
        return self.key("nodes", node_id)

    def where(self, group: str) -> str:
        return f"etcd key {self.group_key(group).decode()!r}"

    # --- reading a group ------------------------------------------------------------------

    def decode(self, group: str, raw: bytes) -> Semaphore:
        last = self._decoded.get(group)
        if last is not None and last[0] == raw:
            return last[1]
        sem = without_expiry(decode_semaphore(raw, self.where(group)))
        if last is None and len(self._decoded) >= MAX_DECODED_GROUPS:
            self._decoded.pop(next(iter(self._decoded)))  # the oldest group decoded
        self._decoded[group] = (raw, sem)
        return sem

    def view_ranges(self, group: str) -> list[tuple[bytes, bool]]:
        """What one view of `group` reads, as (key, whether it is a prefix): the group, its
        lease keys, its event counter and the fleet pause (always: one more range in the same
        transaction costs ~nothing, and then every view serves every operation)."""
        return [
            (self.group_key(group), False),
            (self.key("leases", group, ""), True),
            (self.seq_key(group), False),
            (self.group_key(FLEET), False),
        ]

    def read_view(
        self, group: str, found: Sequence[Iterable[Any]], now: datetime, *, read_at: int, sent: int
    ) -> View:
        """The view in the key-values one transaction found for `view_ranges`, in that order
        (objects with etcd's key, value, mod_revision and lease)."""
        group_kvs, lease_kvs, seq_kvs, fleet_kvs = (list(kvs) for kvs in found)
        if group_kvs:
            sem, revision = self.decode(group, group_kvs[0].value), group_kvs[0].mod_revision
        else:
            sem, revision = Semaphore(group, max=self.default_max, stored=False), 0
        leases = self._leases(group, lease_kvs)
        swept = core.expire_lost(sem, frozenset(leases), now)
        fleet, fleet_revision = None, 0
        if fleet_kvs:
            fleet = self.decode(FLEET, fleet_kvs[0].value)
            fleet_revision = fleet_kvs[0].mod_revision
        return View(
            group=group,
            semaphore=swept.semaphore,
            expired=swept.events,
            revision=revision,
            leases=leases,
            seq=int(seq_kvs[0].value) if seq_kvs else 0,
            fleet=fleet,
            fleet_revision=fleet_revision,
            read_at=read_at,
            sent=sent,
        )

    def fleet_ranges(self) -> list[tuple[bytes, bool]]:
        """What one read of every group covers, as `view_ranges`: every group key (the fleet
        pause's among them) and every lease key."""
        return [(self.key("groups", ""), True), (self.key("leases", ""), True)]

    def read_fleet(
        self, found: Sequence[Iterable[Any]], now: datetime
    ) -> tuple[list[Semaphore], Semaphore | None]:
        """Every group by name (holds whose lease key is gone dropped) and the FLEET record (the
        fleet pause and the node pauses), in the key-values one transaction found for
        `fleet_ranges`."""
        group_kvs, lease_kvs = found
        start = len(self.key("groups", ""))
        sems: dict[str, Semaphore] = {}
        for kv in group_kvs:
            name = kv.key[start:].decode()
            sems[name] = self.decode(name, kv.value)
        fleet = sems.pop(FLEET, None)
        alive: dict[str, set[str]] = {}
        lease_start = len(self.key("leases", ""))
        for kv in lease_kvs:
            name, _, node_id = kv.key[lease_start:].decode().partition("/")
            alive.setdefault(name, set()).add(node_id)
        swept = [
            core.expire_lost(sems[name], frozenset(alive.get(name, ())), now).semaphore
            for name in sorted(sems)
        ]
        return swept, fleet

    def _leases(self, group: str, kvs: Iterable[Any]) -> dict[str, HoldLease]:
        start = len(self.key("leases", group, ""))
        found: dict[str, HoldLease] = {}
        for kv in kvs:
            try:
                ttl = int(json.loads(kv.value).get("ttl", 0))
            except (ValueError, AttributeError):
                ttl = 0
            found[kv.key[start:].decode()] = HoldLease(int(kv.lease), ttl)
        return found

    # --- writing a group ------------------------------------------------------------------

    def plan_commit(self, view: View, write: Write) -> Plan:
        """The one transaction that writes `write` over `view`: the new value, the events
        (folded to MAX_EVENTS_PER_TXN) with the new counter and the trim of old ones, a lease
        key on a new lease for every hold of a group with a hold_ttl that has none of that
        ttl, and the removal of lease keys of holds that are gone (or of a group without a
        hold_ttl now). Guarded by the group key's revision in the view, and for `with_fleet`
        the fleet key's, so it commits only if nobody wrote them since the view."""
        group = view.group
        new = without_expiry(write.semaphore)
        ops: list[Put | Delete] = [Put(self.group_key(group), encode_semaphore(new).encode())]
        events = fold(write.events)
        last = view.seq
        if events:
            last = view.seq + len(events)
            ops.append(Put(self.seq_key(group), b"%d" % last))
            for i, event in enumerate(events, start=view.seq + 1):
                ops.append(Put(self.event_key(group, i), encode_event(event).encode()))
            if last > self.history_limit:
                first_kept = self.event_key(group, last - self.history_limit + 1)
                ops.append(Delete(self.key("events", group, ""), first_kept))

        # Holds of a group with a hold_ttl each get a lease key; the rest get none.
        ttl = ttl_seconds(new.hold_ttl)
        kept = dict(view.leases)
        new_leases: list[NewLease] = []
        ended: list[int] = []
        for node_id in new.holds if ttl is not None else ():
            have = view.leases.get(node_id)
            if ttl is None or (have is not None and have.ttl == ttl):
                continue
            new_leases.append(NewLease(node_id, ttl))
            value = json.dumps({"ttl": ttl}).encode()
            ops.append(Put(self.lease_key(group, node_id), value, lease_for=node_id))
            if have is not None:
                ended.append(have.lease_id)
                del kept[node_id]
        for node_id, have in view.leases.items():
            if ttl is None or node_id not in new.holds:
                ops.append(Delete(self.lease_key(group, node_id)))
                ended.append(have.lease_id)
                del kept[node_id]

        guards = [Guard(self.group_key(group), view.revision)]
        if write.with_fleet:
            guards.append(Guard(self.group_key(FLEET), view.fleet_revision))
        return Plan(
            guards=tuple(guards),
            ops=tuple(ops),
            new_leases=tuple(new_leases),
            ended_leases=tuple(ended),
            kept_leases=kept,
            semaphore=new,
            seq=last,
        )


def view_after(
    view: View, plan: Plan, granted: Mapping[str, int], *, revision: int, sent: int
) -> View:
    """The group as the committed `plan` left it at store revision `revision`, with the new
    leases the backend `granted` (hold id -> lease id)."""
    leases = dict(plan.kept_leases)
    for need in plan.new_leases:
        leases[need.node_id] = HoldLease(granted[need.node_id], need.ttl)
    after = replace(
        view,
        semaphore=plan.semaphore,
        expired=(),
        revision=revision,
        leases=leases,
        seq=plan.seq,
        read_at=revision,
        sent=sent,
        derived=True,
    )
    if view.group == FLEET:
        after = replace(after, fleet=plan.semaphore, fleet_revision=revision)
    return after

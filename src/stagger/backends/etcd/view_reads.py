"""The read transaction of one group's view (layout.py `view_ranges`), that does not send the
group's record and the fleet's again while they are the ones the last read returned
(docs/backends.md, "A view read that does not send what is known").

A busy group's record is the largest thing a view reads: with a full fair queue it is ~71 KB
(docs/backends.md, "What a write costs"), and every batched FleetLock read of the group
carried it, for etcd to send and for the server to receive and compare, though it changes
only when the group is written. So, once a read returned the two records, the next one is

    if mod_revision(group) == R_group and mod_revision(fleet) == R_fleet
    then  read the lease keys and the event counter
    else  read all four ranges, as the first time

one transaction, so still one linearizable read at one revision: its success branch says the
two records are, at that revision, the ones read before (at R_group, R_fleet), and those are
used. The records a request was built from travel with it (`Ask`), so two reads in flight
that meet different records each use their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aetcd import rpc

from stagger.backends.etcd.client import range_op, unchanged
from stagger.backends.etcd.layout import Layout

Kvs = Sequence[Any]  # etcd KeyValue messages, as a range answers them


@dataclass(frozen=True)
class Known:
    """The group's and the fleet's record as one read found them (empty: absent)."""

    group: Kvs
    fleet: Kvs

    @property
    def revisions(self) -> tuple[int, int]:
        return (
            int(self.group[0].mod_revision) if self.group else 0,
            int(self.fleet[0].mod_revision) if self.fleet else 0,
        )


@dataclass(frozen=True)
class Ask:
    """One read transaction to send, and the records its success branch stands for (None:
    the full read, whose answer has all four ranges)."""

    request: Any
    known: Known | None = None


class ViewReads:
    """Each group's view read: built once per group (the full one) or per pair of record
    revisions (the one that leaves them out). At most `limit` groups are kept."""

    def __init__(self, layout: Layout, limit: int) -> None:
        self._layout = layout
        self._limit = limit
        self._full: dict[str, Ask] = {}
        self._short: dict[str, Ask] = {}

    def ask(self, group: str) -> Ask:
        short = self._short.get(group)
        if short is not None:
            return short
        full = self._full.get(group)
        if full is None:
            ranges = [range_op(key, prefix=p) for key, p in self._layout.view_ranges(group)]
            full = self._keep(self._full, group, Ask(rpc.TxnRequest(success=ranges)))
        return full

    def found(self, group: str, asked: Ask, resp: Any) -> list[Kvs]:
        """The four ranges of `view_ranges` the answer to `asked` stands for; the records
        they hold are what the next read of `group` compares against."""
        ranges = [r.response_range.kvs for r in resp.responses]
        if asked.known is not None and resp.succeeded:
            leases, seq = ranges
            return [asked.known.group, leases, seq, asked.known.fleet]
        group_kvs, leases, seq, fleet_kvs = ranges
        self._learn(group, Known(group_kvs, fleet_kvs))
        return ranges

    def _learn(self, group: str, known: Known) -> None:
        short = self._short.get(group)
        if short is not None and short.known is not None:
            kept = short.known.revisions
            if all(k >= n for k, n in zip(kept, known.revisions, strict=True)):
                return  # an older read's answer (two may be in flight): keep the newer
        group_key, leases, seq, fleet_key = self._layout.view_ranges(group)
        group_rev, fleet_rev = known.revisions
        request = rpc.TxnRequest(
            compare=[unchanged(group_key[0], group_rev), unchanged(fleet_key[0], fleet_rev)],
            success=[range_op(leases[0], prefix=leases[1]), range_op(seq[0], prefix=seq[1])],
            failure=[range_op(key, prefix=p) for key, p in (group_key, leases, seq, fleet_key)],
        )
        self._keep(self._short, group, Ask(request, known))

    def _keep(self, kept: dict[str, Ask], group: str, ask: Ask) -> Ask:
        if group not in kept and len(kept) >= self._limit:
            kept.pop(next(iter(kept)))
        kept[group] = ask
        return ask

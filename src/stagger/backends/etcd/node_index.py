"""Node reports on etcd, kept so that a page of the fleet view and its totals read the page and
a count, never every report (core/listing.py decides what a page shows).

Rules of this file:
- It owns the node report keys and every write to them: a report and its index entries are
  written in ONE transaction guarded by the report key's revision, so the entries always
  say what the report says (a lost guard is retried); `forget` removes them the same way.
- Keys are laid out so a prefix range answers each question (docs/backends.md, "etcd keys"),
  under the store's prefix:
  - `nodes/{id}`: the report (core.node_report.NodeReport's JSON), as before the index;
  - `node-list/{group}!{id}`: a copy of it, in the order of a page (group, then id: `!` sorts
    before every character a group name may hold, so `web!x` comes before `web-2!a`);
  - `node-state/{state}/{group}!{id}`: a copy, for a page filtered on a state, and counted by
    etcd (count-only ranges: no report is read or sent) for the totals; a server keeps
    those counts from a watch of these keys for /metrics (node_counts.py);
  - `node-seen/{updated_at in µs, 20 digits}/{group}!{id}`: the state, so the silent reports
    are one range up to the cutoff;
  - `node-needs/{group}!{id}`: a copy, only while the report needs a reboot or is in its
    cycle (core.rollout_reads.needs_reboot), so a rollout reads those and counts the rest;
  - `node-groups/{group}`: empty, so the groups that have reports are one short range;
  - `node-index`: INDEX_VERSION once the index holds every report of a store written before
    it (or before its newest kind of key: "1" had no `node-needs`).
- A report write costs one read of the report key and one transaction of at most 9
  operations (5 puts and 1 delete when nothing moved; a delete more for each key the node
  left: its group, its state, whether it needs a reboot): well under etcd's 128.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aetcd import rpc

from stagger.backends.etcd.client import EtcdClient, OutcomeUnknown, delete, prefix_end, put
from stagger.backends.etcd.client import unchanged as guard
from stagger.backends.retry import retry_cas
from stagger.core.cycle.node_state import State
from stagger.core.listing import SILENT, NodeCounts, NodeQuery, ReportPage
from stagger.core.node_report import NodeReport, StoredReports, Unreadable, decode_reports
from stagger.core.rollout_reads import GroupNodes

_CHUNK = 500  # keys one range of a page walk asks for
_OPS = 100  # operations one read transaction carries (etcd takes 128 by default)
_SEP = "!"
GroupReads = dict[str, GroupNodes]  # what a rollout's judgment reads, per group
# Records naming more nodes than this: the group's idle ids are read in one range (keys
# only) rather than asked for by key (at most two read transactions per group).
_BY_ID_MAX = 2 * _OPS
INDEX_VERSION = b"2"  # the `node-index` mark of an index with every kind of key below
_IDLE = State.IDLE.value


def micros(value: datetime | None) -> int:
    return round(value.timestamp() * 1_000_000) if value is not None else 0


@dataclass(frozen=True)
class Entry:
    """What the index says of one stored report."""

    group: str
    state: str
    seen: int  # updated_at in µs since the epoch
    needs: bool = False  # core.rollout_reads.needs_reboot


def entry_of(raw: bytes | str) -> Entry | None:
    """The index entry of a stored report value; None when it cannot be read that far."""
    try:
        doc = json.loads(raw)
        group, state = doc["group"], doc["state"]
        at = doc.get("updated_at")
        seen = micros(datetime.fromisoformat(at)) if at else 0
        needs = state != _IDLE or bool(doc.get("needed_since"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(group, str) or not isinstance(state, str):
        return None
    return Entry(group, state, seen, needs)


class NodeKeys:
    """The keys of the node reports and their index (pure)."""

    def __init__(self, key: Callable[..., bytes]) -> None:
        self.key = key

    def report(self, node_id: str) -> bytes:
        return self.key("nodes", node_id)

    def listed(self, group: str, node_id: str = "") -> bytes:
        return self.key("node-list", f"{group}{_SEP}{node_id}")

    def by_state(self, state: str, group: str, node_id: str = "") -> bytes:
        return self.key("node-state", state, f"{group}{_SEP}{node_id}")

    def seen(self, at: int, group: str = "", node_id: str = "") -> bytes:
        return self.key("node-seen", f"{at:020d}", f"{group}{_SEP}{node_id}" if group else "")

    def needing(self, group: str, node_id: str = "") -> bytes:
        return self.key("node-needs", f"{group}{_SEP}{node_id}")

    def group_mark(self, group: str) -> bytes:
        return self.key("node-groups", group)

    def entries(self, node_id: str, e: Entry) -> set[bytes]:
        """The index keys of a report (the copies, the seen key, the group mark aside)."""
        keys = {
            self.listed(e.group, node_id),
            self.by_state(e.state, e.group, node_id),
            self.seen(e.seen, e.group, node_id),
        }
        if e.needs:
            keys.add(self.needing(e.group, node_id))
        return keys

    def plan(self, node_id: str, old: bytes | None, value: bytes | None) -> list[object]:
        """The operations that replace the stored value `old` (None: none) by `value` (None:
        remove it) with its index entries: the entries `old` had and `value` has not are
        deleted, so writing the same value twice leaves the same keys."""
        before = entry_of(old) if old is not None else None
        after = entry_of(value) if value is not None else None
        ops: list[object] = []
        gone = self.entries(node_id, before) if before is not None else set()
        if value is None:
            ops.append(delete(self.report(node_id)))
        else:
            ops.append(put(self.report(node_id), value))
        if after is not None and value is not None:
            keep = self.entries(node_id, after)
            gone -= keep
            copy = {
                self.listed(after.group, node_id),
                self.by_state(after.state, after.group, node_id),
                self.needing(after.group, node_id),
            }
            for k in sorted(keep):
                ops.append(put(k, value if k in copy else after.state.encode()))
            if before is None or before.group != after.group:
                ops.append(put(self.group_mark(after.group), b""))
        ops += [delete(k) for k in sorted(gone)]
        return ops

    def state_of(self, key: bytes) -> tuple[str, str]:
        """(group, state) of a `node-state/{state}/{group}!{id}` key."""
        rest = key[len(self.key("node-state", "")) :].decode(errors="replace")
        state, _, named = rest.partition("/")
        return named.partition(_SEP)[0], state

    def seen_node(self, key: bytes) -> tuple[str, str]:
        """(group, id) of a `node-seen/{at}/{group}!{id}` key."""
        rest = key[len(self.key("node-seen", "")) :].decode(errors="replace")
        group, _, node_id = rest.partition("/")[2].partition(_SEP)
        return group, node_id


class EtcdNodes:
    """The node reports of one etcd store (client and key builder are the backend's)."""

    def __init__(self, client: EtcdClient, key: Callable[..., bytes]) -> None:
        self._client = client
        self.keys = NodeKeys(key)
        self._indexed = False

    # --- writes -------------------------------------------------------------------------

    async def _replace(self, node_id: str, value: bytes | None, what: str) -> bool:
        """Write `value` (None: remove) as node_id's report with its index, guarded by the
        report key's revision; retried when another write came between. Whether a report
        was there."""
        key = self.keys.report(node_id)

        async def attempt() -> tuple[bool, bool]:
            resp = await self._client.range(rpc.RangeRequest(key=key))
            old = resp.kvs[0] if resp.kvs else None
            if old is None and value is None:
                return True, False
            ops = self.keys.plan(node_id, old.value if old is not None else None, value)
            txn = rpc.TxnRequest(
                compare=[guard(key, old.mod_revision if old is not None else 0)], success=ops
            )
            try:
                done = await self._client.txn(txn)
            except OutcomeUnknown:
                return False, False  # read again: the same write is planned on what is there
            return bool(done.succeeded), old is not None

        return await retry_cas(attempt, what=what)

    async def write(self, stored: NodeReport) -> None:
        value = json.dumps(stored.to_dict(), separators=(",", ":"), sort_keys=True).encode()
        await self._mark_new_store()
        await self._replace(stored.id, value, f"node {stored.id}'s report")

    async def _mark_new_store(self) -> None:
        """A store whose first report is written by this version needs no indexing later:
        mark it before that report (once per backend object; one short read when marked)."""
        if self._indexed:
            return
        marker = self.keys.key("node-index")
        mark = (await self._client.range(rpc.RangeRequest(key=marker))).kvs
        if mark:
            # An older index is completed by the next read (ensure_index).
            self._indexed = mark[0].value == INDEX_VERSION
            return
        start = self.keys.key("nodes", "")
        found = await self._client.range(
            rpc.RangeRequest(key=start, range_end=prefix_end(start), count_only=True)
        )
        if not found.count:
            await self._client.txn(rpc.TxnRequest(success=[put(marker, INDEX_VERSION)]))
            self._indexed = True

    async def remove(self, node_id: str) -> bool:
        return await self._replace(node_id, None, f"the removal of node {node_id}'s report")

    async def ensure_index(self) -> None:
        """Index every report of a store written before the index, or before its newest
        kind of key (once per store): each one in its own guarded write, so a report sent
        meanwhile is never overwritten."""
        if self._indexed:
            return
        marker = self.keys.key("node-index")
        mark = (await self._client.range(rpc.RangeRequest(key=marker))).kvs
        if mark and mark[0].value == INDEX_VERSION:
            self._indexed = True
            return
        start = self.keys.key("nodes", "")
        end = prefix_end(start)
        while True:
            resp = await self._client.range(
                rpc.RangeRequest(key=start, range_end=end, limit=_CHUNK)
            )
            for kv in resp.kvs:
                node_id = kv.key[len(self.keys.key("nodes", "")) :].decode(errors="replace")
                ops = self.keys.plan(node_id, None, kv.value)
                txn = rpc.TxnRequest(compare=[guard(kv.key, kv.mod_revision)], success=ops)
                await self._client.txn(txn)  # lost guard: a newer report indexed itself
            if len(resp.kvs) < _CHUNK:
                break
            start = resp.kvs[-1].key + b"\0"
        await self._client.txn(rpc.TxnRequest(success=[put(marker, INDEX_VERSION)]))
        self._indexed = True

    # --- reads --------------------------------------------------------------------------

    async def reported(self, ids: Iterable[str]) -> frozenset[str]:
        wanted = sorted(set(ids))
        found: set[str] = set()
        for i in range(0, len(wanted), _OPS):
            chunk = wanted[i : i + _OPS]
            ops = [
                rpc.RequestOp(
                    request_range=rpc.RangeRequest(key=self.keys.report(n), keys_only=True)
                )
                for n in chunk
            ]
            resp = await self._client.read_txn(rpc.TxnRequest(success=ops))
            found.update(
                n for n, r in zip(chunk, resp.responses, strict=True) if r.response_range.kvs
            )
        return frozenset(found)

    async def reports_of(self, ids: Iterable[str]) -> StoredReports:
        wanted = sorted(set(ids))
        pairs: list[tuple[str, bytes]] = []
        for i in range(0, len(wanted), _OPS):
            ops = [
                rpc.RequestOp(request_range=rpc.RangeRequest(key=self.keys.report(n)))
                for n in wanted[i : i + _OPS]
            ]
            resp = await self._client.read_txn(rpc.TxnRequest(success=ops))
            pairs += (
                (kv.key.decode(errors="replace"), kv.value)
                for r in resp.responses
                for kv in r.response_range.kvs
            )
        return decode_reports(pairs)

    async def groups(self, revision: int = 0) -> tuple[list[str], int]:
        """The groups that have reports, and the revision read at (`revision`: that one)."""
        start = self.keys.key("node-groups", "")
        resp = await self._client.range(
            rpc.RangeRequest(
                key=start, range_end=prefix_end(start), keys_only=True, revision=revision
            )
        )
        at = revision or int(resp.header.revision)
        return [kv.key[len(start) :].decode(errors="replace") for kv in resp.kvs], at

    async def counts(self, silent_before: datetime) -> NodeCounts:
        """state_counts, and the silent ones from one range up to the cutoff."""
        by_group, _ = await self.state_counts()
        return NodeCounts(by_group, await self.silent_counts(silent_before))

    async def state_counts(self) -> tuple[dict[str, dict[str, int]], int]:
        """Per group and state, etcd's count of the state copies (one count-only range each,
        in read transactions of _OPS), every one at the revision of the groups' read; and that
        revision (node_counts.py watches from the next one)."""
        await self.ensure_index()
        groups, at = await self.groups()
        pairs = [(g, s.value) for g in groups for s in State]
        by_group: dict[str, dict[str, int]] = {}
        for i in range(0, len(pairs), _OPS):
            chunk = pairs[i : i + _OPS]
            ops = []
            for g, s in chunk:
                start = self.keys.by_state(s, g)
                ops.append(
                    rpc.RequestOp(
                        request_range=rpc.RangeRequest(
                            key=start, range_end=prefix_end(start), count_only=True, revision=at
                        )
                    )
                )
            resp = await self._client.read_txn(rpc.TxnRequest(success=ops))
            for (g, s), r in zip(chunk, resp.responses, strict=True):
                if r.response_range.count:
                    by_group.setdefault(g, {})[s] = int(r.response_range.count)
        return by_group, at

    async def silent_counts(self, silent_before: datetime) -> dict[str, dict[str, int]]:
        """Per group and state, the reports older than `silent_before` (one range)."""
        silent: dict[str, dict[str, int]] = {}
        for group, _, state in await self._silent(silent_before):
            states = silent.setdefault(group, {})
            states[state] = states.get(state, 0) + 1
        return silent

    async def _silent(self, silent_before: datetime) -> list[tuple[str, str, str]]:
        """(group, id, state) of every report older than `silent_before`."""
        start = self.keys.key("node-seen", "")
        resp = await self._client.range(
            rpc.RangeRequest(key=start, range_end=self.keys.seen(micros(silent_before)))
        )
        return [
            (*self.keys.seen_node(kv.key), kv.value.decode(errors="replace")) for kv in resp.kvs
        ]

    async def page(self, query: NodeQuery) -> ReportPage:
        await self.ensure_index()
        if not query.wants_reports:
            return ReportPage((), False)
        if query.state == SILENT:
            return await self._silent_page(query)
        if query.state is not None:
            base = self.keys.key("node-state", query.state, "")
        else:
            base = self.keys.key("node-list", "")
        prefix = base + (f"{query.group}{_SEP}".encode() if query.group is not None else b"")
        start = prefix + (query.q.encode() if query.group is not None else b"")
        end = prefix_end(start)
        if query.after is not None:
            start = max(start, base + f"{query.after[0]}{_SEP}{query.after[1]}".encode() + b"\0")
        reports: list[NodeReport] = []
        unreadable: list[Unreadable] = []
        while len(reports) <= query.limit and start < end:
            asked = min(_CHUNK, query.limit + 1 - len(reports))  # one more: are there more?
            resp = await self._client.range(rpc.RangeRequest(key=start, range_end=end, limit=asked))
            found = decode_reports((kv.key.decode(errors="replace"), kv.value) for kv in resp.kvs)
            reports += (r for r in found.reports if query.matches_report(r))
            unreadable += found.unreadable
            if len(resp.kvs) < asked:
                break
            start = resp.kvs[-1].key + b"\0"
        return ReportPage(
            tuple(reports[: query.limit]), len(reports) > query.limit, tuple(unreadable)
        )

    async def _silent_page(self, query: NodeQuery) -> ReportPage:
        """The silent ones are few (or the fleet is down): all their keys, then the page's
        reports by key."""
        assert query.silent_before is not None
        found = sorted(
            (g, n)
            for g, n, _ in await self._silent(query.silent_before)
            if (query.group is None or g == query.group)
            and n.startswith(query.q)
            and (query.after is None or (g, n) > query.after)
        )
        reports: list[NodeReport] = []
        for i in range(0, len(found), _OPS):
            got = await self._read(found[i : i + _OPS])
            reports += (r for r in got.reports if query.matches_report(r))
            if len(reports) > query.limit:
                break
        return ReportPage(tuple(reports[: query.limit]), len(reports) > query.limit)

    async def _read(self, nodes: Sequence[tuple[str, str]]) -> StoredReports:
        ops = [
            rpc.RequestOp(request_range=rpc.RangeRequest(key=self.keys.listed(g, n)))
            for g, n in nodes
        ]
        resp = await self._client.read_txn(rpc.TxnRequest(success=ops))
        return decode_reports(
            (kv.key.decode(errors="replace"), kv.value)
            for r in resp.responses
            for kv in r.response_range.kvs
        )

    async def group_nodes(
        self,
        named: Mapping[str, Collection[str] | None],
        tell: Callable[[StoredReports], StoredReports],
    ) -> GroupReads:
        """For each group: the copies under `node-needs/` (its reports that need a reboot),
        its idle ids among those named (None: every one, keys only) and etcd's count of its
        idle copies; each group's ranges at one revision (a consistent view of it), and the
        named ids asked for by key in transactions of _OPS. `tell` hears of unreadable reports."""
        await self.ensure_index()
        out: GroupReads = {}
        for group, ids in named.items():
            needing, idle = self.keys.needing(group), self.keys.by_state(_IDLE, group)
            listed = ids is None or len(ids) > _BY_ID_MAX
            # Ranges of RANGE_CHUNK keys at one revision: a group where every node needs a
            # reboot passes grpc's 4 MiB answer limit in one range from ~14,000 nodes.
            busy_kvs, at = await self._client.range_all(needing, prefix_end(needing))
            if listed:
                idle_kvs, _ = await self._client.range_all(
                    idle, prefix_end(idle), keys_only=True, revision=at
                )
                found = {kv.key[len(idle) :].decode(errors="replace") for kv in idle_kvs}
                count = len(idle_kvs)
            else:
                assert ids is not None
                counted = await self._client.range(
                    rpc.RangeRequest(
                        key=idle, range_end=prefix_end(idle), count_only=True, revision=at
                    )
                )
                found, count = await self._idle_among(group, sorted(ids)), int(counted.count)
            busy = decode_reports((kv.key.decode(errors="replace"), kv.value) for kv in busy_kvs)
            out[group] = GroupNodes.read(tell(busy).reports, found, count)
        return out

    async def _idle_among(self, group: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), _OPS):
            chunk = ids[i : i + _OPS]
            ops = [
                rpc.RequestOp(
                    request_range=rpc.RangeRequest(
                        key=self.keys.by_state(_IDLE, group, n), keys_only=True
                    )
                )
                for n in chunk
            ]
            resp = await self._client.read_txn(rpc.TxnRequest(success=ops))
            found.update(
                n for n, r in zip(chunk, resp.responses, strict=True) if r.response_range.kvs
            )
        return found

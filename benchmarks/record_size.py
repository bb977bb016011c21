"""What one write costs in the store, and how large a group's record can grow.

    .venv/bin/python benchmarks/record_size.py [--ids 32,256]

No store is started: the figures come from the same code the backends write with (the core
operations, backends/codec.py, and for etcd backends/etcd/layout.py's `plan_commit`, which
names every key one change puts and deletes). For each id length (32: Zincati's and
Flatcar's machine ids; 256: the longest id stagger accepts) it prints:
- the bytes and keys of each write a node makes: a report, a grant, a release, joining the
  fair queue (SQLite: rows; etcd: the operations of its one transaction), in a group with
  two holders and a queue of 100;
- the group record's size with a full queue (core.semaphore.QUEUE_LIMIT waiters) and two
  holders, under a count max, against etcd's 1.5 MiB request limit;
- under a percentage max, the bytes each node seen within stale_after adds to the record,
  and how many such nodes fit under that limit.
docs/backends.md ("What a write costs") quotes these figures.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from stagger.backends.codec import encode_event, encode_semaphore
from stagger.backends.etcd.layout import Layout, Put, View, Write
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.semaphore import (
    QUEUE_LIMIT,
    Change,
    Semaphore,
    acquire,
    release,
    set_max,
)

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
ETCD_REQUEST_LIMIT = int(1.5 * 1024 * 1024)  # etcd's --max-request-bytes default
LAYOUT = Layout("stagger/v1/", default_max=1, history_limit=1000)


def node(i: int, length: int) -> str:
    return f"{i:0{length}x}"


def group_with(holders: int, waiters: int, length: int, *, percent: bool = False) -> Semaphore:
    """A group `web` with `holders` holds and `waiters` queued nodes (each asked 1 ms apart)."""
    sem = Semaphore("web", max=max(holders, 1))
    t = T0
    for i in range(holders):
        sem = acquire(sem, node(i, length), t).semaphore
        t += MS
    for i in range(holders, holders + waiters):
        sem = acquire(sem, node(i, length), t).semaphore
        t += MS
    if percent:
        sem = set_max(sem, 100, t, by="operator:bench", percent=True).semaphore
    return sem


def etcd_cost(before: Semaphore, change: Change[object]) -> tuple[int, int]:
    """(keys written or deleted, bytes put) of the one etcd transaction writing `change`."""
    view = View("web", before, (), 1, {}, 5, None, 0, 1, 1)
    plan = LAYOUT.plan_commit(view, Write(change.semaphore, change.events))
    put = sum(len(op.key) + len(op.value) for op in plan.ops if isinstance(op, Put))
    return len(plan.ops), put


def sqlite_cost(change: Change[object]) -> tuple[int, int]:
    """(rows written, bytes) of the SQLite transaction writing `change`: the group row (its
    JSON replaced whole) and one history row per event."""
    data = len(encode_semaphore(change.semaphore))
    events = sum(len(encode_event(e)) for e in change.events)
    return 1 + len(change.events), data + events


def report_bytes(length: int) -> int:
    r = NodeReport(
        node(7, length),
        "web",
        State.WAITING,
        reason="outside the reboot window",
        needed_since=T0,
        detector="file: /run/reboot-required",
        next_window=T0 + timedelta(days=1),
    )
    return len(json.dumps(r.to_dict(), separators=(",", ":")))


def writes(length: int) -> None:
    base = group_with(2, 100, length)
    now = T0 + timedelta(seconds=1)
    cases: dict[str, Callable[[], tuple[Semaphore, Change[object]]]] = {
        "grant": lambda: (
            (freed := release(base, node(0, length), now, by=node(0, length)).semaphore),
            acquire(freed, node(2, length), now + MS),
        ),
        "release": lambda: (base, release(base, node(0, length), now, by=node(0, length))),
        "queue join": lambda: (base, acquire(base, node(10_000, length), now)),
    }
    size = len(encode_semaphore(base))
    print(f"  record (2 holders, queue of 100): {size:,} bytes")
    rb = report_bytes(length)
    print(
        f"  {'report':<11} sqlite 1 row, {rb:,} B   etcd 5 ops, ~{3 * rb:,} B"
        " (the report and its two copies; docs/backends.md, node reports)"
    )
    for name, make in cases.items():
        before, change = make()
        assert change.changed, name
        rows, sb = sqlite_cost(change)
        ops, eb = etcd_cost(before, change)
        print(f"  {name:<11} sqlite {rows} row(s), {sb:,} B   etcd {ops} ops, {eb:,} B")


def bounds(length: int) -> None:
    full = group_with(2, QUEUE_LIMIT, length)
    assert len(full.queue(T0 + timedelta(seconds=2))) == QUEUE_LIMIT
    size = len(encode_semaphore(full))
    print(
        f"  full queue ({QUEUE_LIMIT:,} waiters, 2 holders): {size:,} bytes "
        f"({size / ETCD_REQUEST_LIMIT:.0%} of etcd's 1.5 MiB request limit)"
    )
    small = group_with(2, 0, length, percent=True)
    at = T0 + timedelta(seconds=1)
    sem = small
    for i in range(100):  # 100 nodes asked, were granted and released: each stays seen
        sem = acquire(sem, node(20_000 + i, length), at).semaphore
        sem = release(sem, node(20_000 + i, length), at, by=node(20_000 + i, length)).semaphore
    per_node = (len(encode_semaphore(sem)) - len(encode_semaphore(small))) / 100
    fit = int((ETCD_REQUEST_LIMIT - size) / per_node)
    print(
        f"  percentage max: {per_node:.0f} bytes per node seen within stale_after "
        f"(~{fit:,} such nodes beside a full queue reach etcd's limit)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", default="32,256", help="id lengths, comma-separated")
    args = parser.parse_args()
    for length in (int(n) for n in args.ids.split(",")):
        print(f"ids of {length} characters:")
        writes(length)
        bounds(length)


if __name__ == "__main__":
    main()

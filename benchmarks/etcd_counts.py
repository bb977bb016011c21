"""Where a `/metrics` scrape's time goes on etcd, part by part, and what the watched counts
cost instead: on a single-member etcd holding --nodes node reports.

    PYTHONPATH=src .venv/bin/python benchmarks/etcd_counts.py [--nodes 50000] [--samples 20]

Fills the store straight through the backend (`EtcdBackend.report()` from --writers tasks at
once: 20 groups `g00`..`g19`, every 20th node waiting, every 100th halted, the rest idle; each
group's max 2 with two holders), then times, one call at a time, --samples times each (p50
and p99: with few samples, p99 is the slowest), in this process (no HTTP):
- `status()`: the groups, as a scrape reads them for its group gauges;
- the count-only ranges (`EtcdNodes.state_counts`: one per group and state, at one revision);
- the silent reports' range up to the cutoff (`silent_counts`);
- the rendering: the gauges set from those and `generate_latest`;
- the watch (backends/etcd/node_counts.py): how long its first count and sync take, then
  `watched_counts()` (the counts from memory and the silent range), checked equal to a
  direct count once the watch has seen every write;
- what the watch costs the writes of the same process (as a server's): --rewrites report
  writes, each moving a node to another state, with the watch on, off, on, off (CPU time of
  this process per write, and wall time per write).
Measurements, never assertions; the machine is shared, so it prints the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from etcd_support import start_cluster
from stagger.backends.etcd import EtcdBackend
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.server.metrics import Metrics

GROUPS = [f"g{i:02d}" for i in range(20)]


def report(i: int, now: datetime) -> NodeReport:
    if i % 100 == 7:
        return NodeReport(f"node-{i:06d}", GROUPS[i % 20], State.HALTED, last_reboot=now)
    if i % 20 == 3:
        return NodeReport(f"node-{i:06d}", GROUPS[i % 20], State.WAITING, needed_since=now)
    return NodeReport(f"node-{i:06d}", GROUPS[i % 20], State.IDLE, version="bench")


async def fill(backend: EtcdBackend, n: int, writers: int) -> float:
    began = time.perf_counter()
    for g in GROUPS:
        await backend.set_max(g, 2, by="operator:bench")
    now = datetime.now(UTC)
    todo: Iterator[int] = iter(range(n))

    async def writer() -> None:
        for i in todo:  # one shared iterator: each index is taken by one writer
            await backend.report(report(i, now))

    await asyncio.gather(*(writer() for _ in range(writers)))
    for i in range(2 * len(GROUPS)):
        await backend.acquire(GROUPS[i % 20], f"node-{i:06d}")
    return time.perf_counter() - began


async def rewrite(backend: EtcdBackend, n: int, writers: int, state: State) -> tuple[float, float]:
    """n report writes that each move a node to another state (two watch events each): the
    CPU seconds this process spent (the writes, and the watch when it runs) and the time."""
    todo: Iterator[int] = iter(range(n))

    async def writer() -> None:
        for i in todo:
            await backend.report(NodeReport(f"node-{i:06d}", GROUPS[i % 20], state))

    cpu, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return time.process_time() - cpu, time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def timed(name: str, samples: int, call: Callable[[], Awaitable[object]]) -> None:
    took = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await call()
        took.append(1000 * (time.perf_counter() - t0))
    print(f"  {name}: p50 {pct(took, 0.5):.2f} ms, p99 {pct(took, 0.99):.2f} ms", flush=True)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=50_000)
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--writers", type=int, default=64)
    p.add_argument("--rewrites", type=int, default=5000, help="writes timed with and without")
    args = p.parse_args()
    print(f"load average at start: {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp), 1)
        backend = EtcdBackend.from_url(f"{cluster.url}?prefix=bench/")
        try:
            took = await fill(backend, args.nodes, args.writers)
            print(f"filled {args.nodes} reports in {took:.0f} s; load average {load()}")
            nodes = backend._nodes  # the parts a scrape calls, one by one
            snap = await backend.status()
            silent_before = snap.now - timedelta(minutes=15)
            metrics = Metrics()
            counts = await backend.node_counts(silent_before)

            def render() -> Awaitable[None]:
                metrics.set_groups(snap)
                metrics.set_nodes(counts.metric_counts())
                metrics.render()
                return asyncio.sleep(0)

            print(f"one scrape's parts, {args.samples} samples each:")
            await timed("status()", args.samples, backend.status)
            await timed("count-only ranges (state_counts)", args.samples, nodes.state_counts)
            await timed("silent range", args.samples, lambda: nodes.silent_counts(silent_before))
            await timed("node_counts() (both)", args.samples, lambda: nodes.counts(silent_before))
            await timed("gauges + render", args.samples, render)
            t0 = time.perf_counter()
            backend.watch_counts()
            for _ in range(100_000):  # bounded: 100 s
                if backend._watched.counts() is not None:
                    break
                await asyncio.sleep(0.001)
            print(f"  the watch's first count and sync: {time.perf_counter() - t0:.2f} s")
            await timed(
                "watched_counts()", args.samples, lambda: backend.watched_counts(silent_before)
            )
            await backend.report(NodeReport("node-000000", GROUPS[0], State.WAITING))
            for _ in range(1000):
                watched, ok = await backend.watched_counts(silent_before)
                if ok and watched.by_group == (await backend.node_counts(silent_before)).by_group:
                    print("  watched counts equal the direct count after one more write")
                    break
                await asyncio.sleep(0.01)
            else:
                print("  WATCHED COUNTS DIFFER from the direct count")
            for k, watching in enumerate((True, False, True, False)):
                if not watching:
                    await backend._watched.stop()
                else:
                    backend.watch_counts()
                state = (State.WAITING, State.IDLE)[k % 2]  # most nodes move every round
                cpu, took = await rewrite(backend, args.rewrites, args.writers, state)
                print(
                    f"  {args.rewrites} report writes (most move a node) with the watch "
                    f"{'on' if watching else 'off'}: {1000 * cpu / args.rewrites:.3f} ms CPU "
                    f"of this process and {1000 * took / args.rewrites:.3f} ms per write"
                )
        finally:
            await backend.close()
            cluster.stop()
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    asyncio.run(main())

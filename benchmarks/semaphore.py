"""Semaphore throughput per backend, and the raw etcd transaction rate as the floor.

    .venv/bin/python benchmarks/semaphore.py [--seconds 5] [--clients 32]

Prints acquire+release cycles per second, uncontended (one client) and with N concurrent
clients on one group (each its own id, max = N, so every acquire is granted and the cost
measured is the coordination, not denials), for SQLite (a file) and etcd (a real
single-member etcd started here on loopback). For etcd the same run measures the raw rate of
the operation stagger's changes are built on, with the same client library and concurrency,
and prints stagger's ratio to it: a txn on one key guarded by the mod_revision the client last
saw, whose failure branch returns the key (so a lost guard costs no read of its own), retried
at once until it wins.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aetcd
from aetcd import rpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from etcd_support import start_cluster
from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend


async def run_for(
    seconds: float, clients: int, cycle: Callable[[int], Awaitable[None]]
) -> tuple[int, float]:
    """Run `cycle(client_index)` in `clients` concurrent loops for `seconds`."""
    stop = time.perf_counter() + seconds
    counts = [0] * clients

    async def loop(i: int) -> None:
        while time.perf_counter() < stop:
            await cycle(i)
            counts[i] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(clients)))
    return sum(counts), time.perf_counter() - t0


async def bench_backend(url: str, seconds: float, clients: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, n in (("uncontended", 1), (f"{clients} clients", clients)):
        backends: list[Backend] = [open_backend(url) for _ in range(n)]
        group = f"bench-{n}"
        await backends[0].set_max(group, n, by="operator:bench")

        async def cycle(i: int, backends: list[Backend] = backends, group: str = group) -> None:
            b = backends[i]
            granted = await b.acquire(group, f"node-{i}")
            assert type(granted).__name__ == "Granted", granted
            await b.release(group, f"node-{i}")

        done, elapsed = await run_for(seconds, n, cycle)
        out[label] = done / elapsed
        for b in backends:
            await b.close()
    return out


async def bench_raw_etcd(host: str, port: int, seconds: float, clients: int) -> dict[str, float]:
    """The floor: a txn guarded on the key's last seen mod_revision that puts it; the failure
    branch reads the key, so the next try starts from what is there now."""
    out: dict[str, float] = {}
    for label, n in (("uncontended", 1), (f"{clients} clients", clients)):
        conns = [aetcd.Client(host=host, port=port) for _ in range(n)]
        for c in conns:
            await c.connect()
        key = f"raw-bench/{n}".encode()
        await conns[0].put(key, b"0")

        seen = [0] * n  # each client's last seen mod_revision of the key

        async def cycle(
            i: int, conns: list[aetcd.Client] = conns, key: bytes = key, seen: list[int] = seen
        ) -> None:
            c = conns[i]
            # A cycle is two guarded writes (acquire and release), as in stagger.
            for _ in range(2):
                while True:
                    ok, responses = await c.transaction(
                        compare=[c.transactions.mod(key) == seen[i]],
                        # a range after the put sees it: its mod_revision is the write's
                        success=[c.transactions.put(key, str(i).encode()), c.transactions.get(key)],
                        failure=[c.transactions.get(key)],
                    )
                    kvs = responses[-1]
                    seen[i] = kvs[0][1].mod_revision if kvs else 0
                    if ok:
                        break

        done, elapsed = await run_for(seconds, n, cycle)
        out[label] = done / elapsed
        for c in conns:
            await c.close()
    _ = rpc  # aetcd's rpc module is imported so its protobufs load before timing starts
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=32)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sqlite = asyncio.run(bench_backend(f"sqlite:///{tmp}/bench.db", args.seconds, args.clients))
        cluster = start_cluster(Path(tmp) / "etcd", 1)
        try:
            port = cluster.members[0].client_port
            etcd = asyncio.run(bench_backend(cluster.url, args.seconds, args.clients))
            raw = asyncio.run(bench_raw_etcd("127.0.0.1", port, args.seconds, args.clients))
        finally:
            cluster.stop()

    print(f"acquire+release cycles per second ({args.seconds:g} s each, one process)")
    print(f"{'':20} {'sqlite':>10} {'etcd':>10} {'raw etcd':>10} {'etcd/raw':>9}")
    for label in sqlite:
        ratio = etcd[label] / raw[label]
        print(
            f"{label:20} {sqlite[label]:10.0f} {etcd[label]:10.0f} {raw[label]:10.0f} {ratio:9.2f}"
        )


if __name__ == "__main__":
    main()

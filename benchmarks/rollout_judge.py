"""What a rollout costs a server at rest: its CPU while it judges the rollout every second, and
the first dashboard load after a write, on a SQLite store of --nodes node reports.

    .venv/bin/python benchmarks/rollout_judge.py [--nodes 50000] [--seconds 30] [--reads 3]
        [--keep DIR]

Fills a SQLite store straight through the backend (`SqliteBackend(path, inline=True)`,
`report()` in a loop: 20 groups `g00`..`g19`; every 100th node waiting for a reboot, every
1,000th halted, the rest idle), sets a rollout of three stages (g00; g01-g09; g10-g19, budget
5 %), then starts `stagger server` on it as its own process (the `stagger` this script imports,
so run it with PYTHONPATH pointing at the tree to measure) and prints:
- the server's CPU over --seconds at rest (utime + stime from /proc/PID/stat), while its
  rollout judge runs every rollout_interval (1 s);
- three first loads of the dashboard (`/`) after a write (a report sent to the store; each
  after the time the dashboard keeps a costly board is over), and --reads reads of
  `/v1/rollout`, each timed alone, with their median;
- the machine's load average before and after.
Measurements, never assertions; the machine is shared: compare runs made side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetlock import Server
from stagger.backends.sqlite import SqliteBackend
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Budget, Stage

GROUPS = [f"g{i:02d}" for i in range(20)]
STAGES = (Stage((GROUPS[0],)), Stage(tuple(GROUPS[1:10])), Stage(tuple(GROUPS[10:])))


def state_of(i: int) -> State:
    if i % 1000 == 999:
        return State.HALTED
    return State.WAITING if i % 100 == 99 else State.IDLE


async def fill(path: Path, n: int) -> float:
    began = time.monotonic()
    store = SqliteBackend(str(path), inline=True, create=True)
    try:
        for i in range(n):
            state = state_of(i)
            since = None if state is State.IDLE else store.clock()
            await store.report(
                NodeReport(f"node-{i:06d}", GROUPS[i % len(GROUPS)], state, needed_since=since)
            )
        await store.set_rollout(STAGES, Budget(percent=5), by="operator:bench")
    finally:
        await store.close()
    return time.monotonic() - began


async def touch(path: Path, k: int) -> None:
    """One write: a node's report, as an agent would send it."""
    store = SqliteBackend(str(path), inline=True)
    try:
        await store.report(NodeReport("node-000000", GROUPS[0], State.IDLE, reason=f"w{k}"))
    finally:
        await store.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_get(port: int, path: str) -> tuple[float, int]:
    began = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as r:
        size = len(r.read())
    return (time.perf_counter() - began) * 1000, size


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--reads", type=int, default=3, help="Reads of /v1/rollout timed.")
    parser.add_argument("--keep", type=Path, help="Put the store here (default: a temp dir).")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="stagger-judge-"))
    base.mkdir(parents=True, exist_ok=True)
    db = base / "store.db"
    db.unlink(missing_ok=True)
    print(f"load average at start: {load()}")
    filled = asyncio.run(fill(db, args.nodes))
    print(f"filled {args.nodes} node reports and the rollout in {filled:.1f} s")
    server = Server(f"sqlite:///{db}")
    try:
        time.sleep(3)  # the first judgments and the store's first reads behind us
        before = cpu_seconds(server.proc.pid)
        time.sleep(args.seconds)
        used = cpu_seconds(server.proc.pid) - before
        share = 100 * used / args.seconds
        print(f"server CPU at rest over {args.seconds:.0f} s: {used:.2f} s ({share:.1f} %)")
        built = 0.0
        for k in range(3):
            # Past the time a costly board is kept although the store changed (KEEP_FACTOR
            # times its build, server/dashboard.py), so that this load builds it again.
            time.sleep(1 + 5 * built)
            asyncio.run(touch(db, k))
            ms, size = timed_get(server.port, "/")
            built = ms / 1000
            print(f"dashboard / after a write #{k + 1}: {ms:.0f} ms, {size / 1024:.1f} KB")
        times = []
        for k in range(args.reads):
            ms, size = timed_get(server.port, "/v1/rollout")
            times.append(ms)
            print(f"/v1/rollout #{k + 1}: {ms:.0f} ms, {size / 1024:.1f} KB")
        print(f"/v1/rollout median of {args.reads}: {statistics.median(times):.0f} ms")
    finally:
        server.stop()
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()

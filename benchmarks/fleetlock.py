"""FleetLock server load: `stagger server` over a real etcd, driven on loopback.

    .venv/bin/python benchmarks/fleetlock.py [--seconds 10] [--connections 32]
    .venv/bin/python benchmarks/fleetlock.py --only wrk [--rounds 3] [--also-src DIR]

(wrk) the hot path against its ceiling, side by side in one run: a bare ASGI app on the same
    uvicorn + uvloop + httptools stack that answers a fixed FleetLock denial (or `200 {}`)
    without reading anything, and `stagger server` on SQLite and on etcd (one member), each
    in its own process, driven by `wrk -t2 -c<connections>` (Debian's wrk) with FleetLock
    bodies cycling through 1,000 ids: the denial (`pre-reboot` on a full group, every answer
    423) and the no-op release (`steady-state` from ids that hold nothing, every answer 200).
    Rounds interleave the targets; it prints each one's median req/s and its ratio to the
    bare app's for the same call, and the server process's CPU time per request (from
    /proc), which a loaded machine disturbs less. `--also-src DIR` adds `stagger server`
    run from another source tree (an older commit's `git archive`), on both backends, for
    before/after.

Then (a), (b), (c) drive the server from this process. Each starts etcd (one member for a
and b, three for c) and `stagger server` as separate processes, then drives it with a
minimal keep-alive HTTP/1.1 client on uvloop (so the generator costs little of the 2 cores
it shares with the server and etcd):

(a) `pre-reboot` on a full group (max 1, held), random ids: every answer should be a denial
    (423); reports req/s, p50/p99 latency, the non-2xx count (here: denials) and errors (5xx).
(b) `steady-state` from random ids that hold nothing: every answer should be 200.
    For (a) and (b) it also reports the etcd range operations the run caused, from etcd's
    own counter, per FleetLock request (a group read is one txn of 3 ranges); and the raw
    etcd read rate: the same number of connections doing bare linearizable reads of one key
    with aetcd, for the same time.
(c) contention on a 3-member etcd: 16 clients cycling pre-reboot → 2–20 ms hold →
    steady-state through a group with max 3; reports cycles/s, slot utilization (time held
    ÷ (max × duration)) and failed requests (anything but 200 and the 423 denials). Before
    the run it times single etcd operations on the same cluster (a guarded write, a
    linearizable read; one client, nothing else running) and prints the utilization bound
    they allow: a slot handed over costs at least two guarded writes (the release, then the
    next grant), so at best utilization = hold ÷ (hold + 2 × write).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aetcd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from etcd_support import EtcdCluster, free_port, start_cluster

ROOT = Path(__file__).resolve().parent.parent


# --- a lean HTTP/1.1 keep-alive client ---------------------------------------------------------


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> int:
        self.writer.write(
            b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\nfleet-lock-protocol: true\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (path.encode(), len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        m = re.search(rb"(?i)content-length: *(\d+)", head)
        if m is None:
            raise RuntimeError(f"no content-length in {head!r}")
        await self.reader.readexactly(int(m.group(1)))
        return status

    def close(self) -> None:
        self.writer.close()


def fl_body(node: str, group: str) -> bytes:
    return b'{"client_params":{"id":"%s","group":"%s"}}' % (node.encode(), group.encode())


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, status: int, latency: float) -> None:
        self.latencies.append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def count(self) -> int:
        return len(self.latencies)

    def pct(self, q: float) -> float:
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")

    def non_2xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300)

    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)


async def drive(port: int, connections: int, seconds: float, path: str, group: str) -> Run:
    conns = [await Conn.open(port) for _ in range(connections)]
    run = Run()
    rng = random.Random(1)
    stop = time.perf_counter() + seconds

    async def loop(c: Conn) -> None:
        while time.perf_counter() < stop:
            body = fl_body(f"n{rng.getrandbits(48):x}", group)
            t0 = time.perf_counter()
            status = await c.post(path, body)
            run.add(status, time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in conns))
    run.seconds = time.perf_counter() - t0
    for c in conns:
        c.close()
    return run


# --- processes ---------------------------------------------------------------------------


def etcd_reads(cluster: EtcdCluster) -> float:
    """etcd's own count of range requests served (summed over members)."""
    total = 0.0
    for m in cluster.members:
        with urllib.request.urlopen(m.client_url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        for name in ("etcd_mvcc_range_total", "etcd_debugging_mvcc_range_total"):
            found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
            if found:
                total += sum(float(v) for v in found)
                break
    return total


class Server:
    def __init__(self, backend: str, src: Path | None = None, bare: bool = False) -> None:
        """`stagger server` on `backend` (from the source tree `src` when given), or with
        bare=True the bare app of this file on the same stack."""
        self.port = free_port()
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = str(src)
        if bare:
            argv = [sys.executable, __file__, "--serve-bare", str(self.port)]
        else:
            argv = [sys.executable, "-m", "stagger", "server", "--backend", backend,
                    "--listen", f"127.0.0.1:{self.port}", "--log-level", "warning"]  # fmt: skip
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("stagger server did not become ready")

    def call(self, method: str, path: str, data: bytes | None = None) -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"fleet-lock-protocol": "true", "content-type": "application/json"},
        )  # fmt: skip
        urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


async def raw_reads(cluster: EtcdCluster, connections: int, seconds: float) -> float:
    """Bare linearizable reads of one key by `connections` concurrent aetcd clients."""
    m = cluster.members[0]
    clients = [aetcd.Client(host="127.0.0.1", port=m.client_port) for _ in range(connections)]
    for c in clients:
        await c.connect()
    await clients[0].put(b"bench/raw", b"x" * 200)
    count = 0
    stop = time.perf_counter() + seconds

    async def loop(c: aetcd.Client) -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await c.get(b"bench/raw")
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in clients))
    elapsed = time.perf_counter() - t0
    for c in clients:
        await c.close()
    return count / elapsed


def report(label: str, run: Run, reads: float) -> None:
    rate = run.count / run.seconds
    print(
        f"{label}: {rate:8.0f} req/s  p50 {run.pct(0.5):6.2f} ms  p99 {run.pct(0.99):6.2f} ms  "
        f"non-2xx {run.non_2xx()}  5xx {run.errors()}  "
        f"statuses {dict(sorted(run.statuses.items()))}  "
        f"etcd range ops/request {reads / max(run.count, 1):.2f}"
    )


# --- the scenarios -------------------------------------------------------------------------


async def scenario_ab(base: Path, seconds: float, connections: int) -> None:
    cluster = start_cluster(base / "etcd1", 1)
    server = Server(cluster.url)
    try:
        server.call("PUT", "/v1/groups/full/max", b'{"max": 1}')
        server.call("POST", "/v1/pre-reboot", fl_body("holder", "full"))
        await drive(server.port, connections, 1.0, "/v1/pre-reboot", "full")  # warm-up
        before = etcd_reads(cluster)
        a = await drive(server.port, connections, seconds, "/v1/pre-reboot", "full")
        a_reads = etcd_reads(cluster) - before
        before = etcd_reads(cluster)
        b = await drive(server.port, connections, seconds, "/v1/steady-state", "idle")
        b_reads = etcd_reads(cluster) - before
    finally:
        server.stop()
    raw = await raw_reads(cluster, connections, seconds)
    cluster.stop()
    report("(a) pre-reboot, full group  ", a, a_reads)
    report("(b) steady-state, no holder ", b, b_reads)
    print(f"raw etcd linearizable reads ({connections} aetcd clients, 1 key): {raw:8.0f} reads/s")
    print(
        f"ratios: (a)/raw {a.count / a.seconds / raw:.2f}  (b)/raw {b.count / b.seconds / raw:.2f}"
        f"  (a)/reference 2250 req/s {a.count / a.seconds / 2250:.2f}"
    )


# --- (wrk) the hot path against a bare app on the same stack ----------------------------------

BARE_DENIAL = (
    b'{"kind":"failed_lock_semaphore_full","value":"all 1 slot(s) are held by: holder",'
    b'"max":1,"holders":["holder"]}'
)


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ceiling: reads the request, answers the fixed denial on pre-reboot and `200 {}`
    on anything else, reading no store and checking nothing."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    status, body = (423, BARE_DENIAL) if scope["path"].endswith("pre-reboot") else (200, b"{}")
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(
        bare_app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
        access_log=False, lifespan="off", log_level="warning",
    )  # fmt: skip


WRK_SCRIPT = """
local group = os.getenv("FL_GROUP")
local headers = {["fleet-lock-protocol"] = "true", ["content-type"] = "application/json"}
local requests, i = {}, 0
for n = 1, 1000 do
  local body = string.format('{"client_params":{"id":"node-%d","group":"%s"}}', n, group)
  requests[n] = wrk.format("POST", nil, headers, body)
end
request = function()
  i = i % 1000 + 1
  return requests[i]
end
"""


@dataclass
class WrkRun:
    rate: float
    requests: int
    non_2xx: int
    socket_errors: str | None
    cpu_us: float = 0.0  # the server process's CPU time (user + system) per request


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, path: str, group: str, seconds: float, connections: int, script: Path) -> WrkRun:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script),
         f"http://127.0.0.1:{port}{path}"],
        env={**os.environ, "FL_GROUP": group}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if rate is None or count is None:
        raise RuntimeError(f"wrk said: {out}")
    return WrkRun(
        float(rate.group(1)),
        int(count.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        errors.group(1) if errors else None,
    )


async def scenario_wrk(
    base: Path, seconds: float, connections: int, rounds: int, also: list[Path]
) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    script = base / "fleetlock.lua"
    script.write_text(WRK_SCRIPT)
    cluster = start_cluster(base / "etcd-wrk", 1)
    targets: dict[str, Server] = {}
    try:
        targets["bare app"] = Server("", bare=True)
        sources: list[tuple[str, Path | None]] = [("", None)]
        sources += [(f" [{src}]", src) for src in also]
        for label, src in sources:
            db = base / f"wrk-{len(targets)}.db"
            targets[f"sqlite{label}"] = Server(f"sqlite:///{db}", src)
            targets[f"etcd{label}"] = Server(f"{cluster.url}/?prefix=wrk{len(targets)}/", src)
        for name, server in targets.items():
            if name != "bare app":
                server.call("PUT", "/v1/groups/full/max", b'{"max": 1}')
                server.call("POST", "/v1/pre-reboot", fl_body("holder", "full"))
        calls = {
            "denial": ("/v1/pre-reboot", "full"),
            "no-op release": ("/v1/steady-state", "idle"),
        }
        runs: dict[tuple[str, str], list[WrkRun]] = {}
        for server in targets.values():  # warm-up
            for path, group in calls.values():
                wrk(server.port, path, group, 1, connections, script)
        for _ in range(rounds):
            for call, (path, group) in calls.items():
                for name, server in targets.items():
                    before = cpu_seconds(server.proc.pid)
                    run = wrk(server.port, path, group, seconds, connections, script)
                    run.cpu_us = 1e6 * (cpu_seconds(server.proc.pid) - before) / run.requests
                    runs.setdefault((name, call), []).append(run)
    finally:
        for server in targets.values():
            server.stop()
        cluster.stop()
    print(
        f"(wrk) wrk -t2 -c{connections}, {seconds:g} s per run, {rounds} rounds interleaved; "
        "median req/s and its ratio to the bare app's for the same call; the server's median "
        "CPU time per request (a loaded machine inflates it less than it lowers req/s)"
    )
    for call in calls:
        bare = statistics.median(r.rate for r in runs[("bare app", call)])
        for name in targets:
            got = runs[(name, call)]
            rate = statistics.median(r.rate for r in got)
            total = sum(r.requests for r in got)
            non_2xx = sum(r.non_2xx for r in got)
            expected = total if call == "denial" else 0
            check = "ok" if non_2xx == expected else f"UNEXPECTED: {non_2xx} non-2xx of {total}"
            errors = "; ".join(r.socket_errors for r in got if r.socket_errors)
            cpu = statistics.median(r.cpu_us for r in got)
            print(
                f"  {call:13} {name:30} {rate:9.0f} req/s  ratio {rate / bare:5.2f}  "
                f"cpu {cpu:5.1f} us/req  "
                f"(runs: {', '.join(f'{r.rate:.0f}' for r in got)}; answers {check})"
                + (f"  socket errors: {errors}" if errors else "")
            )


async def etcd_op_latency(cluster: EtcdCluster, n: int = 200) -> tuple[float, float]:
    """Median ms of a mod_revision-guarded put and of a linearizable read, one at a time."""
    m = cluster.members[0]
    c = aetcd.Client(host="127.0.0.1", port=m.client_port)
    await c.connect()
    key = b"bench/latency"
    await c.put(key, b"0")
    writes, reads = [], []
    for i in range(n):
        t0 = time.perf_counter()
        got = await c.get(key)
        reads.append(time.perf_counter() - t0)
        rev = got.mod_revision if got is not None else 0
        t0 = time.perf_counter()
        await c.transaction(
            compare=[c.transactions.mod(key) == rev],
            success=[c.transactions.put(key, b"%d" % i)],
            failure=[],
        )
        writes.append(time.perf_counter() - t0)
    await c.close()
    return 1000 * sorted(writes)[n // 2], 1000 * sorted(reads)[n // 2]


async def scenario_c(base: Path, seconds: float, clients: int = 16, max_: int = 3) -> None:
    cluster = start_cluster(base / "etcd3", 3)
    write_ms, read_ms = await etcd_op_latency(cluster)
    server = Server(cluster.url)
    held = 0.0
    cycles = 0
    failed: dict[str, int] = {"pre-reboot": 0, "steady-state": 0}
    denials = 0
    lat: dict[str, list[float]] = {"granted": [], "denied": [], "released": []}
    try:
        server.call("PUT", "/v1/groups/busy/max", b'{"max": %d}' % max_)
        conns = [await Conn.open(server.port) for _ in range(clients)]
        rng = random.Random(3)
        stop = time.perf_counter() + seconds

        async def loop(i: int, c: Conn) -> None:
            nonlocal held, cycles, denials
            body = fl_body(f"node-{i}", "busy")
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                status = await c.post("/v1/pre-reboot", body)
                if status == 423:
                    denials += 1
                    lat["denied"].append(time.perf_counter() - t0)
                    continue
                if status != 200:
                    failed["pre-reboot"] += 1
                    continue
                lat["granted"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await asyncio.sleep(rng.uniform(0.002, 0.020))
                held += time.perf_counter() - t0
                t0 = time.perf_counter()
                while (status := await c.post("/v1/steady-state", body)) != 200:
                    failed["steady-state"] += 1
                lat["released"].append(time.perf_counter() - t0)
                cycles += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(i, c) for i, c in enumerate(conns)))
        elapsed = time.perf_counter() - t0
        for c in conns:
            c.close()
    finally:
        server.stop()
        cluster.stop()
    print(
        f"(c) {clients} clients, max {max_}, 3-member etcd: {cycles / elapsed:.0f} cycles/s, "
        f"utilization {held / (max_ * elapsed):.2f}, denials {denials}, "
        f"failed pre-reboot {failed['pre-reboot']}, failed releases {failed['steady-state']}"
    )
    hold_ms = 11.0  # the mean of the 2-20 ms uniform hold
    print(
        f"    etcd alone, before the run: guarded write {write_ms:.1f} ms, linearizable read "
        f"{read_ms:.1f} ms (p50); bound hold/(hold + 2 x write) = "
        f"{hold_ms / (hold_ms + 2 * write_ms):.2f}"
    )
    print(
        "    latency p50/p99 ms: "
        + ", ".join(
            f"{k} {1000 * sorted(v)[len(v) // 2]:.1f}/{1000 * sorted(v)[int(len(v) * 0.99)]:.1f}"
            for k, v in lat.items()
            if v
        )
    )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--only", choices=["wrk", "ab", "c"], default=None)
    p.add_argument("--rounds", type=int, default=3, help="(wrk) rounds of runs, interleaved")
    p.add_argument(
        "--also-src",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="(wrk) also run stagger server from this source tree (e.g. an older commit's src/)",
    )
    p.add_argument("--data-dir", default=None, help="where etcd keeps its data (default: $TMPDIR)")
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.connections} connections; {args.seconds:g} s per run")
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        if args.only in (None, "wrk"):
            await scenario_wrk(
                Path(tmp), args.seconds, args.connections, args.rounds, args.also_src
            )
        if args.only in (None, "ab"):
            await scenario_ab(Path(tmp), args.seconds, args.connections)
        if args.only in (None, "c"):
            await scenario_c(Path(tmp), args.seconds)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-bare"]:  # the bare app's own process (Server(bare=True))
        serve_bare(int(sys.argv[2]))
        sys.exit()
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())

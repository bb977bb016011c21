"""A big fleet, through the real API: what every read costs at 1,000, 10,000 and 50,000 nodes.

    .venv/bin/python benchmarks/fleet.py [--nodes 1000,10000] [--backends sqlite,etcd]
                                         [--samples 10] [--seconds 5] [--json FILE]

For each backend and each N it starts a fresh store (a SQLite file, or a single-member etcd)
and `stagger server` on it as its own process (loopback only), then populates N nodes through
the server's own API, the way a fleet would: 20 groups (`g00`..`g19`); every node takes a
slot and gives it back over FleetLock (`pre-reboot`, `steady-state`: two history events per
node) and sends one report (`POST /v1/nodes/{id}/report`: mostly idle, some waiting, 1 %
halted); then each group's max goes to 2 and its first two nodes keep a slot, so `g00` is
full for the denials below. Population runs over --connections keep-alive connections at
once (a minimal HTTP/1.1 client on uvloop, so the generator costs little of the machine).

Then, one request at a time (so a latency is the server's time for that request alone),
--samples times each, it records p50 and p99 (with few samples, p99 is the slowest) and the
answer's size of:
- every listing: `/v1/status`, `/v1/nodes`, `/v1/nodes?group=g01`, `/v1/history`,
  `/v1/groups` (when the server has it), `/v1/groups/g01`, `/v1/groups/g01/history`;
  when /openapi.json says a listing takes `cursor`, the first page (default limit) and a walk
  of every page (`limit` = the largest the server accepts, following `next_cursor`: pages,
  bytes and seconds in total) instead of one whole answer;
- the dashboard's first load (`/`) and its live part (`/dashboard/live`): the first fetch,
  then an idle refresh sent with If-None-Match when the server gave an ETag (304 and a few
  bytes when nothing changed; else the whole part again);
- a `/metrics` scrape;
- the FleetLock denial under load: --connections clients asking `pre-reboot` of the full
  group for --seconds (req/s, p50, p99), as --denial-ids waiting nodes polling it (each id
  joins the group's queue on its first ask, then is answered from the queue: the polling
  fleet's steady state, as in benchmarks/fleetlock.py);
- the server's RSS (VmRSS, and its peak VmHWM) at the end, and the store's size (the SQLite
  file with its WAL; etcd's database size from its own metrics).

It prints one table per backend (a column per N) and, with --json FILE, writes every figure.
These are measurements, never assertions; the machine is shared, so compare columns of one
run, not runs of different days.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from etcd_support import EtcdCluster, start_cluster
from fleetlock import Server, fl_body

GROUPS = [f"g{i:02d}" for i in range(20)]
FULL_GROUP = "g00"
HOLDERS_PER_GROUP = 2


# --- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """One keep-alive connection; answers with content-length or chunked bodies. A
    connection the server closed while idle (its keep-alive timeout) is opened again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.writer: asyncio.StreamWriter | None = None

    @classmethod
    async def open(cls, port: int) -> Client:
        c = cls(port)
        await c._connect()
        return c

    async def _connect(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, limit=2**24
        )

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        head = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method in ("POST", "PUT"):
            head += ["content-type: application/json", f"content-length: {len(body)}"]
        message = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        if self.writer is None or self.writer.is_closing() or self.reader.at_eof():
            await self._connect()
        for attempt in (1, 2):
            self.writer.write(message)  # type: ignore[union-attr]
            try:
                raw = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
                partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                if attempt == 2 or partial:
                    raise
                await self._connect()  # closed while idle, before our request was read
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        got: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                got[k.strip().lower()] = v.strip()
        if "content-length" in got:
            data = await self.reader.readexactly(int(got["content-length"]))
        elif got.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        elif status in (204, 304):
            data = b""
        else:
            raise RuntimeError(f"{method} {path}: neither content-length nor chunked")
        return Reply(status, got, data)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# --- populating a fleet through the API --------------------------------------------------------


def node_id(i: int) -> str:
    return f"node-{i:06d}"


def group_of(i: int) -> str:
    return GROUPS[i % len(GROUPS)]


def report_body(i: int, now: datetime) -> bytes:
    """Node i's report: 1 % halted, 5 % waiting, the rest idle."""
    doc: dict[str, Any] = {"group": group_of(i), "state": "idle", "version": "bench"}
    if i % 100 == 7:
        doc |= {"state": "halted", "reason": "health check failed: http://127.0.0.1/healthz"}
        doc["last_reboot"] = (now - timedelta(minutes=30)).isoformat()
    elif i % 20 == 3:
        doc |= {"state": "waiting", "reason": "waiting for the window", "detector": "file"}
        doc["needed_since"] = (now - timedelta(hours=i % 48)).isoformat()
    return json.dumps(doc).encode()


async def expect(c: Client, method: str, path: str, body: bytes = b"", ok: int = 200) -> Reply:
    headers = (
        {"fleet-lock-protocol": "true"} if path.endswith(("pre-reboot", "steady-state")) else {}
    )
    reply = await c.request(method, path, body, headers)
    if reply.status != ok:
        raise RuntimeError(f"{method} {path}: {reply.status} {reply.body[:300]!r}")
    return reply


async def populate(port: int, n: int, connections: int) -> float:
    """N nodes through the API; returns the seconds it took."""
    setup = await Client.open(port)
    for g in GROUPS:
        await expect(setup, "PUT", f"/v1/groups/{g}/max", b'{"max": 100}')
    now = datetime.now(UTC)
    todo: Iterator[int] = iter(range(n))

    async def worker() -> None:
        c = await Client.open(port)
        for i in todo:  # one shared iterator: each index is taken by one worker
            body = fl_body(node_id(i), group_of(i))
            await expect(c, "POST", "/v1/pre-reboot", body)
            await expect(c, "POST", "/v1/steady-state", body)
            await expect(c, "POST", f"/v1/nodes/{node_id(i)}/report", report_body(i, now))
        c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    took = time.perf_counter() - t0
    for g in GROUPS:  # two holders per group; g00 full (max 2) for the denials
        await expect(setup, "PUT", f"/v1/groups/{g}/max", b'{"max": %d}' % HOLDERS_PER_GROUP)
    for i in range(min(n, HOLDERS_PER_GROUP * len(GROUPS))):
        await expect(setup, "POST", "/v1/pre-reboot", fl_body(node_id(i), group_of(i)))
    setup.close()
    return took


# --- measuring ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


@dataclass
class Read:
    """One endpoint read --samples times, one at a time."""

    path: str
    p50_ms: float
    p99_ms: float
    bytes: int
    status: int
    note: str = ""


async def timed_reads(
    c: Client, path: str, samples: int, headers: dict[str, str] | None = None
) -> Read:
    took: list[float] = []
    reply = None
    for _ in range(samples):
        t0 = time.perf_counter()
        reply = await c.request("GET", path, headers=headers)
        took.append(time.perf_counter() - t0)
        if reply.status not in (200, 304):  # recorded, not fatal: the other figures still count
            try:
                said = json.loads(reply.body)["value"]
            except (ValueError, KeyError, TypeError):
                said = reply.body[:200].decode("utf-8", "replace")
            print(f"    GET {path}: {reply.status} {said}", flush=True)
            break
    assert reply is not None
    read = Read(path, 1000 * pct(took, 0.5), 1000 * pct(took, 0.99), len(reply.body), reply.status)
    if reply.status not in (200, 304):
        read.note = f"FAILED: {reply.status}"
    return read


@dataclass
class Walk:
    """Every page of a paged listing, one after another."""

    path: str
    pages: int
    items: int
    bytes: int
    seconds: float
    slowest_page_ms: float


async def walk(c: Client, path: str, limit: int, key: str) -> Walk:
    """Every page, `limit` items each (the server's default page if it refuses that)."""
    cursor: str | None = None
    pages = items = size = 0
    slowest = 0.0
    t0 = time.perf_counter()
    while True:
        query = ({"limit": str(limit)} if limit else {}) | ({"cursor": cursor} if cursor else {})
        sep = "&" if "?" in path else "?"
        t1 = time.perf_counter()
        reply = await c.request("GET", f"{path}{sep}{urlencode(query)}")
        if reply.status == 400 and limit and pages == 0:
            limit = 0
            continue
        if reply.status != 200:
            raise RuntimeError(f"GET {path}: {reply.status} {reply.body[:300]!r}")
        slowest = max(slowest, time.perf_counter() - t1)
        doc = json.loads(reply.body)
        pages += 1
        items += len(doc.get(key, []))
        size += len(reply.body)
        cursor = doc.get("next_cursor")
        if not cursor or pages > 100_000:
            break
    note = f" (limit={limit})" if limit else " (default page)"
    return Walk(path + note, pages, items, size, time.perf_counter() - t0, 1000 * slowest)


def paging(openapi: dict[str, Any], path: str, sample: bytes) -> int | None:
    """The `limit` to walk a GET of `path` with when it pages, else None. It pages when
    /openapi.json gives it a `cursor`, or its answer (`sample`) has a `next_cursor`; the
    limit is the largest the schema allows, else 1000 (walk() falls back to the default)."""
    params = openapi.get("paths", {}).get(path, {}).get("get", {}).get("parameters", [])
    names = {p.get("name"): p for p in params}
    if "cursor" not in names:
        try:
            doc = json.loads(sample)
        except ValueError:
            return None
        if not (isinstance(doc, dict) and "next_cursor" in doc):
            return None
    schema = names.get("limit", {}).get("schema", {})
    for option in [schema, *schema.get("anyOf", [])]:
        if "maximum" in option:
            return int(option["maximum"])
    return 1000


@dataclass
class Denials:
    rate: float
    p50_ms: float
    p99_ms: float
    answers: dict[int, int]


async def denials(port: int, connections: int, seconds: float, ids: int) -> Denials:
    conns = [await Client.open(port) for _ in range(connections)]
    took: list[float] = []
    answers: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    headers = {"fleet-lock-protocol": "true"}

    async def loop(k: int, c: Client) -> None:
        i = 0
        while time.perf_counter() < stop:
            i += 1
            body = fl_body(f"bench-{(k + connections * i) % ids}", FULL_GROUP)
            t0 = time.perf_counter()
            reply = await c.request("POST", "/v1/pre-reboot", body, headers)
            took.append(time.perf_counter() - t0)
            answers[reply.status] = answers.get(reply.status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(k, c) for k, c in enumerate(conns)))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return Denials(len(took) / elapsed, 1000 * pct(took, 0.5), 1000 * pct(took, 0.99), answers)


def rss(pid: int) -> tuple[int, int]:
    """The process's VmRSS and VmHWM in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    got = {k: int(v) * 1024 for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}
    return got["VmRSS"], got["VmHWM"]


def etcd_db_size(cluster: EtcdCluster) -> int:
    with urllib.request.urlopen(cluster.members[0].client_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    for name in ("etcd_mvcc_db_total_size_in_bytes", "etcd_debugging_mvcc_db_total_size_in_bytes"):
        found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
        if found:
            return int(float(found.group(1)))
    return -1


def sqlite_size(db: Path) -> int:
    """The store's file with its WAL and shared memory."""
    files = [db.with_name(db.name + end) for end in ("", "-wal", "-shm")]
    return sum(f.stat().st_size for f in files if f.exists())


@dataclass
class Result:
    backend: str
    nodes: int
    populate_seconds: float
    reads: list[Read] = field(default_factory=list)
    walks: list[Walk] = field(default_factory=list)
    denial: Denials | None = None
    rss_bytes: int = 0
    rss_peak_bytes: int = 0
    store_bytes: int = 0


async def measure(server: Server, n: int, args: argparse.Namespace, result: Result) -> None:
    c = await Client.open(server.port)
    openapi = json.loads((await expect(c, "GET", "/openapi.json")).body)
    paths = openapi.get("paths", {})
    s = args.samples
    result.reads.append(await timed_reads(c, "/v1/status", s))
    for path, key in (("/v1/nodes", "nodes"), ("/v1/history", "events")):
        first = await c.request("GET", path)
        limit = paging(openapi, path, first.body) if first.status == 200 else None
        read = await timed_reads(c, path, s)
        read.note = "first page" if limit is not None else "whole"
        result.reads.append(read)
        if limit is not None:
            result.walks.append(await walk(c, path, limit, key))
    result.reads.append(await timed_reads(c, f"/v1/nodes?group={GROUPS[1]}", s))
    if "/v1/groups" in paths:
        result.reads.append(await timed_reads(c, "/v1/groups", s))
    result.reads.append(await timed_reads(c, f"/v1/groups/{GROUPS[1]}", s))
    result.reads.append(await timed_reads(c, f"/v1/groups/{GROUPS[1]}/history", s))
    result.reads.append(await timed_reads(c, "/metrics", s))
    result.reads.append(await timed_reads(c, "/", s))
    first = await c.request("GET", "/dashboard/live")
    live = await timed_reads(c, "/dashboard/live", s)
    live.note = "first fetch"
    result.reads.append(live)
    etag = first.headers.get("etag")
    idle = await timed_reads(c, "/dashboard/live", s, {"if-none-match": etag} if etag else None)
    idle.path = "/dashboard/live (idle refresh)"
    idle.note = f"If-None-Match, {idle.status}" if etag else "no ETag: the whole part"
    result.reads.append(idle)
    c.close()
    result.denial = await denials(server.port, args.connections, args.seconds, args.denial_ids)
    result.rss_bytes, result.rss_peak_bytes = rss(server.proc.pid)


async def one(backend: str, n: int, base: Path, args: argparse.Namespace) -> Result:
    cluster: EtcdCluster | None = None
    db = base / f"fleet-{n}.db"
    if backend == "etcd":
        cluster = start_cluster(base / f"etcd-{n}", 1)
        url = cluster.url
    else:
        url = f"sqlite:///{db}"
    server = Server(url, args.src)
    try:
        took = await populate(server.port, n, args.connections)
        result = Result(backend, n, took)
        print(f"  {backend} {n}: populated in {took:.1f} s ({3 * n / took:.0f} req/s)", flush=True)
        await measure(server, n, args, result)
        if cluster is not None:
            result.store_bytes = etcd_db_size(cluster)
        else:
            result.store_bytes = sqlite_size(db)
    finally:
        server.stop()
        if cluster is not None:
            cluster.stop()
    return result


# --- the table ----------------------------------------------------------------------------------


def mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} KB"


def cell(read: Read) -> str:
    if read.status not in (200, 304):
        return f"**{read.status}** ({read.p50_ms:.0f} ms)"
    return f"{read.p50_ms:.0f}/{read.p99_ms:.0f}, {mb(read.bytes)}"


def table(results: list[Result]) -> str:
    """One markdown table: a row per figure, a column per N."""
    ns = [r.nodes for r in results]
    rows: list[tuple[str, list[str]]] = [
        ("populate (3 requests per node)", [f"{r.populate_seconds:.0f} s" for r in results])
    ]
    names = [read.path for read in results[0].reads]
    for i, name in enumerate(names):
        note = next((r.reads[i].note for r in results if "FAILED" not in r.reads[i].note), "")
        label = f"`{name}`" + (f" ({note})" if note else "")
        rows.append(
            (
                label + " p50/p99 ms, size",
                [cell(r.reads[i]) for r in results],
            )
        )
    for i, w in enumerate(results[0].walks if all(r.walks for r in results) else []):
        rows.append(
            (
                f"`{w.path}` every page (pages; total; slowest page)",
                [
                    f"{r.walks[i].pages} p; {r.walks[i].seconds:.2f} s, {mb(r.walks[i].bytes)}; "
                    f"{r.walks[i].slowest_page_ms:.0f} ms"
                    for r in results
                ],
            )
        )
    rows.append(
        (
            "FleetLock denial under load: req/s, p50/p99 ms",
            [
                f"{r.denial.rate:.0f}, {r.denial.p50_ms:.1f}/{r.denial.p99_ms:.1f}"
                for r in results
                if r.denial is not None
            ],
        )
    )
    rows.append(
        ("server RSS (peak)", [f"{mb(r.rss_bytes)} ({mb(r.rss_peak_bytes)})" for r in results])
    )
    rows.append(("store size", [mb(r.store_bytes) for r in results]))
    out = [f"| {results[0].backend} | " + " | ".join(f"{n:,} nodes" for n in ns) + " |"]
    out.append("|---|" + "---:|" * len(ns))
    out += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(out)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", default="1000,10000", help="fleet sizes, comma-separated")
    p.add_argument("--backends", default="sqlite,etcd", help="sqlite, etcd or both")
    p.add_argument("--samples", type=int, default=10, help="requests per read measured")
    p.add_argument("--seconds", type=float, default=5.0, help="of FleetLock denials")
    p.add_argument(
        "--denial-ids", type=int, default=1000, help="distinct node ids polling the full group"
    )
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write every figure")
    p.add_argument(
        "--src", type=Path, default=None, metavar="DIR",
        help="run stagger server from this source tree (another commit's src/)",
    )  # fmt: skip
    p.add_argument("--data-dir", default=None, help="where the stores live (default: $TMPDIR)")
    args = p.parse_args()
    sizes = [int(x) for x in args.nodes.split(",")]
    backends = [b.strip() for b in args.backends.split(",")]
    too_small = any(n < HOLDERS_PER_GROUP * len(GROUPS) for n in sizes)
    if args.samples < 1 or args.denial_ids < 1 or too_small:
        p.error(f"--samples ≥ 1, --denial-ids ≥ 1 and every N ≥ {HOLDERS_PER_GROUP * len(GROUPS)}")
    if not set(backends) <= {"sqlite", "etcd"}:
        p.error("--backends: sqlite, etcd")
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {len(GROUPS)} groups; "
        f"{args.samples} samples per read; {args.connections} connections",
        flush=True,
    )
    results: list[Result] = []
    started = time.time()
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        for backend in backends:
            for n in sizes:
                results.append(await one(backend, n, Path(tmp), args))
                print(table(results[-1:]), flush=True)  # each as it comes: a run is long
                write_json(args, results)
    for backend in backends:
        print()
        print(table([r for r in results if r.backend == backend]))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; {time.time() - started:.0f} s")


def write_json(args: argparse.Namespace, results: list[Result]) -> None:
    if args.json is not None:
        doc = {
            "when": datetime.now(UTC).isoformat(),
            "cpus": os.cpu_count(),
            "groups": len(GROUPS),
            "samples": args.samples,
            "connections": args.connections,
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())

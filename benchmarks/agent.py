"""The node agent's cost at rest and its speed from a detector's signal to a slot.

1. Idle: one `stagger agent` (SQLite backend, file detector on inotify, default cycle
   timings) with nothing to do, sampled over --seconds: resident memory (VmRSS and its peak
   VmHWM, from /proc) and CPU seconds (utime + stime), also per hour, beside a bare
   `python -c "import asyncio"` for scale. Targets: CPU ≤ 1 s per hour, RSS ≤ 30 MB.
2. Signal → slot: /run/reboot-required is created, and the time until the backend shows the
   node's hold is measured from this process (polling the SQLite file every 2 ms), --trials
   times, each with a fresh agent. That is signal → slot request → grant. Target: ≤ 1 s.

Run: .venv/bin/python benchmarks/agent.py [--seconds 60] [--trials 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from stagger.backends.factory import open_backend

STAGGER = str(Path(sys.executable).with_name("stagger"))
TICKS = os.sysconf("SC_CLK_TCK")


def make_root(base: Path, name: str) -> tuple[Path, Path]:
    root = base / name
    (root / "etc").mkdir(parents=True)
    (root / "run").mkdir()
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    (root / "boot_id").write_text("boot-1\n")
    cfg = root / "agent.toml"
    cfg.write_text(
        f"""
[agent]
id = "{name}"
backend = "sqlite:///{base}/stagger.db"
rebooter = "simulated"
detectors = ["file"]
boot_id_path = "{root}/boot_id"

[hooks]
pre_reboot = [["sh", "-c", "sleep 30"]]
"""
    )
    return root, cfg


def start(root: Path, cfg: Path) -> subprocess.Popen[bytes]:
    log = (root / "agent.log").open("ab")
    return subprocess.Popen(
        [STAGGER, "agent", "--config", str(cfg), "--root", str(root)], stdout=log, stderr=log
    )


def wait_started(root: Path, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if "msg=started" in (root / "agent.log").read_text():
            time.sleep(0.6)  # let the detectors report their first finding
            return
        if proc.poll() is not None:
            raise SystemExit((root / "agent.log").read_text())
        time.sleep(0.05)
    raise SystemExit("the agent did not start within 30 s")


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])  # kB
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bare_asyncio_rss() -> int:
    code = "import asyncio,resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    return int(subprocess.check_output([sys.executable, "-c", code]).decode())


def idle(base: Path, seconds: float) -> None:
    root, cfg = make_root(base, "idle")
    proc = start(root, cfg)
    try:
        wait_started(root, proc)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        mem = proc_status(proc.pid)
    finally:
        stop(proc)
    bare = bare_asyncio_rss()
    print(f"idle agent over {t1 - t0:.0f} s:")
    print(f"  RSS now          {mem['VmRSS'] / 1024:6.1f} MB")
    peak, share = mem["VmHWM"] / 1024, 100 * (cpu1 - cpu0) / (t1 - t0)
    print(f"  RSS peak (HWM)   {peak:6.1f} MB   (bare python+asyncio: {bare / 1024:.1f} MB)")
    per_hour = (cpu1 - cpu0) * 3600 / (t1 - t0)
    print(f"  CPU              {cpu1 - cpu0:6.2f} s   ({share:.3f} % of one core)")
    print(f"  CPU per hour     {per_hour:6.2f} s   (target ≤ 1 s; clock tick {1 / TICKS:g} s)")


async def held_by(url: str, node_id: str) -> bool:
    backend = open_backend(url)
    try:
        snap = await backend.status("default")
    finally:
        await backend.close()
    return any(h.id == node_id for g in snap.groups for h in g.holds)


def latency(base: Path, trials: int) -> None:
    url = f"sqlite:///{base}/stagger.db"
    found: list[float] = []
    for i in range(trials):
        name = f"lat-{i}"
        root, cfg = make_root(base, name)
        proc = start(root, cfg)
        try:
            wait_started(root, proc)
            t0 = time.monotonic()
            (root / "run/reboot-required").write_text("")
            while not asyncio.run(held_by(url, name)):
                if time.monotonic() - t0 > 30:
                    raise SystemExit("no slot request within 30 s")
                time.sleep(0.002)
            found.append(time.monotonic() - t0)
        finally:
            stop(proc)
        asyncio.run(_release(url, name))
    ms = sorted(x * 1000 for x in found)
    print(f"signal → slot held, {trials} fresh agents (file detector on inotify):")
    median, every = statistics.median(ms), [round(x) for x in ms]
    print(f"  median {median:.0f} ms, max {ms[-1]:.0f} ms, all: {every}")


async def _release(url: str, node_id: str) -> None:
    backend = open_backend(url)
    try:
        await backend.release("default", node_id, by="operator:benchmark")
    finally:
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stagger-bench-agent-") as tmp:
        base = Path(tmp)
        idle(base, args.seconds)
        latency(base, args.trials)


if __name__ == "__main__":
    main()

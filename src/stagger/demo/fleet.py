"""A whole fleet on one machine, for `stagger demo`: a real `stagger server` (SQLite, on a free
loopback port) and N real `stagger agent` processes, each with its own --root (machine id,
boot id file, /run/reboot-required, state file), the file detector and the simulated rebooter.

Rules of this file:
- Nothing here decides anything about reboots: the agents and the server do. This is the
  machine room around them: it starts processes, plays the hardware on a reboot, and watches.
- The supervisor plays the machine: when an agent ends with the simulated rebooter's exit code,
  the node is down; after BOOT_TIME it gets a new boot id and an empty /run (as a real boot
  does) and its agent starts again, which tells the reboot from a restart by the boot id.
- Everything lives in one temporary directory, removed by `close()` whatever happened.
- Every wait is bounded.
- What the log shows is what happened: each agent's own `transition` lines (read from its
  log, so a state held for a few milliseconds is not missed) and the machine room's own
  moves (started, down, booting), in the order they happened on each node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stagger.agent.reboot import SIMULATED_REBOOT_EXIT, read_simulated_reboots
from stagger.backends.factory import open_backend
from stagger.core.errors import StaggerError
from stagger.core.semaphore import DEFAULT_GROUP, Action

STAGGER = str(Path(sys.executable).with_name("stagger"))
GROUP = DEFAULT_GROUP
BOOT_TIME = 1.0  # seconds a simulated machine stays down between its reboot and its agent's start
DRAIN_TIME = 1  # seconds the pre-reboot hook sleeps, so the drain can be watched
SERVER_START = 20.0  # seconds the server may take to answer /readyz
STOP_WAIT = 5.0  # seconds a process may take to stop on SIGTERM before it is killed
DEFAULT_MAX = 2  # slots in a demo where every node is healthy
# With --fail-health the halted node holds the only slot, so the rollout visibly stops there.
HALT_MAX = 1
DOWN = "the simulated reboot: the machine is down"
BOOTING = "the machine booted; its agent is starting and will see the new boot"


class DemoFailed(StaggerError):
    """The demo could not run, or a part of it did not behave (the message says which)."""

    exit_code = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def agent_config(node: DemoNode, server_url: str, now: datetime) -> str:
    """The node's config: short cycle timings, a daily window that opened a minute ago, and a
    health check that fails on purpose for --fail-health."""
    r = node.root
    opened = (now - timedelta(minutes=1)).astimezone(UTC)
    health = (
        '[["sh", "-c", "echo the demo breaks this node on purpose >&2; exit 1"]]'
        if node.fail_health
        else '[["true"]]'
    )
    return f"""
[agent]
id = "{node.id}"
group = "{GROUP}"
backend = "fleetlock+{server_url}/"
rebooter = "simulated"
detectors = ["file"]
boot_id_path = "{r}/boot_id"

[detectors.file]
interval = "100ms"

[[window]]
days = "daily"
start = "{opened:%H:%M}"
length = "6h"
time_zone = "UTC"

[hooks]
pre_reboot = [["sleep", "{DRAIN_TIME}"]]
health = {health}
health_timeout = "1s"
health_interval = "100ms"

[cycle]
heartbeat = "1s"
retry = "250ms"
backoff = "500ms"
backoff_max = "2s"
health_recheck = "2s"
poll = "500ms"
"""


@dataclass
class DemoNode:
    id: str
    root: Path
    fail_health: bool = False
    proc: subprocess.Popen[bytes] | None = None
    boots: int = 1
    down_since: float | None = None  # monotonic time of its simulated reboot, while down
    exit_problem: str = ""
    log_read: int = 0  # bytes of agent.log already turned into moves

    @property
    def log(self) -> Path:
        return self.root / "agent.log"

    def prepare(self, server_url: str, now: datetime) -> None:
        (self.root / "etc").mkdir(parents=True)
        (self.root / "run").mkdir()
        (self.root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        (self.root / "boot_id").write_text(f"{self.id}-boot-1\n")
        (self.root / "agent.toml").write_text(agent_config(self, server_url, now))
        (self.root / "run/reboot-required").write_text("")  # an update was installed

    def start(self) -> None:
        argv = [STAGGER, "agent", "--config", str(self.root / "agent.toml")]
        argv += ["--root", str(self.root)]
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        with self.log.open("ab") as out:
            # its own session: a Ctrl-C in the terminal reaches the demo, which stops it
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=out, env=env, start_new_session=True, cwd=self.root
            )

    def boot(self) -> None:
        """What the machine does on a reboot: a new boot id and an empty /run."""
        self.boots += 1
        (self.root / "boot_id").write_text(f"{self.id}-boot-{self.boots}\n")
        shutil.rmtree(self.root / "run", ignore_errors=True)
        (self.root / "run").mkdir()

    def state(self) -> dict[str, object]:
        try:
            doc = json.loads((self.root / "var/lib/stagger/agent.json").read_text())
            return dict(doc["state"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def boot_id(self) -> str:
        try:
            return (self.root / "boot_id").read_text().strip()
        except OSError:
            return ""

    def cycle(self) -> str:
        if self.down_since is not None:
            return "down"
        state = self.state()
        cycle = str(state.get("cycle", "starting"))
        if cycle == "rebooting" and state.get("boot_id") != self.boot_id():
            return "booting"  # up again; the agent has not yet seen the new boot
        return cycle

    def moves(self) -> list[tuple[str, str]]:
        """The transitions (state, reason) the agent logged since the last call, in order."""
        try:
            with self.log.open("rb") as f:
                f.seek(self.log_read)
                chunk = f.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n") + 1  # only whole lines: the agent may be writing the next one
        self.log_read += end
        found = []
        for line in chunk[:end].decode(errors="replace").splitlines():
            fields = logfmt(line)
            if fields.get("msg") == "transition" and "to" in fields:
                found.append((fields["to"], fields.get("reason", "")))
        return found

    def reboots(self) -> int:
        try:
            return len(read_simulated_reboots(self.root / "var/lib/stagger/simulated-reboots"))
        except ValueError:
            return 0

    def log_tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def logfmt(line: str) -> dict[str, str]:
    """The key=value pairs of one agent log line (agent/log.py writes them); {} if garbled."""
    try:
        words = shlex.split(line)
    except ValueError:
        return {}
    return dict(w.split("=", 1) for w in words if "=" in w)


@dataclass
class Snapshot:
    """What the live view shows: every node's state, the holders, the time so far, and the
    moves since the last snapshot (node id, state, reason), in the order they happened."""

    elapsed: float
    nodes: list[tuple[str, str, int, str]]  # id, cycle, reboots, reason
    holders: tuple[str, ...]
    down: int
    server: str
    moves: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Summary:
    nodes: int
    max: int
    rebooted: int  # nodes that rebooted (each exactly once when the demo went right)
    reboots: dict[str, int]
    max_concurrent: int  # the most holds at once, from the server's history
    max_down: int  # the most machines down at once, as the supervisor saw them
    halted: list[str]
    seconds: float
    server: str
    problems: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # not rebooted: stopped behind a halt
    server_kept: bool = False  # --keep-running: the server still answers after the summary

    @property
    def ok(self) -> bool:
        return not self.problems

    def continue_hint(self) -> list[str]:
        """The commands that let the rollout go on; only while the demo's server still runs
        (--keep-running), since a command against a stopped server cannot work."""
        if not self.server_kept:
            return []
        return [
            f"stagger unlock --server {self.server} --group {GROUP} --id {i}" for i in self.halted
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "nodes": self.nodes,
            "max": self.max,
            "rebooted": self.rebooted,
            "reboots": self.reboots,
            "max_concurrent": self.max_concurrent,
            "max_down": self.max_down,
            "halted": self.halted,
            "waiting": self.waiting,
            "seconds": round(self.seconds, 2),
            "server": self.server,
            "continue": self.continue_hint(),
            "ok": self.ok,
            "problems": self.problems,
        }


class DemoFleet:
    def __init__(self, nodes: int, max_: int | None = None, fail_health: str | None = None) -> None:
        if max_ is None:
            max_ = DEFAULT_MAX if fail_health is None else HALT_MAX
        if nodes < 1:
            raise DemoFailed("--nodes must be at least 1")
        if max_ < 1:
            raise DemoFailed("--max must be at least 1, or no node could ever reboot")
        ids = [f"node-{i}" for i in range(1, nodes + 1)]
        if fail_health is not None and fail_health not in ids:
            raise DemoFailed(
                f"--fail-health {fail_health!r} is not one of the demo's nodes: "
                f"use node-1 … node-{nodes}"
            )
        self.max = max_
        self.dir = Path(tempfile.mkdtemp(prefix="stagger-demo-"))
        self.port = 0
        self.server: subprocess.Popen[bytes] | None = None
        self.nodes = [DemoNode(i, self.dir / i, fail_health=i == fail_health) for i in ids]
        self.began = time.monotonic()
        self.max_down = 0
        self.moves: list[tuple[str, str, str]] = []  # not yet shown: node id, state, reason

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend_url(self) -> str:
        return f"fleetlock+{self.url}/"

    # --- start and stop ---------------------------------------------------------------------

    async def start(self) -> None:
        await self._start_server()
        now = datetime.now(UTC)
        for node in self.nodes:
            node.prepare(self.url, now)
        self.began = time.monotonic()
        for node in self.nodes:
            node.start()
            self.moves.append((node.id, "starting", "its agent is starting"))

    async def _start_server(self) -> None:
        log = self.dir / "server.log"
        for _ in range(3):  # the free port may be taken between our look and the bind
            self._spawn_server(log)
            if await self._server_ready():
                return
            self._stop(self.server)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:])
        raise DemoFailed(f"the demo's stagger server did not start; its log ends:\n{tail}")

    def _spawn_server(self, log: Path) -> None:
        self.port = free_port()
        argv = [STAGGER, "server", "--listen", f"127.0.0.1:{self.port}"]
        argv += ["--backend", f"sqlite:///{self.dir}/stagger.db"]
        argv += ["--group", f"{GROUP}={self.max}", "--log-level", "warning"]
        with log.open("ab") as out:
            self.server = subprocess.Popen(
                argv, stdout=out, stderr=out, start_new_session=True, cwd=self.dir
            )

    async def _server_ready(self) -> bool:
        import httpx

        end = time.monotonic() + SERVER_START
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < end:
                if self.server is None or self.server.poll() is not None:
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return True
                await asyncio.sleep(0.1)
        return False

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop every process and remove the temporary directory."""
        for node in self.nodes:
            self._stop(node.proc)
        self._stop(self.server)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- the supervisor ---------------------------------------------------------------------

    def pump(self) -> None:
        """Restart agents after their simulated reboot; fail on any other exit."""
        now = time.monotonic()
        for node in self.nodes:
            if node.down_since is not None:
                if now - node.down_since >= BOOT_TIME:
                    node.boot()
                    node.down_since = None
                    node.start()
                    self.moves.append((node.id, "booting", BOOTING))
                continue
            if node.proc is None:
                continue
            code = node.proc.poll()
            # After poll: a process that has ended has written all of its log.
            self.moves += [(node.id, cycle, why) for cycle, why in node.moves()]
            if code == SIMULATED_REBOOT_EXIT:
                node.down_since = now
                self.moves.append((node.id, "down", DOWN))
            elif code is not None:
                raise DemoFailed(
                    f"{node.id}'s agent ended with exit code {code}; its log ends:\n"
                    f"{node.log_tail()}"
                )
        self.max_down = max(self.max_down, sum(n.down_since is not None for n in self.nodes))

    async def holders(self) -> tuple[str, ...]:
        backend = open_backend(self.backend_url)
        try:
            snap = await backend.status(GROUP)
        finally:
            await backend.close()
        return tuple(h.id for g in snap.groups for h in g.holds)

    async def max_concurrent_holds(self) -> int:
        """The most holds at once in the group, replayed from the server's history."""
        backend = open_backend(self.backend_url)
        try:
            events = await backend.history(GROUP, limit=1000)
        finally:
            await backend.close()
        held: set[str] = set()
        most = 0
        for e in sorted(events, key=lambda e: e.time):
            if e.action is Action.ACQUIRED:
                held.add(e.id)
            elif e.action in (Action.RELEASED, Action.EXPIRED):
                held.discard(e.id)
            most = max(most, len(held))
        return most

    def snapshot(self, holders: tuple[str, ...]) -> Snapshot:
        rows = []
        for node in self.nodes:
            state = node.state()
            cycle = node.cycle()
            reason = str(state.get("reason", ""))
            if cycle == "down":
                reason = DOWN
            elif cycle == "booting":
                reason = BOOTING
            rows.append((node.id, cycle, node.reboots(), reason))
        down = sum(n.down_since is not None for n in self.nodes)
        moves, self.moves = self.moves, []
        return Snapshot(time.monotonic() - self.began, rows, holders, down, self.url, moves)

    def finished(self) -> bool:
        """Every node rebooted and idle, or halted; or the rest wait behind halted nodes that
        hold every slot (the rollout has stopped, as it should)."""
        halted = 0
        waiting = 0
        for node in self.nodes:
            cycle = node.cycle()
            if cycle == "halted":
                halted += 1
            elif cycle == "idle" and node.reboots() >= 1 and node.boots > 1:
                continue
            elif cycle == "waiting":
                waiting += 1
            else:
                return False
        return waiting == 0 or halted >= self.max

    async def summary(self, server_kept: bool = False) -> Summary:
        reboots = {n.id: n.reboots() for n in self.nodes}
        halted = [n.id for n in self.nodes if n.cycle() == "halted"]
        waiting = [i for i, k in reboots.items() if k == 0 and i not in halted]
        most = await self.max_concurrent_holds()
        problems = [f"{i} rebooted {k} times" for i, k in reboots.items() if k > 1]
        if most > self.max:
            problems.append(f"{most} nodes held a slot at once, more than max {self.max}")
        if self.max_down > self.max:
            problems.append(f"{self.max_down} nodes were down at once, more than max {self.max}")
        return Summary(
            nodes=len(self.nodes),
            max=self.max,
            rebooted=sum(1 for k in reboots.values() if k >= 1),
            reboots=reboots,
            max_concurrent=most,
            max_down=self.max_down,
            halted=halted,
            seconds=time.monotonic() - self.began,
            server=self.url,
            problems=problems,
            waiting=waiting,
            server_kept=server_kept,
        )

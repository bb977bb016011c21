"""Real `stagger agent` processes on this machine, one per node, each with its own --root tree
(machine id, boot id file, /run/reboot-required, state), the file detector and the simulated
rebooter. `Fleet.pump` plays the machine: when an agent ends with the simulated reboot's exit
code, it gives the node a new boot id, clears /run (as a reboot does) and starts the agent
again. Hooks and health checks are shell commands that a test holds or breaks with flag files
in the node's root (`Node.flag`). Every wait is bounded by WAIT and polls a condition."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli_support import STAGGER
from stagger.agent.reboot import SIMULATED_REBOOT_EXIT
from stagger.backends.factory import open_backend

WAIT = 30.0  # upper bound of any one wait; the conditions normally hold in well under a second


def config_text(node: Node, backend: str) -> str:
    r = node.root
    return f"""
[agent]
id = "{node.id}"
backend = "{backend}"
rebooter = "simulated"
detectors = ["file"]
boot_id_path = "{r}/boot_id"

[detectors.file]
interval = "100ms"

[hooks]
pre_reboot = [["sh", "-c", "while [ -e {r}/hold-drain ]; do sleep 0.05; done"]]
health = [["sh", "-c", "while [ -e {r}/hold-health ]; do sleep 0.05; done; test ! -e {r}/broken"]]
health_timeout = "{node.health_timeout}"
health_interval = "100ms"

[cycle]
heartbeat = "200ms"
retry = "200ms"
backoff = "300ms"
backoff_max = "1s"
health_recheck = "200ms"
poll = "300ms"
"""


class AgentProcess:
    """A real `stagger agent` process over its own --root tree: start, stop, its log, its saved
    state and its simulated reboots. What a node's supervisor needs, shared by the kinds of node
    the tests build (here and in tests/agent/test_updates_dbus.py); a subclass gives `root`,
    `proc`, `boots` and `log_mark` as fields and says its boot ids (`boot_id`)."""

    root: Path
    proc: subprocess.Popen[bytes] | None
    boots: int
    log_mark: int  # the log's size when the agent was last started

    def boot_id(self, boot: int) -> str:
        raise NotImplementedError

    @property
    def config(self) -> Path:
        return self.root / "agent.toml"

    @property
    def log(self) -> Path:
        return self.root / "agent.log"

    def make_root(self) -> None:
        """The machine's files: etc/machine-id, an empty run/ and the first boot's id."""
        for d in ("etc", "run"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        (self.root / "boot_id").write_text(self.boot_id(self.boots) + "\n")

    def start(self) -> None:
        self.log_mark = self.log.stat().st_size if self.log.exists() else 0
        argv = [STAGGER, "agent", "--config", str(self.config), "--root", str(self.root)]
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env)

    def this_run(self) -> str:
        """The log of the agent's current run."""
        with self.log.open("rb") as f:
            f.seek(self.log_mark)
            return f.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def reboot(self) -> None:
        """What the machine does on a reboot: a new boot id and an empty /run."""
        self.boots += 1
        (self.root / "boot_id").write_text(self.boot_id(self.boots) + "\n")
        shutil.rmtree(self.root / "run")
        (self.root / "run").mkdir()

    def state(self) -> dict[str, Any]:
        """The agent's saved state (var/lib/stagger/agent.json), {} before it wrote one."""
        try:
            doc = json.loads((self.root / "var/lib/stagger/agent.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return dict(doc["state"])

    def cycle(self) -> str:
        return str(self.state().get("cycle", ""))

    def reboots(self) -> list[str]:
        try:
            return (self.root / "var/lib/stagger/simulated-reboots").read_text().splitlines()
        except FileNotFoundError:
            return []


@dataclass
class Node(AgentProcess):
    id: str
    root: Path
    backend: str
    proc: subprocess.Popen[bytes] | None = None
    boots: int = 1
    killed: bool = False
    log_mark: int = 0
    # Short, so that a broken check halts the node at once; a held check (hold-health) then
    # fails too when it runs over, so a test that holds VERIFYING sets it long.
    health_timeout: str = "300ms"

    def __post_init__(self) -> None:
        self.make_root()
        self.configure()

    def boot_id(self, boot: int) -> str:
        return f"{self.id}-boot-{boot}"

    def configure(self, health_timeout: str | None = None) -> None:
        """Write the agent's config; the agent reads it at its next start."""
        if health_timeout is not None:
            self.health_timeout = health_timeout
        self.config.write_text(config_text(self, self.backend))

    def start(self) -> None:
        super().start()
        self.killed = False

    def sigkill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.killed = True

    def need_reboot(self) -> None:
        (self.root / "run/reboot-required").write_text("")

    def flag(self, name: str, on: bool) -> None:
        path = self.root / name
        if on:
            path.write_text("")
        else:
            path.unlink(missing_ok=True)


@dataclass
class Fleet:
    backend: str
    nodes: list[Node] = field(default_factory=list)

    def pump(self) -> None:
        """The supervisor: restart an agent after its simulated reboot; fail on a crash."""
        for node in self.nodes:
            if node.proc is None or node.killed:
                continue
            code = node.proc.poll()
            if code == SIMULATED_REBOOT_EXIT:
                node.reboot()
                node.start()
            elif code is not None:
                raise AssertionError(f"{node.id} ended with {code}:\n{node.log.read_text()}")

    def wait(self, what: str, cond: Callable[[], bool]) -> None:
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            self.pump()
            if cond():
                return
            time.sleep(0.05)
        logs = "\n".join(f"--- {n.id}\n{n.log.read_text()}" for n in self.nodes if n.log.exists())
        raise AssertionError(f"gave up waiting for {what}\n{logs}")

    def holders(self) -> tuple[str, ...]:
        return asyncio.run(_holders(self.backend))

    def history(self) -> list[tuple[str, str]]:
        return asyncio.run(_history(self.backend))


async def _holders(url: str) -> tuple[str, ...]:
    backend = open_backend(url)
    try:
        snap = await backend.status("default")
    finally:
        await backend.close()
    return tuple(h.id for g in snap.groups for h in g.holds)


async def _history(url: str) -> list[tuple[str, str]]:
    backend = open_backend(url)
    try:
        events = await backend.history("default", limit=1000)
    finally:
        await backend.close()
    # Oldest first in the store's order: events written together (etcd's group commit: a
    # release and the acquire it lets through) share one time, and their order is the store's.
    return [(e.action.value, e.id) for e in sorted(reversed(events), key=lambda e: e.time)]

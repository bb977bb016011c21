"""SIGKILL a real `stagger agent` in the brief states of its cycle and start it again.

test_agent_e2e.py kills agents in WAITING, DRAINING, VERIFYING and HALTED; this file covers the
states an agent normally passes through in an instant: ACQUIRING, REBOOTING and RELEASING. Each
is held open by something real, never by a change to the agent:
- REBOOTING: `[reboot] delay`. The state is saved before the Reboot action, and the rebooter
  then waits before the (simulated) reboot.
- ACQUIRING and RELEASING: the test takes the SQLite file's write lock on its own connection
  (`BEGIN EXCLUSIVE`); the agent's acquire or release waits for it (the backend's busy
  timeout). Reads go on meanwhile (WAL), so the agent still sees the pause.
One node, max 1, the SQLite backend, the supervisor and helpers of test_agent_e2e.py. Every wait
is bounded and polls a condition: the saved state, a log line or the node's report.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_support import WAIT, Fleet, Node, config_text
from stagger.backends.factory import open_backend

# The e2e config's heartbeat; a node here may set a longer one.
E2E_HEARTBEAT = 'heartbeat = "200ms"'


@dataclass
class CrashNode(Node):
    """agent_support's node with two more settings: a delay before its reboot, and its
    heartbeat (a heartbeat is a write, so a node that must not write while the test holds the
    lock sets a long one)."""

    reboot_delay: str = "0s"
    heartbeat: str = "200ms"

    def configure(self, health_timeout: str | None = None, reboot_delay: str | None = None) -> None:
        if health_timeout is not None:
            self.health_timeout = health_timeout
        if reboot_delay is not None:
            self.reboot_delay = reboot_delay
        text = config_text(self, self.backend)
        assert E2E_HEARTBEAT in text, "agent_support's config changed: update this file"
        text = text.replace(E2E_HEARTBEAT, f'heartbeat = "{self.heartbeat}"')
        text += f'\n[reboot]\ndelay = "{self.reboot_delay}"\n'
        (self.root / "agent.toml").write_text(text)


@dataclass
class Setup:
    node: CrashNode
    fleet: Fleet
    db: Path

    def reported(self) -> str | None:
        """The cycle in the node's last report, as the backend stores it."""
        return asyncio.run(_reported(self.fleet.backend, self.node.id))

    def log_text(self) -> str:
        return self.node.log.read_text()


async def _reported(url: str, node_id: str) -> str | None:
    backend = open_backend(url)
    try:
        reports = await backend.nodes("default")
    finally:
        await backend.close()
    return next((r.state.value for r in reports if r.id == node_id), None)


def make_setup(
    tmp_path: Path,
    *,
    reboot_delay: str = "0s",
    heartbeat: str = "200ms",
    health_timeout: str = "300ms",
) -> Iterator[Setup]:
    db = tmp_path / "stagger.db"
    url = f"sqlite:///{db}"
    node = CrashNode(
        "node-1",
        tmp_path / "node-1",
        url,
        health_timeout=health_timeout,
        reboot_delay=reboot_delay,
        heartbeat=heartbeat,
    )
    yield Setup(node, Fleet(url, [node]), db)
    node.stop()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Setup]:
    yield from make_setup(tmp_path)


@contextmanager
def write_lock(db: Path) -> Iterator[None]:
    """Hold the SQLite file's write lock: every write by anyone else waits until it is let go."""
    conn = sqlite3.connect(db, timeout=WAIT, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def one_cycle(node_id: str) -> list[tuple[str, str]]:
    """The history of one slot taken once and given back once."""
    return [("acquired", node_id), ("released", node_id)]


@pytest.fixture
def slow_to_reboot(tmp_path: Path) -> Iterator[Setup]:
    """A node whose rebooter waits a minute before the reboot."""
    yield from make_setup(tmp_path, reboot_delay="60s")


def test_sigkill_while_rebooting_drains_again_and_reboots_once_keeping_the_slot(
    slow_to_reboot: Setup,
) -> None:
    s = slow_to_reboot
    a, fleet = s.node, s.fleet
    a.need_reboot()
    a.start()
    # The state is saved before the reboot is asked for; the delay then holds it there.
    fleet.wait(
        "a waiting to reboot",
        lambda: a.cycle() == "rebooting" and "msg=rebooting" in a.this_run(),
    )
    a.sigkill()
    assert a.cycle() == "rebooting"
    assert a.reboots() == []
    assert a.state()["needed"] is not None
    assert fleet.holders() == ("node-1",)

    # Same boot id: the reboot never happened, so the agent drains again and reboots (now
    # without the delay); the slot is kept and given back after health passed.
    a.configure(reboot_delay="0s")
    a.start()
    fleet.wait("a rebooted and idle", lambda: a.boots == 2 and a.cycle() == "idle")
    log = s.log_text()
    assert "state=rebooting boot=Restarted" in log
    assert "from=rebooting to=draining event=Restarted" in log
    assert len(a.reboots()) == 1
    assert '"boot_id": "node-1-boot-1"' in a.reboots()[0]
    health = a.state()["last_health"]
    assert isinstance(health, dict)
    assert health["ok"] is True  # the slot went back after health passed
    assert fleet.holders() == ()
    assert fleet.history() == one_cycle("node-1")


def test_sigkill_while_acquiring_asks_again_and_takes_one_slot_once(fresh: Setup) -> None:
    a, fleet = fresh.node, fresh.fleet
    a.start()
    # Its start-up writes (schema, first report) are done before the lock is taken.
    fleet.wait("a idle and reported", lambda: a.cycle() == "idle" and fresh.reported() == "idle")
    with write_lock(fresh.db):
        a.need_reboot()
        fleet.wait("a asking for a slot", lambda: a.cycle() == "acquiring")
        a.sigkill()
    assert a.cycle() == "acquiring"
    assert a.state()["needed"] is not None
    assert fleet.holders() == ()  # the request never reached the store

    a.start()
    fleet.wait("a rebooted and idle", lambda: a.boots == 2 and a.cycle() == "idle")
    assert "state=acquiring boot=Restarted" in fresh.log_text()
    assert len(a.reboots()) == 1
    assert fleet.holders() == ()
    assert fleet.history() == one_cycle("node-1")


@pytest.fixture
def held_in_verifying(tmp_path: Path) -> Iterator[Setup]:
    """A node past its reboot, whose health check is held; no heartbeat writes meanwhile."""
    yield from make_setup(tmp_path, health_timeout=f"{WAIT:g}s", heartbeat="10m")


def test_sigkill_while_releasing_releases_once_without_a_second_reboot(
    held_in_verifying: Setup,
) -> None:
    s = held_in_verifying
    a, fleet = s.node, s.fleet
    a.flag("hold-health", True)
    a.need_reboot()
    a.start()
    fleet.wait("a verifying after its reboot", lambda: a.boots == 2 and a.cycle() == "verifying")
    # Its writes after the reboot (schema check, the report of VERIFYING) are done first.
    fleet.wait("a reported verifying", lambda: s.reported() == "verifying")
    with write_lock(s.db):
        a.flag("hold-health", False)
        fleet.wait("a giving its slot back", lambda: a.cycle() == "releasing")
        a.sigkill()
    assert a.cycle() == "releasing"
    assert fleet.holders() == ("node-1",)  # the release never reached the store

    a.start()  # same boot: a restart, not a reboot
    fleet.wait("a idle", lambda: a.cycle() == "idle")
    assert "state=releasing boot=Restarted" in s.log_text()
    assert a.boots == 2
    assert len(a.reboots()) == 1
    assert fleet.holders() == ()
    assert fleet.history() == one_cycle("node-1")

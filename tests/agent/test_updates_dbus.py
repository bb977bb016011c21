"""Updates on real parts: a private `dbus-daemon`, the stand-in `com.coreos.update1` (its own
process, AttemptUpdate walking the real status sequence with real `StatusUpdate(xdssx)`
signals), real `stagger agent` processes with the simulated rebooter on SQLite, and
`stagger update-now` through the agent's control socket.

A small supervisor here plays the machine (agent_support.py's agent process): when the agent
ends with the simulated reboot's exit code it gives the node a new boot id, clears /run, puts
the stand-in back to IDLE (update_engine's NEED_REBOOT marker lives in /run) and starts the agent
again. Every wait is bounded and polls a condition; nothing is timed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent_support import STAGGER, WAIT, AgentProcess
from dbus_support import PrivateBus, StandIn
from stagger.agent.control import ControlUnavailable, ask
from stagger.agent.reboot import SIMULATED_REBOOT_EXIT
from stagger.agent.updaters.update_engine import UpdateEngineUpdater
from stagger.cli.explain import PAUSED_UPDATES
from stagger.core.updates import Outcome

# --- the stand-in's lines -----------------------------------------------------------------------


class Heard:
    """Every line the stand-in prints, read by a thread (it also answers our commands)."""

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for _ in range(100_000):  # bounded: ends at the stand-in's end of output
            if not self.standin.line() and self.standin.proc.poll() is not None:
                return

    @property
    def lines(self) -> list[str]:
        return list(self.standin.lines)

    def attempts(self) -> list[str]:
        return [line for line in self.lines if line.startswith("attempt")]

    def wait(self, what: str, cond: Callable[[list[str]], bool]) -> None:
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            if cond(self.lines):
                return
            time.sleep(0.02)
        raise AssertionError(f"the stand-in never {what}: {self.lines!r}")

    def command(self, text: str, answer: str) -> None:
        count = self.lines.count(answer)
        self.standin.send(text)
        self.wait(f"answered {text!r}", lambda lines: lines.count(answer) > count)


@pytest.fixture
def engine(fake_update_engine: StandIn) -> Heard:
    return Heard(fake_update_engine)


# --- the updater alone --------------------------------------------------------------------------


async def test_an_attempt_from_idle_walks_to_updated_need_reboot(
    dbus_bus: PrivateBus, engine: Heard
) -> None:
    steps: list[str] = []
    result = await UpdateEngineUpdater(dbus_bus.address, timeout=20).attempt(steps.append)
    assert result.outcome is Outcome.OK
    assert "applied 3602.2.0" in result.detail
    assert steps[:3] == ["status IDLE", "AttemptUpdate called", "status CHECKING_FOR_UPDATE"]
    assert "status DOWNLOADING 50%" in steps
    assert steps[-2:] == ["status FINALIZING 3602.2.0", "status UPDATED_NEED_REBOOT 3602.2.0"]
    assert engine.attempts() == ["attempt update"]


async def test_an_error_event_is_a_failed_attempt(dbus_bus: PrivateBus, engine: Heard) -> None:
    await asyncio.to_thread(engine.command, "next-attempt error", "scripted")
    result = await UpdateEngineUpdater(dbus_bus.address, timeout=20).attempt()
    assert result.outcome is Outcome.FAILED
    assert result.detail == (
        "update_engine reported an error (CHECKING_FOR_UPDATE → REPORTING_ERROR_EVENT → IDLE)"
    )


async def test_no_update_available_is_ok_with_nothing_applied(
    dbus_bus: PrivateBus, engine: Heard
) -> None:
    await asyncio.to_thread(engine.command, "next-attempt none", "scripted")
    result = await UpdateEngineUpdater(dbus_bus.address, timeout=20).attempt()
    assert result.outcome is Outcome.OK
    assert "found no update" in result.detail


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("UPDATE_STATUS_DOWNLOADING", "busy (DOWNLOADING)"),
        ("UPDATE_STATUS_UPDATED_NEED_REBOOT", "waits for a reboot"),
    ],
)
async def test_attempt_update_is_not_called_outside_idle(
    dbus_bus: PrivateBus, engine: Heard, status: str, words: str
) -> None:
    await asyncio.to_thread(engine.command, f"status {status}", "emitted")
    result = await UpdateEngineUpdater(dbus_bus.address, timeout=20).attempt()
    assert result.outcome is Outcome.SKIPPED
    assert words in result.detail
    await asyncio.to_thread(engine.command, "next-attempt update", "scripted")  # a barrier
    assert engine.attempts() == []  # neither an attempt nor a skipped call reached it


async def test_an_attempt_that_never_ends_is_failed_at_the_timeout(
    dbus_bus: PrivateBus, engine: Heard
) -> None:
    await asyncio.to_thread(engine.command, "next-attempt hang", "scripted")
    result = await UpdateEngineUpdater(dbus_bus.address, timeout=0.5).attempt()
    assert result.outcome is Outcome.FAILED
    assert "no final status within 0.5s (last: CHECKING_FOR_UPDATE)" in result.detail


async def test_no_update_engine_on_the_bus_is_a_failed_attempt(dbus_bus: PrivateBus) -> None:
    result = await UpdateEngineUpdater(dbus_bus.address, timeout=5).attempt()
    assert result.outcome is Outcome.FAILED
    assert "ServiceUnknown" in result.detail or "NameHasNoOwner" in result.detail


# --- a real agent -------------------------------------------------------------------------------


def closed_window_day() -> str:
    """A day whose window (00:00 for 1h, UTC) is surely closed now."""
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(datetime.now(UTC).weekday() + 3) % 7]


@dataclass
class Node(AgentProcess):
    root: Path
    bus: str
    engine: Heard
    updates: str = 'interval = "1s"\njitter = 0'
    strategy: str = "lock"
    proc: subprocess.Popen[bytes] | None = None
    boots: int = 1
    log_mark: int = 0
    reboot_hook: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.make_root()
        self.write_config()

    def boot_id(self, boot: int) -> str:
        return f"boot-{boot}"

    def write_config(self) -> None:
        r = self.root
        self.config.write_text(f"""
[agent]
id = "node-1"
backend = "sqlite:///{r}/stagger.db"
strategy = "{self.strategy}"
rebooter = "simulated"
detectors = ["update_engine"]
boot_id_path = "{r}/boot_id"

[detectors.update_engine]
bus_address = "{self.bus}"
reconnect = "100ms"

[hooks]
pre_reboot = [["sh", "-c", "while [ -e {r}/hold-drain ]; do sleep 0.05; done"]]
health_interval = "100ms"

[cycle]
heartbeat = "200ms"
retry = "200ms"
backoff = "300ms"
poll = "300ms"

[updates]
updater = "update_engine"
timeout = "20s"
{self.updates}
""")

    def pump(self) -> None:
        """The machine: after a simulated reboot, a new boot with an empty /run, in which
        update_engine starts IDLE; a crash fails the test."""
        if self.proc is None:
            return
        code = self.proc.poll()
        if code == SIMULATED_REBOOT_EXIT:
            self.reboot()
            if self.reboot_hook is not None:
                self.reboot_hook()
            self.engine.command("status UPDATE_STATUS_IDLE 0.0.0", "emitted")
            self.start()
        elif code is not None:
            raise AssertionError(f"the agent ended with {code}:\n{self.log.read_text()}")

    def wait(self, what: str, cond: Callable[[], bool]) -> None:
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            self.pump()
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"gave up waiting for {what}\n{self.log.read_text()}")

    def last_update(self) -> dict[str, Any]:
        return dict((self.state().get("updates") or {}).get("last") or {})

    def attempts_logged(self) -> list[str]:
        return [
            line for line in self.log.read_text().splitlines() if 'msg="update attempt"' in line
        ]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [STAGGER, *args, "--config", str(self.config), "--root", str(self.root)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A root short enough for its control socket path (a unix socket path is < 108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="stg-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def node(short_root: Path, dbus_bus: PrivateBus, engine: Heard) -> Iterator[Node]:
    n = Node(short_root, dbus_bus.address, engine)
    yield n
    n.stop()


def test_the_schedule_applies_an_update_the_node_reboots_into_it_then_looks_for_the_next(
    node: Node,
) -> None:
    node.engine.command("next-attempt update 3602.2.0", "scripted")
    (node.root / "hold-drain").write_text("")
    node.start()
    node.engine.wait("was asked for an update", lambda lines: "attempt update" in lines)
    # The detector hears UPDATED_NEED_REBOOT and the node enters its cycle; its drain is held
    # for several update intervals: no attempt while the reboot is pending.
    node.wait("the node draining", lambda: node.cycle() == "draining")
    assert node.state()["needed"]["detector"] == "update_engine"
    assert node.last_update()["outcome"] == "ok"
    assert "applied 3602.2.0" in node.last_update()["detail"]
    held_since = time.monotonic()
    node.wait("three update intervals", lambda: time.monotonic() - held_since > 3.2)
    assert len(node.attempts_logged()) == 1
    assert node.engine.attempts() == ["attempt update"]

    # The reboot; after it update_engine is IDLE, and the next attempt finds nothing new.
    node.reboot_hook = lambda: node.engine.command("next-attempt none", "scripted")
    (node.root / "hold-drain").unlink()
    node.wait("rebooted, released and idle", lambda: node.boots == 2 and node.cycle() == "idle")
    node.engine.wait("was asked again after the reboot", lambda lines: "attempt none" in lines)
    node.wait("the second attempt recorded", lambda: "found no update" in str(node.last_update()))
    assert len(node.reboots()) == 1
    assert node.engine.attempts() == ["attempt update", "attempt none"]
    assert 'msg="update progress"' in node.log.read_text()  # DOWNLOADING n% reached the log


def test_an_updater_error_is_recorded_and_retried_at_the_next_interval(node: Node) -> None:
    node.engine.command("next-attempt error", "scripted")
    node.start()
    node.wait("a failed attempt recorded", lambda: node.last_update().get("outcome") == "failed")
    first = node.last_update()
    assert "reported an error" in first["detail"]
    assert node.state()["updates"]["failures"] == 1
    planned = datetime.fromisoformat(node.state()["updates"]["next_attempt"])
    ended = datetime.fromisoformat(first["at"]) + timedelta(seconds=first["seconds"])
    assert planned == ended + timedelta(seconds=1)  # the interval, jitter 0
    assert "outcome=failed" in node.log.read_text()

    node.engine.command("next-attempt none", "scripted")
    node.wait("the retry recorded", lambda: node.last_update().get("outcome") == "ok")
    second = node.last_update()
    assert datetime.fromisoformat(second["at"]) >= planned
    assert node.state()["updates"]["failures"] == 0
    assert node.engine.attempts() == ["attempt error", "attempt none"]
    assert node.cycle() == "idle"  # no update, no reboot


def test_a_pause_stops_the_reboot_but_not_the_update(node: Node) -> None:
    db = f"sqlite:///{node.root}/stagger.db"
    paused = subprocess.run(
        [STAGGER, "pause", "--backend", db, "--reason", "year-end freeze"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert paused.returncode == 0, paused.stderr
    node.start()
    node.engine.wait("was asked for an update", lambda lines: "attempt update" in lines)
    node.wait("the update applied", lambda: node.last_update().get("outcome") == "ok")
    node.wait("the node waiting", lambda: node.cycle() == "waiting")
    assert "paused" in str(node.state()["reason"])
    explained = json.loads(node.cli("explain", "--json").stdout)
    assert explained["updates"]["while_paused"] == PAUSED_UPDATES
    assert explained["updates"]["next"]["verdict"] == "blocked"  # its reboot comes first
    human = node.cli("explain").stdout
    assert PAUSED_UPDATES in human
    assert node.reboots() == []


def test_update_now_goes_through_the_agents_control_socket(node: Node) -> None:
    # A closed update window keeps the schedule from asking on its own.
    node.updates = (
        'interval = "1h"\njitter = 0\n[[updates.window]]\n'
        f'days = ["{closed_window_day()}"]\nstart = "00:00"\nlength = "1h"\ntime_zone = "UTC"'
    )
    node.write_config()
    node.engine.command("next-attempt none", "scripted")
    node.start()
    socket = node.root / "run/stagger/control.sock"
    node.wait("the control socket", socket.exists)
    status = asyncio.run(ask(socket, {"op": "status"}, 10))
    assert status["updates"]["decision"]["verdict"] == "wait"
    assert "update windows" in status["updates"]["decision"]["reason"]
    assert node.engine.attempts() == []

    done = node.cli("update-now", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["via"], doc["attempt"]["outcome"]) == ("agent", "ok")
    assert "found no update" in doc["attempt"]["detail"]
    assert node.engine.attempts() == ["attempt none"]
    assert "trigger=update-now" in node.log.read_text()
    assert node.last_update()["trigger"] == "update-now"

    explained = json.loads(node.cli("explain", "--json").stdout)
    assert explained["updates"]["last"]["outcome"] == "ok"
    assert explained["updates"]["next"]["verdict"] == "wait"


def test_update_now_is_refused_while_a_reboot_is_pending(node: Node) -> None:
    node.strategy = "off"  # the need is recorded, the node never reboots: it stays pending
    node.updates = 'interval = "1h"\njitter = 0'  # only the first attempt comes by itself
    node.write_config()
    node.engine.command("next-attempt none", "scripted")
    node.start()
    node.wait("the first scheduled attempt", lambda: bool(node.last_update()))
    need = node.cli("need-reboot", "--reason", "kernel CVE")
    assert need.returncode == 0, need.stderr
    node.wait("the need recorded", lambda: node.state().get("needed") is not None)
    refused = node.cli("update-now", "--json")
    assert refused.returncode == 1
    doc = json.loads(refused.stdout)
    assert (doc["via"], doc["ok"], doc["verdict"]) == ("agent", False, "blocked")
    assert "while a reboot is pending" in doc["error"]
    assert node.engine.attempts() == ["attempt none"]


def test_without_an_agent_update_now_acts_directly_and_records_it(short_root: Path) -> None:
    config = short_root / "c.toml"
    config.write_text(
        '[updates]\nupdater = "command"\ncommand = ["sh", "-c", "echo Reading; echo 0 upgraded"]\n'
    )
    with pytest.raises(ControlUnavailable):
        asyncio.run(ask(short_root / "run/stagger/control.sock", {"op": "status"}, 5))
    argv = [STAGGER, "update-now", "--config", str(config), "--root", str(short_root), "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["via"], doc["attempt"]["outcome"]) == ("direct", "ok")
    assert doc["attempt"]["output"] == ["Reading", "0 upgraded"]
    saved = json.loads((short_root / "var/lib/stagger/agent.json").read_text())
    assert saved["state"]["updates"]["last"]["trigger"] == "update-now"


def test_update_now_does_nothing_when_updates_are_disabled(short_root: Path) -> None:
    config = short_root / "c.toml"
    config.write_text(
        f'[updates]\nupdater = "command"\nenabled = false\n'
        f'command = ["touch", "{short_root}/ran"]\n'
    )
    argv = [STAGGER, "update-now", "--config", str(config), "--root", str(short_root)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "enabled = false" in done.stderr
    assert not (short_root / "ran").exists()

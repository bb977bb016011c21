"""Three real `stagger agent` processes, max 1, on SQLite and on etcd.

Each node has its own --root tree (machine id, boot id file, /run/reboot-required, state), the
file detector and the simulated rebooter. A small supervisor here plays the machine: when an
agent ends with the simulated reboot's exit code, it gives the node a new boot id, clears /run
(as a reboot does) and starts the agent again. Hooks and health checks are shell commands that
the test holds or breaks with flag files in the node's root, so each state can be held open
long enough to SIGKILL the agent in it. Every wait is bounded and polls a condition.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stagger.agent.reboot import SIMULATED_REBOOT_EXIT
from stagger.backends.factory import open_backend
from stagger.core.semaphore import Action

STAGGER = str(Path(sys.executable).with_name("stagger"))
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


@dataclass
class Node:
    id: str
    root: Path
    backend: str
    proc: subprocess.Popen[bytes] | None = None
    boots: int = 1
    killed: bool = False
    log_mark: int = 0  # the log's size when the agent was last started
    # Short, so that a broken check halts the node at once; a held check (hold-health) then
    # fails too when it runs over, so a test that holds VERIFYING sets it long.
    health_timeout: str = "300ms"

    def __post_init__(self) -> None:
        (self.root / "etc").mkdir(parents=True)
        (self.root / "run").mkdir()
        (self.root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        (self.root / "boot_id").write_text(f"{self.id}-boot-1\n")
        self.configure()

    def configure(self, health_timeout: str | None = None) -> None:
        """Write the agent's config; the agent reads it at its next start."""
        if health_timeout is not None:
            self.health_timeout = health_timeout
        (self.root / "agent.toml").write_text(config_text(self, self.backend))

    @property
    def log(self) -> Path:
        return self.root / "agent.log"

    def start(self) -> None:
        self.log_mark = self.log.stat().st_size if self.log.exists() else 0
        cfg = str(self.root / "agent.toml")
        argv = [STAGGER, "agent", "--config", cfg, "--root", str(self.root)]
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env)
        self.killed = False

    def this_run(self) -> str:
        """The log of the agent's current run."""
        with self.log.open("rb") as f:
            f.seek(self.log_mark)
            return f.read().decode(errors="replace")

    def sigkill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.killed = True

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
        (self.root / "boot_id").write_text(f"{self.id}-boot-{self.boots}\n")
        shutil.rmtree(self.root / "run")
        (self.root / "run").mkdir()

    def need_reboot(self) -> None:
        (self.root / "run/reboot-required").write_text("")

    def flag(self, name: str, on: bool) -> None:
        path = self.root / name
        if on:
            path.write_text("")
        else:
            path.unlink(missing_ok=True)

    def state(self) -> dict[str, object]:
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


@pytest.fixture
def fleet(any_backend_url: str, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(any_backend_url)
    f.nodes = [Node(f"node-{i}", tmp_path / f"node-{i}", any_backend_url) for i in (1, 2, 3)]
    yield f
    for node in f.nodes:
        node.stop()


def denied(node: Node) -> bool:
    """The node is waiting after a denied slot request. A node that is refused asks again
    every `retry`, so it is read in ACQUIRING now and then: tests wait for this, bounded."""
    state = node.state()
    return state.get("cycle") == "waiting" and "no slot" in str(state.get("reason"))


def max_concurrent_holds(history: list[tuple[str, str]]) -> int:
    held: set[str] = set()
    most = 0
    for action, node_id in history:
        if action == Action.ACQUIRED.value:
            held.add(node_id)
        elif action in (Action.RELEASED.value, Action.EXPIRED.value):
            held.discard(node_id)
        most = max(most, len(held))
    return most


def test_a_rollout_survives_sigkill_in_every_state_and_a_halted_node_stops_it_until_fixed(
    fleet: Fleet,
) -> None:
    a, b, c = fleet.nodes
    # a goes first and is held in its drain; b and c then need a reboot and must wait.
    a.flag("hold-drain", True)
    a.need_reboot()
    a.start()
    fleet.wait("a draining", lambda: a.cycle() == "draining")
    assert fleet.holders() == ("node-1",)
    for n in (b, c):
        n.need_reboot()
        n.start()
    fleet.wait("b and c denied a slot", lambda: denied(b) and denied(c))

    # SIGKILL while WAITING: the need is not lost and no slot is taken.
    b.sigkill()
    b.start()
    # The log line comes before the state is saved: wait for both.
    fleet.wait("b denied again", lambda: "event=SlotDenied" in b.this_run() and denied(b))

    # SIGKILL while DRAINING: same boot, so no reboot happened; the slot is still a's.
    a.sigkill()
    assert a.cycle() == "draining"
    a.start()
    fleet.wait("a draining again", lambda: a.cycle() == "draining" and a.boots == 1)
    assert fleet.holders() == ("node-1",)

    # a reboots; its health check is held: SIGKILL while VERIFYING keeps the slot. The held
    # check must not run over its time limit meanwhile (that would halt a): a long one.
    a.configure(health_timeout=f"{WAIT:g}s")
    a.flag("hold-health", True)
    a.flag("hold-drain", False)
    fleet.wait("a verifying after its reboot", lambda: a.boots == 2 and a.cycle() == "verifying")
    a.sigkill()
    a.start()
    fleet.wait("a checking health again", lambda: "boot=Restarted" in a.this_run())
    assert a.cycle() == "verifying"
    assert fleet.holders() == ("node-1",)

    # Its health check fails: HALTED with the slot kept; b and c wait. (Restarted with a short
    # time limit, so the failing check halts it at once; still verifying, still the same boot.)
    a.flag("broken", True)
    a.flag("hold-health", False)
    a.configure(health_timeout="300ms")
    a.sigkill()
    a.start()
    fleet.wait("a halted", lambda: a.cycle() == "halted")
    assert a.boots == 2
    a.sigkill()
    a.start()
    fleet.wait("a restarted", lambda: "boot=Restarted" in a.this_run())
    fleet.wait("a's health failing again", lambda: "msg=halted" in a.this_run())
    assert a.cycle() == "halted"
    assert fleet.holders() == ("node-1",)
    assert b.reboots() == c.reboots() == []
    # b and c keep asking (waiting, then acquiring for an instant, then denied): they never
    # get further, and each is denied again while a is halted.
    assert {b.cycle(), c.cycle()} <= {"waiting", "acquiring"}
    fleet.wait("b and c denied while a is halted", lambda: denied(b) and denied(c))
    assert fleet.holders() == ("node-1",)

    # Fixing the check lets a release and the rollout go on, one node at a time.
    a.flag("broken", False)
    fleet.wait(
        "every node rebooted and idle",
        lambda: all(n.boots == 2 and n.cycle() == "idle" for n in fleet.nodes),
    )
    assert fleet.holders() == ()
    assert [len(n.reboots()) for n in fleet.nodes] == [1, 1, 1]
    history = fleet.history()
    assert max_concurrent_holds(history) == 1
    assert sorted(i for act, i in history if act == "acquired") == ["node-1", "node-2", "node-3"]


def test_an_operator_unlock_of_a_halted_node_lets_the_rollout_go_on(fleet: Fleet) -> None:
    a, b, c = fleet.nodes
    a.flag("broken", True)
    a.need_reboot()
    a.start()
    fleet.wait("a halted", lambda: a.cycle() == "halted")
    for n in (b, c):
        n.need_reboot()
        n.start()
    fleet.wait("b and c denied a slot", lambda: denied(b) and denied(c))
    assert fleet.holders() == ("node-1",)

    subprocess.run(
        [STAGGER, "unlock", "--id", "node-1", "--backend", fleet.backend],
        check=True,
        capture_output=True,
    )
    fleet.wait("a noticed the unlock", lambda: "released_by_operator" in a.log.read_text())
    fleet.wait(
        "b and c rebooted and idle",
        lambda: all(n.boots == 2 and n.cycle() == "idle" for n in (b, c)),
    )
    assert a.cycle() == "idle"
    assert a.state()["holds_slot"] is False
    assert fleet.holders() == ()
    assert max_concurrent_holds(fleet.history()) == 1


@pytest.fixture
def lone(tmp_path: Path) -> Iterator[Node]:
    node = Node("node-1", tmp_path / "node-1", f"sqlite:///{tmp_path}/stagger.db")
    yield node
    node.stop()


def first_notification(node: Node, tmp_path: Path, **env: str) -> str:
    """Start the node's agent as systemd would (NOTIFY_SOCKET) and return its first message."""
    import socket

    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(WAIT)
    cfg = str(node.root / "agent.toml")
    with node.log.open("ab") as out:
        node.proc = subprocess.Popen(
            [STAGGER, "agent", "--config", cfg, "--root", str(node.root)],
            stdout=out,
            stderr=out,
            env={**os.environ, "NOTIFY_SOCKET": address, **env},
        )
    try:
        return sock.recv(4096).decode()
    finally:
        sock.close()


def test_under_systemd_the_agent_notifies_ready_logs_without_timestamps_and_stops_on_sigterm(
    lone: Node, tmp_path: Path
) -> None:
    message = first_notification(lone, tmp_path, JOURNAL_STREAM="8:1234")
    assert "READY=1" in message.splitlines()
    assert "STATUS=idle: " in message
    lone.proc.send_signal(signal.SIGTERM)
    assert lone.proc.wait(WAIT) == 0
    lines = lone.log.read_text().splitlines()
    assert lines[0].startswith("msg=started ")
    assert lines[-1] == "msg=stopped state=idle"


def test_an_unconfigured_agent_says_so_in_its_systemd_status_line_even_when_idle(
    lone: Node, tmp_path: Path
) -> None:
    cfg = lone.root / "agent.toml"
    cfg.write_text(cfg.read_text().replace(f'backend = "{lone.backend}"\n', ""))
    message = first_notification(lone, tmp_path)
    assert "READY=1" in message.splitlines()
    status = next(line for line in message.splitlines() if line.startswith("STATUS="))
    assert status.startswith("STATUS=idle: no reboot is needed (not configured: ")
    assert "[agent] backend" in status


def test_a_dry_run_decides_and_logs_but_never_takes_a_slot(lone: Node) -> None:
    lone.need_reboot()
    cfg = str(lone.root / "agent.toml")
    done = subprocess.run(
        [STAGGER, "agent", "--config", cfg, "--root", str(lone.root), "--dry-run", "--once"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert "msg=dry_run" in done.stderr
    assert lone.cycle() == "waiting"
    assert Fleet(lone.backend).holders() == ()
    assert lone.reboots() == []


def test_the_disabled_flag_is_reported_and_the_node_never_reboots(lone: Node) -> None:
    (lone.root / "etc/stagger").mkdir(parents=True)
    (lone.root / "etc/stagger/disabled").write_text("")
    lone.need_reboot()
    cfg = str(lone.root / "agent.toml")
    done = subprocess.run(
        [STAGGER, "agent", "--config", cfg, "--root", str(lone.root), "--once"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert "to=disabled" in done.stderr
    assert lone.cycle() == "disabled"
    assert lone.state()["needed"] is not None
    assert Fleet(lone.backend).holders() == ()
    assert lone.reboots() == []


def run_cli(node: Node, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`stagger COMMAND --config <the node's> --root <the node's> ARGS`, to its end."""
    cfg = str(node.root / "agent.toml")
    argv = [STAGGER, command, "--config", cfg, "--root", str(node.root), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=WAIT)


def test_an_agent_nobody_configured_reports_the_need_and_never_reboots(lone: Node) -> None:
    """No `[agent] backend` written: the default would be a SQLite file on the host itself,
    coordinated with no one, so the agent says what to configure and never reboots."""
    cfg = lone.root / "agent.toml"
    text = cfg.read_text()
    assert f'backend = "{lone.backend}"\n' in text
    cfg.write_text(text.replace(f'backend = "{lone.backend}"\n', ""))
    lone.need_reboot()
    done = run_cli(lone, "agent", "--once")
    assert done.returncode == 0, done.stderr
    assert 'msg="not configured"' in done.stderr
    assert "no backend is configured" in done.stderr  # the transition's reason, in the journal
    assert lone.cycle() == "waiting"
    assert "[agent] backend" in lone.state()["reason"]
    assert lone.reboots() == []
    # Its default SQLite file went under --root, like every default path; no slot was taken.
    local = f"sqlite:///{lone.root}/var/lib/stagger/stagger.db"
    assert Fleet(local).holders() == ()
    explained = run_cli(lone, "explain", "--json")
    assert explained.returncode == 0, explained.stderr
    doc = json.loads(explained.stdout)
    assert doc["decision"]["reason"] == "not_configured"
    assert "[agent] backend" in doc["not_configured"]
    # With `strategy = "immediate"` written, it is the operator's explicit choice: it reboots.
    cfg.write_text(cfg.read_text().replace("[agent]\n", '[agent]\nstrategy = "immediate"\n'))
    done = run_cli(lone, "agent", "--once")
    assert done.returncode == SIMULATED_REBOOT_EXIT, done.stderr
    assert len(lone.reboots()) == 1


def with_updates(node: Node, command: str) -> str:
    """The node's config plus an `[updates]` table whose first attempt is due at once."""
    cfg = node.root / "agent.toml"
    cfg.write_text(
        config_text(node, node.backend)
        + f'\n[updates]\nupdater = "command"\njitter = 0\ncommand = ["sh", "-c", "{command}"]\n'
    )
    return str(cfg)


def test_once_runs_a_due_update_to_its_end_and_sees_the_reboot_it_left(lone: Node) -> None:
    """`--once` from a timer: the update that installs something is attempted, and the
    reboot-required it leaves behind is detected in the same round."""
    r = lone.root
    cfg = with_updates(lone, f"touch {r}/updated {r}/run/reboot-required")
    done = subprocess.run(
        [STAGGER, "agent", "--config", cfg, "--root", str(r), "--dry-run", "--once"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert not (r / "updated").exists()  # a dry run never runs the update
    assert 'would="attempt an update"' in done.stderr
    done = subprocess.run(
        [STAGGER, "agent", "--config", cfg, "--root", str(r), "--once"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    # It updated, saw the reboot-required, took the slot and rebooted (simulated: exit 75).
    assert done.returncode == 75, done.stderr
    assert (r / "updated").exists()
    assert "outcome=ok" in done.stderr
    assert lone.state()["updates"]["last"]["outcome"] == "ok"
    assert len(lone.reboots()) == 1
    assert Fleet(lone.backend).holders() == ("node-1",)

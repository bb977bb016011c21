"""`stagger demo`: a real server and real agents on this machine, as `make demo` runs it.

Each test runs the real command with TMPDIR pointed at the test's own directory, so it can
check that the demo leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

STAGGER = str(Path(sys.executable).with_name("stagger"))
LIMIT = 180  # seconds: far above the ~12 s a 4-node demo takes; only a hang reaches it


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.run(
        [STAGGER, "demo", "--nodes", "4", "--json", *args],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        env=env,
    )


def test_every_node_reboots_exactly_once_never_more_than_max_at_once(tmp_path: Path) -> None:
    done = run_demo(tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["nodes"] == 4
    assert summary["rebooted"] == 4
    assert summary["reboots"] == {f"node-{i}": 1 for i in range(1, 5)}
    assert 1 <= summary["max_concurrent"] <= 2
    assert summary["max_down"] <= 2
    assert summary["halted"] == []
    assert summary["seconds"] > 0
    assert list(tmp_path.iterdir()) == []  # the temp dir is gone


def test_a_failed_health_check_halts_the_rollout_at_that_node_with_its_slot(
    tmp_path: Path,
) -> None:
    done = run_demo(tmp_path, "--fail-health", "node-2")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["max"] == 1  # the halted node holds the only slot: the rollout stops there
    assert summary["halted"] == ["node-2"]
    assert summary["reboots"]["node-2"] == 1  # it rebooted; its check failed afterwards
    assert summary["max_concurrent"] <= 1
    assert summary["waiting"] == [i for i, k in summary["reboots"].items() if k == 0]
    assert summary["rebooted"] + len(summary["waiting"]) == 4
    # the server stopped with the demo: no command that could not work
    assert summary["continue"] == []
    assert list(tmp_path.iterdir()) == []


def test_without_keep_running_the_summary_offers_no_command_for_a_stopped_server(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [STAGGER, "demo", "--nodes", "2", "--fail-health", "node-2"],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "stagger unlock --server" not in done.stdout
    assert "stagger demo --nodes 2 --fail-health node-2 --keep-running" in done.stdout


def test_the_log_shows_each_node_through_every_state_once_in_order(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [STAGGER, "demo", "--nodes", "2"], capture_output=True, text=True, timeout=LIMIT, env=env
    )
    assert done.returncode == 0, done.stderr
    path = ["draining", "rebooting", "down", "booting", "verifying", "releasing", "idle"]
    for node in ("node-1", "node-2"):
        states = log_states(done.stdout, node)
        assert [s for s in states if s in path] == path, states
    assert "rebooting  rebooting" not in done.stdout


def test_the_unlock_command_printed_with_keep_running_lets_the_rollout_go_on(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [STAGGER, "demo", "--nodes", "3", "--fail-health", "node-1", "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()], daemon=True).start()
    seen: list[str] = []

    def until(found: Callable[[str], bool]) -> str:
        end = time.monotonic() + LIMIT
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if found(line):
                return line
        raise AssertionError("not seen:\n" + "".join(seen))

    try:
        unlock = until(lambda x: x.strip().startswith("stagger unlock --server")).split()
        until(lambda x: x.startswith("still running"))
        waiting = [n for n in ("node-2", "node-3") if log_states("".join(seen), n)[-1:] != ["idle"]]
        released = subprocess.run(
            [STAGGER, *unlock[1:]], capture_output=True, text=True, timeout=60, env=env
        )
        assert released.returncode == 0, released.stderr
        # The rollout goes on: each node still waiting now reboots, in the queue's order
        # (whichever asked first), so wait until every one of them has released.
        left = set(waiting)
        while left:
            line = until(
                lambda x, ns=frozenset(left): any(f" {n} " in x and " releasing" in x for n in ns)
            )
            left -= {n for n in left if f" {n} " in line}
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "--keep-running" not in "".join(seen)  # it is running: no advice to keep it running
    assert list(tmp_path.iterdir()) == []


def log_states(out: str, node: str) -> list[str]:
    """The states one node went through in the demo's log (lines: time, node, state, why)."""
    found = []
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0].endswith("s") and words[1] == node:
            found.append(words[2])
    return found


def test_an_unknown_fail_health_node_is_refused_in_one_sentence(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--fail-health", "node-9")
    assert done.returncode == 1
    assert "node-1 … node-4" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_every_process_and_removes_the_temp_dir(
    tmp_path: Path, signum: signal.Signals
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [STAGGER, "demo", "--nodes", "2", "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        end = time.monotonic() + 60
        logs: list[Path] = []
        while time.monotonic() < end and len(logs) < 2:
            logs = list(tmp_path.glob("stagger-demo-*/node-*/agent.log"))
            time.sleep(0.1)
        assert len(logs) == 2, "the agents never started"
        assert len(processes_in(tmp_path)) == 3  # the server and two agents
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "demo stopped" in err
    assert list(tmp_path.iterdir()) == []
    assert processes_in(tmp_path) == []


def processes_in(directory: Path) -> list[str]:
    """Live processes whose working directory is under `directory` (the demo runs its server
    and each agent in its own temp directory)."""
    found = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            where = os.readlink(cwd)
        except OSError:
            continue
        if where.startswith(str(directory)):
            found.append(f"{cwd.parent.name}: {where}")
    return found

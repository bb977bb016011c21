"""`stagger demo`: a real server and real agents on this machine, as `make demo` runs it.

Each test runs the real command with TMPDIR pointed at the test's own directory, so it can
check that the demo leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def test_a_failed_health_check_halts_that_node_with_its_slot_and_says_how_to_go_on(
    tmp_path: Path,
) -> None:
    done = run_demo(tmp_path, "--fail-health", "node-2")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["halted"] == ["node-2"]
    assert summary["reboots"]["node-2"] == 1  # it rebooted; its check failed afterwards
    assert summary["max_concurrent"] <= 2
    assert summary["continue"] == [
        f"stagger unlock --server {summary['server']} --group default --id node-2"
    ]
    assert list(tmp_path.iterdir()) == []


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

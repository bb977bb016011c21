"""`stagger agent --once` against a real stagger server on 127.0.0.1 (fleetlock+http): the
report of the state a run ends in reaches the server before the process exits, and no task
outlives the backend's client (no "Task exception was never retrieved")."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from agent_support import STAGGER, WAIT, Node
from server_support import running
from stagger.backends.fleetlock import FleetLockBackend
from stagger.server.settings import ServerSettings


def once(node: Node) -> subprocess.CompletedProcess[str]:
    cfg = str(node.root / "agent.toml")
    return subprocess.run(
        [STAGGER, "agent", "--config", cfg, "--root", str(node.root), "--once"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def server_says(url: str, node_id: str) -> str:
    async def read() -> str:
        b = FleetLockBackend.from_url(url, retries=0)
        try:
            reports = await b.nodes()
        finally:
            await b.close()
        return next((r.state.value for r in reports if r.id == node_id), "no report")

    return asyncio.run(read())


def test_a_node_that_halts_in_a_once_run_is_reported_halted_before_it_exits(
    tmp_path: Path,
) -> None:
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")) as srv:
        url = f"fleetlock+{srv.url}/"
        node = Node("node-1", tmp_path / "node-1", url)
        node.flag("broken", True)  # its health check fails after the reboot
        node.need_reboot()
        first = once(node)
        assert first.returncode == 75, first.stderr  # took the slot, simulated reboot
        node.reboot()
        second = once(node)
        assert second.returncode == 0, second.stderr
        assert node.cycle() == "halted"
        assert server_says(url, "node-1") == "halted"
    for run in (first, second):
        assert "Traceback" not in run.stderr
        assert "never retrieved" not in run.stderr
    assert "last report not sent" not in second.stderr


def test_a_once_run_whose_last_report_cannot_be_sent_says_so(tmp_path: Path) -> None:
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")) as srv:
        url = f"fleetlock+{srv.url}/"
    # The server is gone: the run waits in vain, and its report cannot be sent.
    node = Node("node-1", tmp_path / "node-1", url + "?retries=0")
    node.need_reboot()
    done = once(node)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert 'msg="last report not sent"' in done.stderr

"""The pre-reboot hooks learn why the node reboots: a real `stagger agent --once` on a real
SQLite backend hands the detector's finding to its hooks as STAGGER_REASON (docs/agent.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent_support import STAGGER, WAIT, Node, config_text


def test_the_pre_reboot_hooks_get_the_detectors_reason_as_stagger_reason(tmp_path: Path) -> None:
    node = Node("node-1", tmp_path / "node-1", f"sqlite:///{tmp_path}/stagger.db")
    r = node.root
    drain = f'pre_reboot = [["sh", "-c", "while [ -e {r}/hold-drain ]; do sleep 0.05; done"]]'
    assert drain in config_text(node, node.backend)
    said = f'pre_reboot = [["sh", "-c", "printf %s \\"$STAGGER_REASON\\" > {r}/reason"]]'
    config = r / "agent.toml"
    config.write_text(config_text(node, node.backend).replace(drain, said))
    node.need_reboot()
    (r / "run/reboot-required.pkgs").write_text("linux-image-6.1\n")

    ran = subprocess.run(
        [STAGGER, "agent", "--config", str(config), "--root", str(r), "--once"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )

    assert ran.returncode == 75, ran.stderr  # took the slot, ran the hooks, simulated reboot
    reason = (r / "reason").read_text()
    assert reason == f"file: {r}/run/reboot-required exists; packages: linux-image-6.1"

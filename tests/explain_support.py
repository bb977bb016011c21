"""One node of this machine configured in temp files (state file, boot id, markers, the
simulated rebooter's record) for `stagger explain`, `need-reboot` and `agent` run against it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli_support import stagger
from stagger.backends.factory import open_backend

NODE = "node-a"


@dataclass
class Node:
    dir: Path
    config: Path
    backend: str

    def explain(self) -> dict[str, Any]:
        run = stagger("explain", "--config", str(self.config), "--json")
        assert run.code == 0, run
        return dict(run.json())

    def boot(self, boot_id: str) -> None:
        (self.dir / "boot_id").write_text(boot_id + "\n")


def make_node(tmp_path: Path, extra: str = "", backend: str | None = None) -> Node:
    backend = backend or f"sqlite:///{tmp_path}/stagger.db"
    config = tmp_path / "stagger.toml"
    config.write_text(
        f"""
[agent]
id = "{NODE}"
backend = "{backend}"
rebooter = "simulated"
state_path = "{tmp_path}/agent.json"
boot_id_path = "{tmp_path}/boot_id"
[detectors.file]
path = "{tmp_path}/reboot-required"
[detectors.manual]
path = "{tmp_path}/need-reboot"
[reboot]
simulated_record = "{tmp_path}/reboots"
[hooks]
pre_reboot_dir = "{tmp_path}/pre-reboot.d"
health_dir = "{tmp_path}/health.d"
pre_reboot = [["/bin/true"]]
{extra}
"""
    )
    node = Node(tmp_path, config, backend)
    node.boot("boot-1")
    return node


def reboots(node: Node) -> int:
    """How many times the simulated rebooter rebooted `node`."""
    return len((node.dir / "reboots").read_text().splitlines())


def on_backend(url: str, action: Any) -> Any:
    async def go() -> Any:
        backend = open_backend(url)
        try:
            return await action(backend)
        finally:
            await backend.close()

    return asyncio.run(go())

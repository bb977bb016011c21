"""The configuration → the hook, health and reboot adapters the daemon uses (runtime.py's
Protocols).

Interim: agent/hooks.py and agent/reboot.py (the full adapters: blockers, URLs, TCP, logind,
warnings) are being built alongside; until they land, this module provides the command-based
subset (hook and health commands and directories, the `command` and `simulated` rebooters)
so the daemon and its end-to-end tests run on real processes. When they land, the builders
below delegate to them and the classes here go away.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from stagger.agent.detectors.base import run_command
from stagger.agent.runtime import Outcome

if TYPE_CHECKING:
    from stagger.agent.runtime import HealthChecks, PreRebootHooks, Rebooter
    from stagger.config.model import StaggerConfig

# The simulated rebooter ends the agent with this code; a supervisor starts it again.
SIMULATED_REBOOT_EXIT = 75


def _executables(directory: Path) -> list[list[str]]:
    """run-parts order: the directory's executable files, sorted by name, dotfiles skipped."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in names:
        path = directory / name
        if not name.startswith(".") and path.is_file() and os.access(path, os.X_OK):
            out.append([str(path)])
    return out


@dataclass
class CommandChecks:
    """Commands that must each exit 0. `retry_for` > 0: the whole round is retried every
    `interval` until it passes or `retry_for` seconds have gone (health checks)."""

    commands: Sequence[Sequence[str]]
    directory: Path | None
    command_timeout: float
    stage_timeout: float
    env: dict[str, str] = field(default_factory=dict)
    retry_for: float = 0.0
    interval: float = 5.0

    async def _round(self, limit: float) -> Outcome:
        argvs = [list(c) for c in self.commands]
        if self.directory is not None:
            argvs += _executables(self.directory)
        env = {**os.environ, **self.env}
        loop = asyncio.get_running_loop()
        end = loop.time() + limit
        for argv in argvs:
            left = min(self.command_timeout, end - loop.time())
            if left <= 0:
                return Outcome(False, f"{argv[0]}: no time left")
            ran = await run_command(argv, left, env)
            if ran.code != 0:
                return Outcome(False, f"{argv[0]}: {ran.describe()}")
        return Outcome(True, f"{len(argvs)} passed")

    async def run(self, deadline: datetime | None = None) -> Outcome:
        limit = self.stage_timeout
        if deadline is not None:
            limit = min(limit, (deadline - datetime.now(UTC)).total_seconds())
        loop = asyncio.get_running_loop()
        end = loop.time() + max(self.retry_for, 0.0)
        while True:
            outcome = await self._round(limit)
            if outcome.ok or loop.time() + self.interval > end:
                return outcome
            await asyncio.sleep(self.interval)


@dataclass
class SimulatedRebooter:
    """Records the reboot in a file and ends the agent with SIMULATED_REBOOT_EXIT."""

    record: Path
    boot_id_path: Path
    name: str = "simulated"

    async def reboot(self, reason: str) -> None:
        try:
            boot = self.boot_id_path.read_text().strip()
        except OSError:
            boot = ""
        self.record.parent.mkdir(parents=True, exist_ok=True)
        with self.record.open("a") as f:
            f.write(f"{datetime.now(UTC).isoformat()} boot={boot} reason={reason!r}\n")
            f.flush()
            os.fsync(f.fileno())
        sys.stderr.flush()
        os._exit(SIMULATED_REBOOT_EXIT)  # like a reboot: nothing after this runs


@dataclass
class CommandRebooter:
    argv: Sequence[str]
    name: str = "command"

    async def reboot(self, reason: str) -> None:
        from stagger.core.errors import StaggerError

        ran = await run_command(list(self.argv), 120.0)
        if ran.code != 0:
            raise StaggerError(f"the reboot command failed: {ran.describe()}")


def _env(config: StaggerConfig) -> dict[str, str]:
    return {
        "STAGGER_ID": config.agent.id or "",
        "STAGGER_GROUP": config.agent.group,
        "STAGGER_STRATEGY": config.agent.strategy.value,
    }


def build_pre_reboot(config: StaggerConfig, root: Path | None) -> PreRebootHooks:
    from stagger.config.agent_sections import seconds

    h = config.hooks
    return CommandChecks(
        h.pre_reboot,
        h.path_of("pre_reboot_dir", root),
        seconds(h.command_timeout),
        seconds(h.pre_reboot_timeout),
        {**_env(config), "STAGGER_STAGE": "pre-reboot"},
    )


def build_health(config: StaggerConfig, root: Path | None) -> HealthChecks:
    from stagger.config.agent_sections import seconds

    h = config.hooks
    return CommandChecks(
        h.health,
        h.path_of("health_dir", root),
        seconds(h.command_timeout),
        seconds(h.command_timeout),
        {**_env(config), "STAGGER_STAGE": "health"},
        retry_for=seconds(h.health_timeout),
        interval=seconds(h.health_interval),
    )


def build_rebooter(config: StaggerConfig, root: Path | None) -> Rebooter:
    from stagger.config.agent_sections import path_of
    from stagger.core.errors import ConfigError

    name = config.agent.rebooter
    if name == "simulated":
        return SimulatedRebooter(
            config.reboot.path_of("simulated_record", root),
            path_of(config.agent, "boot_id_path", root),
        )
    if name == "command":
        if not config.reboot.command:
            raise ConfigError(
                "rebooter = 'command' needs [reboot] command, like command = ['/sbin/reboot']"
            )
        return CommandRebooter(config.reboot.command)
    if name == "systemctl":
        return CommandRebooter(["systemctl", "reboot"], name="systemctl")
    raise ConfigError(
        f"rebooter {name!r} is not available in this build yet: use 'systemctl', 'command' "
        "or 'simulated'"
    )

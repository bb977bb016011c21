"""What the daemon runs with: settings and adapters, built from the configuration.

`build_runtime` is the only place that reads the configuration (pydantic); the daemon itself
imports none of it, so a running agent pays only for asyncio, core, its backend and the
detectors it uses. The hook and reboot adapters are seen through the small Protocols below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from stagger.agent.detectors.base import Detector
from stagger.agent.updaters.base import UpdaterSpec
from stagger.core.cycle.vocabulary import Timings
from stagger.core.schedule import Schedule
from stagger.core.strategy import Strategy
from stagger.core.updates import UpdatePolicy

DISABLED_FLAG = Path("/etc/stagger/disabled")


@dataclass(frozen=True)
class Outcome:
    """A round of hooks or health checks: passed or not, and one line saying why."""

    ok: bool
    detail: str


class PreRebootHooks(Protocol):
    async def run(self, deadline: datetime | None) -> Outcome: ...


class HealthChecks(Protocol):
    async def run(self) -> Outcome: ...


class Rebooter(Protocol):
    name: str

    async def reboot(self, reason: str) -> None:
        """Start the reboot. Returns when it was asked for (the system then stops the agent);
        raises when it could not be; the simulated one ends the process (SystemExit)."""
        ...


@dataclass
class Runtime:
    node_id: str
    group: str
    strategy: Strategy
    backend_url: str
    schedule: Schedule
    timings: Timings
    poll: float  # seconds between looks at the pause and the disabled flag
    state_path: Path
    boot_id_path: Path
    disabled_path: Path
    detectors: Sequence[Detector]
    pre_reboot: PreRebootHooks
    health: HealthChecks
    rebooter: Rebooter
    dry_run: bool = False
    backend_timeout: float = 10.0
    backend_configured: bool = True  # False: no [agent] backend was written (never reboots)
    # [updates]: when (core's policy) and which updater (plain values; imported when used)
    update_policy: UpdatePolicy = field(default_factory=UpdatePolicy)
    updater: UpdaterSpec = field(default_factory=UpdaterSpec)
    control_socket: Path | None = None  # None: no control socket (update-now acts directly)
    manual_path: Path | None = None  # the need-reboot marker: `--now` there is an urgent reboot


def build_runtime(config_file: Path | None, root: Path | None, dry_run: bool = False) -> Runtime:
    """The configuration (config.d, or `config_file`) → a Runtime. Paths left at their defaults
    go under `root`; paths written in the file are used as written."""
    from stagger.agent.detectors.factory import build_detectors
    from stagger.agent.hooks import build_health, build_pre_reboot
    from stagger.agent.identity import node_id
    from stagger.agent.reboot import build_rebooter
    from stagger.agent.updaters.factory import spec_from_config
    from stagger.config.agent_sections import path_of, seconds
    from stagger.config.loader import load_config, rooted

    loaded = load_config(config_file, root)
    cfg = loaded.config
    me = cfg.agent.id or node_id(root or "/")
    return Runtime(
        node_id=me,
        group=cfg.agent.group,
        strategy=cfg.agent.strategy,
        backend_url=cfg.agent.backend_url(root),
        backend_configured=cfg.agent.backend_configured,
        schedule=loaded.schedule(),
        timings=cfg.cycle.timings(),
        poll=seconds(cfg.cycle.poll),
        state_path=path_of(cfg.agent, "state_path", root),
        boot_id_path=path_of(cfg.agent, "boot_id_path", root),
        disabled_path=rooted(DISABLED_FLAG, root),
        detectors=build_detectors(cfg, root),
        pre_reboot=build_pre_reboot(cfg, root, me),
        health=build_health(cfg, root, me),
        rebooter=build_rebooter(cfg, root),
        dry_run=dry_run,
        update_policy=cfg.updates.policy(loaded.host_zone),
        updater=spec_from_config(cfg),
        control_socket=path_of(cfg.agent, "control_socket", root),
        manual_path=cfg.detectors.manual.path_of("path", root),
    )

"""What the daemon runs with (`Runtime`: settings and adapters), and the one place that builds
it from the configuration (`build_runtime` and the builders below it).

The builders are the only code of the agent that reads the configuration (pydantic), and they
import it when called; the daemon itself imports none of it, so a running agent pays only for
asyncio, core, its backend and the detectors it uses. The adapters are seen through the small
Protocols that sit beside their implementations: `PreRebootHooks` and `HealthChecks` in
hooks.py, `Rebooter` in reboot.py, `Detector` in detectors/base.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stagger.agent.detectors.base import Detector
from stagger.agent.hooks import (
    HEALTH,
    HealthChecks,
    HealthStage,
    HookContext,
    HookSettings,
    PreRebootHooks,
    PreRebootStage,
)
from stagger.agent.reboot import (
    Announced,
    CommandRebooter,
    LogindRebooter,
    Rebooter,
    SimulatedRebooter,
    systemctl_rebooter,
)
from stagger.agent.updaters.base import UpdaterSpec
from stagger.core.cycle.vocabulary import Timings
from stagger.core.errors import StaggerError
from stagger.core.schedule import Schedule
from stagger.core.strategy import Strategy
from stagger.core.updates import UpdatePolicy

if TYPE_CHECKING:
    from stagger.config.agent_sections import HooksConfig
    from stagger.config.model import StaggerConfig

DISABLED_FLAG = Path("/etc/stagger/disabled")


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
    from stagger.agent.identity import node_id
    from stagger.agent.updaters.factory import spec_from_config
    from stagger.config.agent_sections import seconds
    from stagger.config.loader import load_config, rooted
    from stagger.config.section import path_of

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


def hook_settings(hooks: HooksConfig, root: Path | None = None) -> HookSettings:
    """`[hooks]` → the hooks' settings (seconds, paths under `root` when left at default)."""
    from stagger.config.agent_sections import seconds

    return HookSettings(
        pre_reboot=tuple(tuple(a) for a in hooks.pre_reboot),
        pre_reboot_dir=hooks.path_of("pre_reboot_dir", root),
        pre_reboot_timeout=seconds(hooks.pre_reboot_timeout),
        block_logged_in_users=hooks.block_logged_in_users,
        utmp_path=hooks.path_of("utmp_path", root),
        block_commands=tuple(tuple(a) for a in hooks.block_commands),
        block_urls=tuple(hooks.block_urls),
        health=tuple(tuple(a) for a in hooks.health),
        health_dir=hooks.path_of("health_dir", root),
        health_timeout=seconds(hooks.health_timeout),
        health_interval=seconds(hooks.health_interval),
        health_system_states=tuple(hooks.health_system_states),
        health_urls=tuple(hooks.health_urls),
        health_tcp=tuple(hooks.health_tcp),
        command_timeout=seconds(hooks.command_timeout),
    )


def build_pre_reboot(config: StaggerConfig, root: Path | None, node_id: str) -> PreRebootStage:
    settings = hook_settings(config.hooks, root)
    return PreRebootStage(settings, HookContext(node_id, config.agent.group, "reboot needed"))


def build_health(config: StaggerConfig, root: Path | None, node_id: str) -> HealthStage:
    settings = hook_settings(config.hooks, root)
    context = HookContext(node_id, config.agent.group, "after the reboot", HEALTH)
    return HealthStage(settings, context)


def build_rebooter(config: StaggerConfig, root: Path | None = None) -> Rebooter:
    """`[agent] rebooter` and `[reboot]` → a Rebooter (wrapped in Announced when a warning or a
    delay is configured)."""
    from stagger.config.agent_sections import seconds
    from stagger.config.section import path_of

    name = config.agent.rebooter
    r = config.reboot
    inner: Rebooter
    if name == "logind":
        inner = LogindRebooter()
    elif name == "systemctl":
        inner = systemctl_rebooter()
    elif name == "command":
        if not r.command:
            raise StaggerError(
                "[agent] rebooter = 'command' needs [reboot] command, like "
                "command = ['/sbin/shutdown', '-r', 'now']"
            )
        inner = CommandRebooter(tuple(r.command))
    else:
        inner = SimulatedRebooter(
            r.path_of("simulated_record", root), path_of(config.agent, "boot_id_path", root)
        )
    delay = seconds(r.delay)
    if r.warn_users or delay > 0:
        return Announced(inner, r.warn_users, delay)
    return inner

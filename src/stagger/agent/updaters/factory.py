"""The configuration → an UpdaterSpec (plain values) → the updater. The spec is built where
the configuration is read (`stagger agent`, `stagger update-now`); the implementation is
imported only when an attempt is made, so an agent with `updater = "none"` never loads it.
No pydantic at run time: the config model is only named for the type checker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stagger.agent.updaters.base import Updater, UpdaterSpec
from stagger.core.errors import ConfigError

if TYPE_CHECKING:
    from stagger.config.model import StaggerConfig


def spec_from_config(config: StaggerConfig) -> UpdaterSpec:
    """`[updates]` (and `[detectors.update_engine] bus_address`, the same service) as a spec.
    Raises ConfigError for an updater that lacks what it needs."""
    from stagger.config.agent_sections import seconds

    u = config.updates
    if u.updater == "command" and u.enabled and not u.command:
        raise ConfigError(
            "[updates] updater = 'command' but [updates] command is not set: give the command "
            "as a list, like command = ['apt-get', '-y', 'upgrade']"
        )
    return UpdaterSpec(
        name=u.updater,
        timeout=seconds(u.timeout),
        command=tuple(u.command or ()),
        bus_address=config.detectors.update_engine.bus_address,
    )


def build_updater(spec: UpdaterSpec) -> Updater:
    if spec.name == "update_engine":
        from stagger.agent.updaters.update_engine import UpdateEngineUpdater

        return UpdateEngineUpdater(spec.bus_address, spec.timeout)
    if spec.name == "command":
        from stagger.agent.updaters.command import CommandUpdater

        if not spec.command:
            raise ConfigError("[updates] updater = 'command' needs [updates] command")
        return CommandUpdater(spec.command, spec.timeout)
    if spec.name == "none":
        from stagger.agent.updaters.none import NoUpdater

        return NoUpdater()
    raise ConfigError(f"updater {spec.name!r} is not known")  # the config model refuses it first

"""The configuration → the detectors in use. Each implementation is imported only when it is
on, so an agent that uses `file` never loads dbus-fast.

`manual` (the marker of `stagger need-reboot`) is always added: an operator's request must
never be ignored because a list in a config file left it out."""

from __future__ import annotations

from pathlib import Path

from stagger.agent.detectors.base import Detector
from stagger.config.agent_sections import seconds
from stagger.config.model import StaggerConfig
from stagger.config.section import path_of
from stagger.core.errors import ConfigError


def build_detectors(config: StaggerConfig, root: Path | None = None) -> list[Detector]:
    """The detectors `[agent] detectors` names, in that order, then `manual`. Paths left at
    their defaults go under `root`; paths written in the file are used as written."""
    names = list(config.agent.detectors)
    if "manual" not in names:
        names.append("manual")
    return [build_one(name, config, root) for name in names]


def build_one(name: str, config: StaggerConfig, root: Path | None = None) -> Detector:
    d = config.detectors
    if name == "file":
        from stagger.agent.detectors.file import FileDetector

        pkgs = d.file.path_of("packages_path", root) if d.file.packages_path else None
        return FileDetector(d.file.path_of("path", root), pkgs, seconds(d.file.interval))
    if name == "command":
        from stagger.agent.detectors.command import CommandDetector

        if not d.command.command:
            raise ConfigError(
                "[agent] detectors lists 'command' but [detectors.command] command is not set: "
                "give the command as a list, like command = ['/usr/local/bin/needs-reboot']"
            )
        return CommandDetector(
            tuple(d.command.command), seconds(d.command.interval), seconds(d.command.timeout)
        )
    if name == "needs-restarting":
        from stagger.agent.detectors.needs_restarting import NeedsRestartingDetector

        c = d.needs_restarting
        return NeedsRestartingDetector(tuple(c.command), seconds(c.interval), seconds(c.timeout))
    if name == "rpm-ostree":
        from stagger.agent.detectors.rpm_ostree import RpmOstreeDetector

        r = d.rpm_ostree
        return RpmOstreeDetector(tuple(r.command), seconds(r.interval), seconds(r.timeout))
    if name == "update_engine":
        from stagger.agent.detectors.update_engine import UpdateEngineDetector

        u = d.update_engine
        return UpdateEngineDetector(u.bus_address, seconds(u.reconnect))
    if name == "manual":
        from stagger.agent.detectors.manual import ManualDetector

        return ManualDetector(
            d.manual.path_of("path", root),
            path_of(config.agent, "boot_id_path", root),
            seconds(d.manual.interval),
        )
    raise ConfigError(f"detector {name!r} is not known")  # the config model refuses it first

"""What every reboot source family shares: the verdict (yes / unknown / no), the
`RebootSource` each family reports, and the `Host` — everything read from the root, each piece
once, on first use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from stagger.doctor.advice import STAGGER_UNIT
from stagger.doctor.conditions import HostImage, read_host_image
from stagger.doctor.rootfs import RootFS
from stagger.doctor.stagger_node import (
    OPT_OUT_FLAG,
    FleetLockURL,
    StaggerConfigRead,
    StaggerNode,
    config_fleetlock_urls,
    read_stagger_config,
    stagger_node,
)
from stagger.doctor.units.dbus import DbusActivation, load_dbus_activations
from stagger.doctor.units.startup import boot_units
from stagger.doctor.units.status import UnitStatus, unit_status
from stagger.doctor.units.tree import UnitTree, load_tree


class Verdict(StrEnum):
    YES = "yes"
    UNKNOWN = "unknown"
    NO = "no"


# Worst first: what an operator must act on comes first in every report.
VERDICT_ORDER = {Verdict.YES: 0, Verdict.UNKNOWN: 1, Verdict.NO: 2}


@dataclass(frozen=True)
class RebootSource:
    name: str
    will_reboot: Verdict
    how: str
    when: str
    fix: str
    settings: Mapping[str, str] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()  # the files the verdict rests on
    units: tuple[str, ...] = ()
    # It reboots the host, but only when stagger's FleetLock server grants it a slot (Zincati
    # pointed at stagger): a coordinated reboot through stagger, not one on its own.
    through_stagger: bool = False


# ---------------------------------------------------------------------------------------------
# The host as read once


@dataclass
class Host:
    """Everything read from the root, each piece once, on first use."""

    fs: RootFS
    fleetlock_urls: tuple[str, ...] = ()  # given with --fleetlock-url

    @cached_property
    def image(self) -> HostImage:
        return read_host_image(self.fs)

    @cached_property
    def tree(self) -> UnitTree:
        return load_tree(self.fs)

    @cached_property
    def boot(self) -> frozenset[str]:
        return boot_units(self.tree)

    @cached_property
    def activations(self) -> list[DbusActivation]:
        return load_dbus_activations(self.fs)

    @cached_property
    def stagger_config(self) -> StaggerConfigRead:
        return read_stagger_config(self.fs)

    @cached_property
    def stagger_urls(self) -> tuple[FleetLockURL, ...]:
        """FleetLock URLs that are stagger's: given on the command line, or named by
        stagger's own configuration."""
        given = tuple(FleetLockURL(u, "--fleetlock-url") for u in self.fleetlock_urls)
        loaded = self.stagger_config.loaded
        return given + (config_fleetlock_urls(loaded) if loaded is not None else ())

    @cached_property
    def updates_announced_by(self) -> str | None:
        """How this host says an update needs a reboot: update_engine (CoreOS, Flatcar),
        rpm-ostree (Fedora CoreOS and other rpm-ostree hosts), or None (packages, or unknown)."""
        if self.unit("update-engine.service").found:
            return "update_engine"
        if self.unit("zincati.service").found or self.unit("rpm-ostreed.service").found:
            return "rpm-ostree"
        return None

    @cached_property
    def stagger(self) -> StaggerNode:
        return stagger_node(
            self.unit(STAGGER_UNIT),
            self.stagger_config,
            self.fs.exists(OPT_OUT_FLAG),
            self.stagger_urls,
            self.updates_announced_by,
        )

    def unit(self, name: str) -> UnitStatus:
        return unit_status(self.tree, name, self.boot, self.activations)

    def timer_schedule(self, timer: str) -> str:
        loaded = self.tree.get(timer)
        if loaded is None or not loaded.found:
            return ""
        keys = ("OnCalendar", "OnBootSec", "OnUnitActiveSec", "RandomizedDelaySec")
        return ", ".join(f"{k}={v}" for k in keys for v in loaded.unit.values("Timer", k))


def not_running(status: UnitStatus) -> str | None:
    """Why a unit will not run on this host, or None when it will."""
    if not status.found:
        return f"{status.name} is not installed"
    if status.masked:
        return f"{status.name} is masked"
    if not status.starts:
        return f"{status.name} is {status.enabled.value} and nothing starts it"
    return None

"""The doctor's report: reboot sources worst first, then the units behind them, each with
its is-enabled state, what starts it anyway and its path conditions. `build_report` reads
(through `Host`); `render_text` is a pure function of the report."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from stagger.doctor import advice
from stagger.doctor.conditions import ConditionResult, conditions_met, probe_path, unit_conditions
from stagger.doctor.rootfs import RootFS
from stagger.doctor.sources import Host, RebootSource, Verdict, find_sources
from stagger.doctor.stagger_node import StaggerNode
from stagger.doctor.units.startup import StartReason

# Units shown even when no source names them: the usual suspects of each distribution.
UNITS_OF_INTEREST = (
    "update-engine.service",
    "locksmithd.service",
    "zincati.service",
    "apt-daily-upgrade.timer",
    "unattended-upgrades.service",
    "dnf-automatic.timer",
    "dnf-automatic-install.timer",
    "dnf5-automatic.timer",
    "rebootmgr.service",
    "transactional-update.timer",
    "kured.service",
)


@dataclass(frozen=True)
class UnitReport:
    name: str
    path: str | None
    enabled: str  # as `systemctl is-enabled` would print it
    summary: str  # "disabled, started anyway by …"
    starts: bool
    started_by: tuple[StartReason, ...]
    conditions: tuple[ConditionResult, ...]
    conditions_met: bool | None  # None when a condition could not be evaluated
    dropins: tuple[str, ...]


@dataclass(frozen=True)
class HostInfo:
    root: str
    os_id: str
    name: str
    image_based: bool
    why: str


@dataclass(frozen=True)
class Report:
    host: HostInfo
    reboot_sources: tuple[RebootSource, ...]
    units: tuple[UnitReport, ...]
    stagger: StaggerNode  # stagger itself here: information, never part of the exit code
    warning: str
    only_stagger_reboots: bool

    @property
    def exit_code(self) -> int:
        return 0 if self.only_stagger_reboots else 1


def unit_report(host: Host, name: str) -> UnitReport:
    status = host.unit(name)
    loaded = host.tree.get(name)
    conditions: list[ConditionResult] = []
    dropins: tuple[str, ...] = ()
    if loaded is not None and loaded.found and not loaded.masked:
        conditions = unit_conditions(
            loaded.unit,
            lambda path: probe_path(host.fs, host.image, path),
            advice.condition_alternative(name),
        )
        dropins = loaded.dropins
    return UnitReport(
        name=name,
        path=status.path,
        enabled=status.enabled.value,
        summary=status.summary(),
        starts=status.starts,
        started_by=status.started_by,
        conditions=tuple(conditions),
        conditions_met=conditions_met(conditions) if conditions else True,
        dropins=dropins,
    )


def build_report(
    root: str | Path, unit: str | None = None, fleetlock_urls: tuple[str, ...] = ()
) -> Report:
    fs = RootFS.at(root)
    host = Host(fs, fleetlock_urls)
    sources = tuple(find_sources(host))
    if unit is not None:
        names = [unit]
    else:
        wanted = list(UNITS_OF_INTEREST)
        for src in sources:
            wanted.extend(src.units)
        wanted.append(advice.STAGGER_UNIT)
        names = [n for n in dict.fromkeys(wanted) if host.unit(n).found]
    units = tuple(unit_report(host, n) for n in names)
    image = host.image
    return Report(
        host=HostInfo(str(fs.root), image.os_id, image.pretty_name, image.image_based, image.why),
        reboot_sources=sources,
        units=units,
        stagger=host.stagger,
        warning=advice.WARNING,
        only_stagger_reboots=all(s.will_reboot is Verdict.NO for s in sources),
    )


# ---------------------------------------------------------------------------------------------
# For people

_MARK = {Verdict.YES: "REBOOTS ON ITS OWN", Verdict.UNKNOWN: "MAY REBOOT", Verdict.NO: "ok"}


def _condition_line(c: ConditionResult) -> str:
    if not c.evaluated:
        return f"{c.key}={c.value}: not evaluated"
    verdict = "true" if c.result else "false"
    line = f"{c.key}={c.value}: {verdict} ({c.path} {c.note})"
    if c.read_only:
        line += f"; {c.read_only}, so it cannot be used to switch the unit off: {c.advice}"
    return line


def _stagger_lines(node: StaggerNode) -> list[str]:
    lines = ["stagger on this host:"]
    for never in node.never_reboots:
        lines.append(f"  [STAGGER WILL NOT REBOOT] {never}")
    lines.append(f"  agent:   {node.unit}: {node.agent}")
    lines.append(f"  reboots: {node.reboots}")
    lines.append(f"  updates: {node.updates}")
    if node.config_files:
        lines.append(f"  config:  {', '.join(node.config_files)}")
    elif not node.config_problems:
        lines.append("  config:  no files in stagger's config.d directories: the defaults apply")
    return lines


def render_text(report: Report) -> str:
    lines: list[str] = []
    kind = f"image-based: {report.host.why}" if report.host.image_based else "package-based"
    lines.append(f"stagger doctor: {report.host.root} ({report.host.name}, {kind})")
    lines.append("")
    if report.only_stagger_reboots:
        lines.append("No agent besides stagger will reboot this host on its own.")
        through = [s.name for s in report.reboot_sources if s.through_stagger]
        if through:
            lines.append(
                f"{' and '.join(through)} will reboot it when stagger's FleetLock server grants "
                "a slot: a coordinated reboot through stagger."
            )
        elif not report.stagger.will_reboot:
            lines.append("stagger will not reboot it either (see below): no reboot will happen.")
    else:
        n = sum(1 for s in report.reboot_sources if s.will_reboot is not Verdict.NO)
        lines.append(f"{n} reboot source(s) besides stagger:")
    for src in report.reboot_sources:
        lines.append("")
        lines.append(
            f"[{_MARK[src.will_reboot]}] {src.name}: will reboot on its own: "
            f"{src.will_reboot.value}"
        )
        lines.append(f"  how:  {src.how}")
        if src.will_reboot is not Verdict.NO:
            lines.append(f"  when: {src.when}")
            lines.append(f"  fix:  {src.fix}")
        if src.evidence:
            lines.append(f"  from: {', '.join(src.evidence)}")
    lines.append("")
    lines.extend(_stagger_lines(report.stagger))
    if report.units:
        lines.append("")
        lines.append("Units:")
    for u in report.units:
        lines.append(f"  {u.name}: {u.summary}")
        if u.path:
            lines.append(f"    loaded from {u.path}")
        for d in u.dropins:
            lines.append(f"    drop-in {d}")
        for c in u.conditions:
            lines.append(f"    {_condition_line(c)}")
        inactive = [r for r in u.started_by if not r.active]
        for r in inactive:
            lines.append(f"    would also start it: {r.detail} ({posixpath.basename(r.path)})")
    lines.append("")
    lines.append(f"Warning: {report.warning}")
    return "\n".join(lines)

"""What starts a unit whatever `systemctl is-enabled` says: the boot transaction
(`boot_units`) and every reason a unit would be started (`started_by`): links, dependencies,
timers, sockets, paths, `Also=` and D-Bus activation. Pure functions of the `UnitTree`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from stagger.doctor.units.dbus import DbusActivation
from stagger.doctor.units.syntax import UnitFile
from stagger.doctor.units.tree import UnitTree, points_to, tree_of

# Dependencies that start the other unit when this one starts (systemd.unit(5)).
START_DEPENDENCIES = ("Wants", "Requires", "BindsTo", "Upholds")
# Targets every standard default target pulls in (multi-user.target → basic.target →
# sysinit.target, sockets.target, timers.target, paths.target): assumed even when a trimmed
# tree does not carry them.
IMPLIED_BOOT_TARGETS = (
    "basic.target",
    "sysinit.target",
    "sockets.target",
    "timers.target",
    "paths.target",
)


def _start_edges(tree: UnitTree, name: str) -> list[str]:
    unit = tree.get(name)
    out: list[str] = []
    if unit is not None and unit.found and not unit.masked:
        for key in START_DEPENDENCIES:
            out.extend(unit.unit.names("Unit", key))
    owners = {name} | ({unit.real_name} if unit else set())
    out.extend(link.name for link in tree.links if link.owner in owners and link.target)
    return out


def boot_units(tree: UnitTree) -> frozenset[str]:
    """Units the boot transaction pulls in: everything reachable from the default target
    (and the standard targets it always pulls in) through start dependencies and
    `.wants/`/`.requires/`/`.upholds/` links. Masked units are neither started nor followed."""
    queue = [tree.default_target, *IMPLIED_BOOT_TARGETS]
    seen: set[str] = set()
    while queue:  # bounded: each name is expanded once
        name = queue.pop()
        if name in seen:
            continue
        unit = tree.get(name)
        if unit is not None and unit.masked:
            continue
        seen.add(name)
        if unit is not None and unit.alias_of:
            queue.append(unit.alias_of)
        queue.extend(n for n in _start_edges(tree, name) if n not in seen)
    return frozenset(seen)


class StartKind(StrEnum):
    LINK = "link"  # <target>.wants/NAME (or .requires/.upholds)
    DEPENDENCY = "dependency"  # Wants=/Requires=/BindsTo=/Upholds= NAME in another unit
    DBUS = "dbus"  # D-Bus activation file with SystemdService=NAME
    DBUS_EXEC = "dbus-exec"  # D-Bus activation file starting the binary outside systemd
    TIMER = "timer"
    SOCKET = "socket"
    PATH = "path"
    ALSO = "also"  # `systemctl enable X` also enables NAME


@dataclass(frozen=True)
class StartReason:
    kind: StartKind
    by: str  # the unit, bus name or file that starts it
    detail: str  # one phrase an operator can check
    path: str  # the file that says so
    active: bool  # True when it applies on this host as it is (the starter itself starts)


def started_by(
    tree: UnitTree,
    name: str,
    boot: frozenset[str],
    activations: Iterable[DbusActivation] = (),
) -> list[StartReason]:
    """Everything that would start `name` whatever `systemctl is-enabled` says."""
    unit = tree.get(name)
    if unit is None:
        return []
    names = {unit.name, unit.real_name}
    names.update(a.name for a in tree.aliases if a.target_name == unit.real_name)
    reasons: list[StartReason] = []
    for link in tree.links:
        if link.target is None or not points_to(link.target, link.name, unit):
            continue
        where = tree_of(link.directory)
        reasons.append(
            StartReason(
                StartKind.LINK,
                link.owner,
                f"{link.owner}.{link.kind}/{link.name} link in the {where.value} tree",
                link.path,
                link.owner in boot,
            )
        )
    for other in tree.units.values():
        if other.name in names or not other.found or other.masked or other.alias_of:
            continue
        u = other.unit
        for key in START_DEPENDENCIES:
            for dep in u.names("Unit", key):
                if dep in names:
                    said = u.where("Unit", key)
                    reasons.append(
                        StartReason(
                            StartKind.DEPENDENCY,
                            other.name,
                            f"{other.name} has {key}={dep}",
                            said.source if said else other.path or "",
                            other.name in boot,
                        )
                    )
        stem, _, suffix = other.name.rpartition(".")
        trigger_key = {"timer": "Unit", "path": "Unit", "socket": "Service"}.get(suffix)
        if trigger_key:
            target = u.last(suffix.capitalize(), trigger_key) or f"{stem}.service"
            if target in names:
                kind = {"timer": StartKind.TIMER, "path": StartKind.PATH}.get(
                    suffix, StartKind.SOCKET
                )
                reasons.append(
                    StartReason(
                        kind,
                        other.name,
                        f"{other.name} triggers it" + _trigger_detail(u, suffix),
                        other.path or "",
                        other.name in boot,
                    )
                )
        if any(a in names for a in u.names("Install", "Also")):
            reasons.append(
                StartReason(
                    StartKind.ALSO,
                    other.name,
                    f"`systemctl enable {other.name}` also enables it (Also=)",
                    other.path or "",
                    False,
                )
            )
    bus_names = set(unit.unit.values("Service", "BusName"))
    for act in activations:
        if act.systemd_service in names:
            reasons.append(
                StartReason(
                    StartKind.DBUS,
                    act.bus_name,
                    f"D-Bus activation: any call to {act.bus_name} on the system bus starts "
                    f"it (SystemdService={act.systemd_service})",
                    act.path,
                    True,
                )
            )
        elif act.bus_name in bus_names and act.systemd_service is None:
            reasons.append(
                StartReason(
                    StartKind.DBUS_EXEC,
                    act.bus_name,
                    f"D-Bus activation: dbus-daemon runs {act.exec_line or 'its Exec='} "
                    f"itself for {act.bus_name}, outside systemd (masking does not stop it)",
                    act.path,
                    True,
                )
            )
    return reasons


def _trigger_detail(u: UnitFile, suffix: str) -> str:
    keys: tuple[str, ...]
    if suffix == "timer":
        keys = ("OnCalendar", "OnBootSec", "OnStartupSec", "OnUnitActiveSec", "OnActiveSec")
        parts = [f"{k}={v}" for k in keys for v in u.values("Timer", k)]
        return f" ({', '.join(parts)})" if parts else ""
    if suffix == "socket":
        keys = ("ListenStream", "ListenDatagram", "ListenSequentialPacket", "ListenFIFO")
        parts = [f"{k}={v}" for k in keys for v in u.values("Socket", k)]
        return f" ({', '.join(parts)})" if parts else ""
    keys = ("PathExists", "PathChanged", "PathModified", "DirectoryNotEmpty")
    parts = [f"{k}={v}" for k in keys for v in u.values("Path", k)]
    return f" ({', '.join(parts)})" if parts else ""

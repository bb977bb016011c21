"""D-Bus activation files: a call to a bus name starts a unit (`SystemdService=`) or a
binary outside systemd (`Exec=` only) — the seed's update-engine started this way."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from stagger.doctor.rootfs import RootFS
from stagger.doctor.units.syntax import UnitFile, parse_unit


@dataclass(frozen=True)
class DbusActivation:
    """One file in a D-Bus system-services directory."""

    bus_name: str
    systemd_service: str | None
    exec_line: str | None
    path: str


def parse_dbus_activation(text: str, path: str) -> DbusActivation | None:
    """A D-Bus service file: `[D-BUS Service]` with Name=, Exec=, User=, SystemdService=."""
    u = UnitFile(parse_unit(text, path))
    name = u.last("D-BUS Service", "Name")
    if not name:
        return None
    return DbusActivation(
        name, u.last("D-BUS Service", "SystemdService"), u.last("D-BUS Service", "Exec"), path
    )


# dbus-daemon's <standard_system_servicedirs/> (dbus-daemon(1)).
DBUS_SYSTEM_SERVICE_DIRS = (
    "/usr/local/share/dbus-1/system-services",
    "/usr/share/dbus-1/system-services",
    "/lib/dbus-1/system-services",
)


def load_dbus_activations(fs: RootFS) -> list[DbusActivation]:
    out: list[DbusActivation] = []
    seen: set[str] = set()
    for d in DBUS_SYSTEM_SERVICE_DIRS:
        real = fs.resolve(d) or d
        if real in seen:
            continue
        seen.add(real)
        for fname in fs.listdir(d):
            if not fname.endswith(".service"):
                continue
            path = posixpath.join(d, fname)
            act = parse_dbus_activation(fs.read_text(path) or "", path)
            if act is not None:
                out.append(act)
    return out

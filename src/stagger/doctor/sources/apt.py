"""unattended-upgrades (Debian, Ubuntu): `Unattended-Upgrade::Automatic-Reboot` and its
`-Time`/`-WithUsers` in apt.conf.d, run by apt-daily-upgrade.timer."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from stagger.doctor import advice
from stagger.doctor.configs import AptValue, apt_bool, parse_apt_conf
from stagger.doctor.sources.base import Host, RebootSource, Verdict, not_running
from stagger.doctor.units.status import UnitStatus

_APT_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class UnattendedSettings:
    automatic_reboot: AptValue | None
    reboot_time: str
    with_users: bool
    periodic: str  # APT::Periodic::Unattended-Upgrade
    files: tuple[str, ...]


def unattended_verdict(s: UnattendedSettings, timer: UnitStatus, schedule: str) -> RebootSource:
    reboot = apt_bool(s.automatic_reboot.value if s.automatic_reboot else None, False)
    settings = {
        "Unattended-Upgrade::Automatic-Reboot": s.automatic_reboot.value
        if s.automatic_reboot
        else "(unset: false)",
        "Unattended-Upgrade::Automatic-Reboot-Time": s.reboot_time,
        "Unattended-Upgrade::Automatic-Reboot-WithUsers": str(s.with_users).lower(),
        "APT::Periodic::Unattended-Upgrade": s.periodic,
        "apt-daily-upgrade.timer": timer.summary(),
    }
    evidence = tuple(
        dict.fromkeys(([s.automatic_reboot.source] if s.automatic_reboot else []) + list(s.files))
    )
    fix = advice.unattended_upgrades_fix(
        s.automatic_reboot.source if s.automatic_reboot else None,
        s.automatic_reboot.line if s.automatic_reboot else None,
    )
    units = ("apt-daily-upgrade.timer", "unattended-upgrades.service")

    def src(v: Verdict, how: str, when: str, fix: str = fix) -> RebootSource:
        return RebootSource("unattended-upgrades", v, how, when, fix, settings, evidence, units)

    if not reboot:
        return src(
            Verdict.NO,
            "Automatic-Reboot is false: unattended-upgrades installs "
            "updates and leaves /var/run/reboot-required for someone else.",
            "never",
            "nothing to change",
        )
    if not apt_bool(s.periodic, False):
        return src(
            Verdict.NO,
            "APT::Periodic::Unattended-Upgrade is off, so unattended-upgrade "
            "never runs (and installs nothing).",
            "never",
        )
    users = "" if s.with_users else " unless someone is logged in"
    how = (
        "unattended-upgrade runs `shutdown -r "
        f"{s.reboot_time}` after an upgrade run whenever /var/run/reboot-required "
        f"exists{users} (Automatic-Reboot true)."
    )
    if not timer.found:
        return src(
            Verdict.UNKNOWN,
            how + " apt-daily-upgrade.timer is not in this tree, so "
            "the doctor cannot tell when (or whether) it runs.",
            "unknown",
        )
    stopped = not_running(timer)
    if stopped:
        return src(Verdict.NO, f"{stopped}, so unattended-upgrade never runs.", "never")
    when = f"after apt-daily-upgrade.timer ({schedule or 'its schedule'}), at {s.reboot_time}"
    return src(Verdict.YES, how, when)


def read_unattended(host: Host) -> UnattendedSettings | None:
    values: dict[str, AptValue] = {}
    files: list[str] = []
    parts = [
        posixpath.join("/etc/apt/apt.conf.d", n)
        for n in host.fs.listdir("/etc/apt/apt.conf.d")
        if _APT_PART.match(n) and ("." not in n or n.endswith(".conf"))
    ]
    for path in [*parts, "/etc/apt/apt.conf"]:
        text = host.fs.read_text(path)
        if text is None:
            continue
        parse_apt_conf(text, path, values)
        if "unattended-upgrade" in text.lower():
            files.append(path)
    installed = host.fs.exists("/usr/bin/unattended-upgrade") or bool(
        host.tree.get("unattended-upgrades.service")
        and host.tree.units["unattended-upgrades.service"].found
    )
    if not files and not installed:
        return None

    def v(key: str) -> AptValue | None:
        return values.get(key.lower())

    time = v("Unattended-Upgrade::Automatic-Reboot-Time")
    with_users = v("Unattended-Upgrade::Automatic-Reboot-WithUsers")
    periodic = v("APT::Periodic::Unattended-Upgrade")
    return UnattendedSettings(
        automatic_reboot=v("Unattended-Upgrade::Automatic-Reboot"),
        reboot_time=time.value if time else "now",
        with_users=apt_bool(with_users.value if with_users else None, True),
        periodic=periodic.value if periodic else "0",
        files=tuple(files),
    )


def find(host: Host) -> list[RebootSource]:
    unattended = read_unattended(host)
    if unattended is None:
        return []
    timer = host.unit("apt-daily-upgrade.timer")
    return [unattended_verdict(unattended, timer, host.timer_schedule("apt-daily-upgrade.timer"))]

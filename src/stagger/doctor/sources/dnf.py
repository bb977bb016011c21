"""dnf-automatic (RHEL, Fedora, CentOS): `reboot =` in automatic.conf, acted on only by a
timer that applies updates."""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass

from stagger.doctor import advice
from stagger.doctor.sources.base import Host, RebootSource, Verdict, not_running
from stagger.doctor.units.status import UnitStatus

DNF_CONFS = (
    "/usr/share/dnf5/dnf5-plugins/automatic.conf",
    "/etc/dnf/automatic.conf",
    "/etc/dnf/dnf5-plugins/automatic.conf",
)
DNF_APPLY_TIMERS = ("dnf-automatic-install.timer",)
DNF_CONFIG_TIMERS = ("dnf-automatic.timer", "dnf5-automatic.timer")
DNF_REBOOT = ("never", "when-changed", "when-needed")


@dataclass(frozen=True)
class DnfSettings:
    reboot: str
    apply_updates: bool
    reboot_command: str
    conf: str  # the file that decides (last one read)
    files: tuple[str, ...]


def dnf_verdict(
    s: DnfSettings, timers: Mapping[str, UnitStatus], schedules: Mapping[str, str]
) -> RebootSource:
    running = [t for t, st in timers.items() if not_running(st) is None]
    applying = [
        t for t in running if t in DNF_APPLY_TIMERS or (t in DNF_CONFIG_TIMERS and s.apply_updates)
    ]
    settings = {
        "reboot": s.reboot,
        "apply_updates": str(s.apply_updates).lower(),
        "reboot_command": s.reboot_command,
        **{t: st.summary() for t, st in timers.items()},
    }
    fix = advice.dnf_automatic_fix(s.conf)
    units = tuple(timers)

    def src(v: Verdict, how: str, when: str, fix: str = fix) -> RebootSource:
        return RebootSource("dnf-automatic", v, how, when, fix, settings, s.files, units)

    if s.reboot == "never":
        return src(
            Verdict.NO,
            "reboot = never: dnf-automatic applies updates but never reboots.",
            "never",
            "nothing to change",
        )
    if s.reboot not in DNF_REBOOT:
        return src(
            Verdict.UNKNOWN,
            f"reboot = {s.reboot} is not never, when-changed or when-needed.",
            "unknown",
        )
    if not running:
        return src(Verdict.NO, "no dnf-automatic timer runs on this host.", "never")
    if not applying:
        return src(
            Verdict.NO,
            f"{', '.join(running)} only downloads or notifies "
            "(apply_updates = no), and reboot= acts only after it applies updates.",
            "never",
        )
    need = (
        "after a transaction that touched the kernel, glibc, systemd, dbus, "
        "linux-firmware or microcode"
        if s.reboot == "when-needed"
        else "after any applied transaction"
    )
    how = f"dnf-automatic runs `{s.reboot_command}` {need} (reboot = {s.reboot})."
    when = "; ".join(f"{t} ({schedules.get(t) or 'its schedule'})" for t in applying)
    return src(Verdict.YES, how, when)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def read_dnf(host: Host) -> DnfSettings | None:
    files = [p for p in DNF_CONFS if host.fs.is_file(p)]
    timers = [t for t in (*DNF_APPLY_TIMERS, *DNF_CONFIG_TIMERS) if host.unit(t).found]
    if not files and not timers:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    for path in files:
        try:
            parser.read_string(host.fs.read_text(path) or "", source=path)
        except configparser.Error:
            continue
    apply = parser.get("commands", "apply_updates", fallback="no").strip().lower()
    return DnfSettings(
        reboot=parser.get("commands", "reboot", fallback="never").strip().lower(),
        apply_updates=apply in ("yes", "true", "1", "on"),
        reboot_command=_unquote(
            parser.get(
                "commands",
                "reboot_command",
                fallback="shutdown -r +5 'Rebooting after applying package updates'",
            )
        ),
        conf=files[-1] if files else "/etc/dnf/automatic.conf",
        files=tuple(files),
    )


def find(host: Host) -> list[RebootSource]:
    dnf = read_dnf(host)
    if dnf is None:
        return []
    names = [t for t in (*DNF_APPLY_TIMERS, *DNF_CONFIG_TIMERS) if host.unit(t).found]
    return [
        dnf_verdict(
            dnf, {t: host.unit(t) for t in names}, {t: host.timer_schedule(t) for t in names}
        )
    ]

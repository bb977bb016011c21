"""cron and anacron entries that call `reboot`, `shutdown -r`, `systemctl reboot`…"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from stagger.doctor import advice
from stagger.doctor.configs import parse_anacrontab, parse_crontab, reboot_command
from stagger.doctor.sources.base import Host, RebootSource, Verdict, not_running
from stagger.doctor.units.status import UnitStatus

CRON_DAEMONS = ("cron.service", "crond.service", "cronie.service")
CRON_PERIODIC = ("hourly", "daily", "weekly", "monthly")


def cron_verdict(
    schedule: str, command: str, source: str, line: int, daemons: Mapping[str, UnitStatus]
) -> RebootSource:
    found = {n: s for n, s in daemons.items() if s.found}
    running = [n for n, s in found.items() if not_running(s) is None]
    settings = {
        "schedule": schedule,
        "command": command,
        **{n: s.summary() for n, s in found.items()},
    }
    fix = advice.cron_fix(source, line)
    where = f"{source} line {line}"
    if running:
        return RebootSource(
            "cron",
            Verdict.YES,
            f"{running[0]} runs `{command}` ({where}).",
            schedule,
            fix,
            settings,
            (source,),
            tuple(running),
        )
    if found:
        return RebootSource(
            "cron",
            Verdict.NO,
            f"`{command}` ({where}) would reboot, but no cron daemon starts on this host.",
            "never",
            fix,
            settings,
            (source,),
            tuple(found),
        )
    return RebootSource(
        "cron",
        Verdict.UNKNOWN,
        f"`{command}` ({where}) reboots the host when "
        "a cron daemon runs it; no cron unit is in this tree.",
        schedule,
        fix,
        settings,
        (source,),
    )


def find(host: Host) -> list[RebootSource]:
    fs = host.fs
    daemons = {n: host.unit(n) for n in CRON_DAEMONS}
    entries = []
    for path, user_field in (
        [("/etc/crontab", True)]
        + [(posixpath.join("/etc/cron.d", n), True) for n in fs.listdir("/etc/cron.d")]
        + [
            (posixpath.join(d, n), False)
            for d in ("/var/spool/cron/crontabs", "/var/spool/cron")
            for n in fs.listdir(d)
        ]
    ):
        if path.endswith(("~", ".dpkg-old", ".dpkg-dist", ".rpmsave", ".rpmnew")):
            continue
        if not fs.is_file(path):
            continue
        entries.extend(parse_crontab(fs.read_text(path) or "", path, user_field))
    entries.extend(parse_anacrontab(fs.read_text("/etc/anacrontab") or "", "/etc/anacrontab"))
    out = [
        cron_verdict(e.schedule, hit, e.source, e.line, daemons)
        for e in entries
        if (hit := reboot_command(e.command))
    ]
    for period in CRON_PERIODIC:
        d = f"/etc/cron.{period}"
        for name in fs.listdir(d):
            path = posixpath.join(d, name)
            for number, line in enumerate((fs.read_text(path) or "").splitlines(), start=1):
                stripped = line.strip()
                if stripped.startswith("#"):
                    continue
                hit = reboot_command(stripped)
                if hit:
                    out.append(
                        cron_verdict(f"{period} (run-parts {d})", hit, path, number, daemons)
                    )
    return out

"""systemd timers whose unit reboots the host (`Unit=reboot.target`, a service whose
`ExecStart*=` reboots, or `SuccessAction=reboot…`)."""

from __future__ import annotations

from stagger.doctor import advice
from stagger.doctor.configs import reboot_command
from stagger.doctor.sources.base import Host, RebootSource, Verdict, not_running
from stagger.doctor.units.status import UnitStatus

REBOOT_TARGETS = ("reboot.target", "kexec.target", "soft-reboot.target")
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecStartPost")


def timer_verdict(timer: UnitStatus, service: str, action: str, schedule: str) -> RebootSource:
    settings = {
        "timer": timer.summary(),
        "unit": service,
        "schedule": schedule,
        "reboots with": action,
    }
    fix = advice.timer_fix(timer.name)
    stopped = not_running(timer)
    units = (timer.name, service)
    evidence = tuple(p for p in (timer.path,) if p)
    if stopped:
        return RebootSource(
            f"timer {timer.name}",
            Verdict.NO,
            f"{stopped}.",
            "never",
            fix,
            settings,
            evidence,
            units,
        )
    return RebootSource(
        f"timer {timer.name}",
        Verdict.YES,
        f"{timer.name} starts {service}, which reboots the host ({action}).",
        schedule or "on its schedule",
        fix,
        settings,
        evidence,
        units,
    )


def find(host: Host) -> list[RebootSource]:
    out: list[RebootSource] = []
    for name, loaded in sorted(host.tree.units.items()):
        if not name.endswith(".timer") or not loaded.found or loaded.masked or loaded.alias_of:
            continue
        target = loaded.unit.last("Timer", "Unit") or name.removesuffix(".timer") + ".service"
        action = None
        if target in REBOOT_TARGETS:
            action = f"Unit={target}"
        else:
            svc = host.tree.get(target)
            if svc is not None and svc.found and not svc.masked:
                for key in EXEC_KEYS:
                    for line in svc.unit.values("Service", key):
                        hit = reboot_command(line.lstrip("@-:+!"))
                        if hit:
                            action = f"{key}={hit}"
                for key in ("SuccessAction", "FailureAction"):
                    value = svc.unit.last("Unit", key) or ""
                    if key == "SuccessAction" and value.startswith("reboot"):
                        action = f"{key}={value}"
        if action:
            out.append(timer_verdict(host.unit(name), target, action, host.timer_schedule(name)))
    return out

"""update_engine + locksmithd (CoreOS Container Linux, Flatcar): locksmithd reboots by its
`REBOOT_STRATEGY`; update_engine only stages updates and is listed so nobody stops it."""

from __future__ import annotations

from dataclasses import dataclass

from stagger.doctor import advice
from stagger.doctor.configs import parse_env_file, parse_environment_assignments
from stagger.doctor.sources.base import Host, RebootSource, Verdict, not_running
from stagger.doctor.units.status import UnitStatus

LOCKSMITH_STRATEGIES = ("reboot", "etcd-lock", "best-effort", "off")


@dataclass(frozen=True)
class LocksmithSettings:
    strategy: str  # as configured; "" means locksmithd's default (reboot, v0.6.0+)
    window_start: str
    window_length: str
    group: str
    strategy_source: str  # file or unit that set REBOOT_STRATEGY
    update_conf: str  # the admin file to edit


def locksmith_verdict(
    s: LocksmithSettings, status: UnitStatus, detectors_blind: bool = False
) -> RebootSource:
    """`detectors_blind`: stagger's configured detectors would not see update_engine's
    updates (the fix then says to add its detector)."""
    strategy = s.strategy or "reboot"
    settings = {
        "REBOOT_STRATEGY": s.strategy or "(unset: reboot)",
        "window_start": s.window_start,
        "window_length": s.window_length,
        "group": s.group,
        "unit": status.summary(),
    }
    evidence = tuple(p for p in (s.strategy_source, status.path) if p)
    fix = advice.locksmith_fix(s.update_conf, detectors_blind)
    units = ("locksmithd.service",)
    if s.window_start and s.window_length:
        when = f"in the reboot window starting {s.window_start} for {s.window_length}"
    else:
        when = "at any hour, minutes after an update is staged (no reboot window)"
    stopped = not_running(status)
    if stopped:
        return RebootSource(
            "locksmith", Verdict.NO, f"{stopped}.", "never", fix, settings, evidence, units
        )
    if strategy == "off":
        return RebootSource(
            "locksmith",
            Verdict.NO,
            "REBOOT_STRATEGY=off: locksmithd exits as soon as it starts.",
            "never",
            advice.update_engine_note(),
            settings,
            evidence,
            units,
        )
    trigger = "when update_engine reports UPDATE_STATUS_UPDATED_NEED_REBOOT"
    if strategy == "reboot":
        how = (
            f"locksmithd asks logind to reboot {trigger} "
            f"(REBOOT_STRATEGY={s.strategy or 'unset, which means reboot'}); "
            f"locksmithd is {status.summary()}."
        )
    elif strategy in ("etcd-lock", "best-effort"):
        how = (
            f"locksmithd takes a slot in locksmith's own etcd semaphore and reboots {trigger} "
            f"(REBOOT_STRATEGY={strategy}): coordinated, but not by stagger."
        )
    else:
        return RebootSource(
            "locksmith",
            Verdict.UNKNOWN,
            f"REBOOT_STRATEGY={s.strategy} is not one locksmithd knows (reboot, etcd-lock, "
            "off): it fails at its first reboot attempt and restarts every 10 s.",
            "unknown",
            fix,
            settings,
            evidence,
            units,
        )
    return RebootSource("locksmith", Verdict.YES, how, when, fix, settings, evidence, units)


def read_locksmith(host: Host) -> LocksmithSettings | None:
    loaded = host.tree.get("locksmithd.service")
    if loaded is None or not loaded.found:
        return None
    flatcar = host.image.os_id == "flatcar" or host.fs.is_dir("/usr/share/flatcar")
    vendor = "/usr/share/flatcar/update.conf" if flatcar else "/usr/share/coreos/update.conf"
    admin = "/etc/flatcar/update.conf" if flatcar else "/etc/coreos/update.conf"
    u = loaded.unit
    # systemd: EnvironmentFile= variables override Environment= ones; later files win.
    env: dict[str, tuple[str, str]] = {
        k: (v, loaded.path or "locksmithd.service")
        for k, v in parse_environment_assignments(u.values("Service", "Environment")).items()
    }
    files = [f.lstrip("-").strip() for f in u.values("Service", "EnvironmentFile")]
    if not files and not loaded.masked:
        files = [vendor, admin]
    for path in files:
        for k, v in parse_env_file(host.fs.read_text(path) or "").items():
            env[k] = (v, path)
    if admin not in files and files:
        admin = files[-1]

    def get(*keys: str) -> tuple[str, str]:
        for key in keys:
            if env.get(key, ("", ""))[0]:
                return env[key]
        return ("", "")

    strategy, source = get("REBOOT_STRATEGY")
    return LocksmithSettings(
        strategy=strategy,
        window_start=get("LOCKSMITHD_REBOOT_WINDOW_START", "REBOOT_WINDOW_START")[0],
        window_length=get("LOCKSMITHD_REBOOT_WINDOW_LENGTH", "REBOOT_WINDOW_LENGTH")[0],
        group=get("LOCKSMITHD_GROUP")[0],
        strategy_source=source,
        update_conf=admin,
    )


def update_engine_source(status: UnitStatus) -> RebootSource:
    return RebootSource(
        "update_engine",
        Verdict.NO,
        "update_engine downloads and stages updates but never reboots the host itself "
        f"(a coordinator does); update-engine is {status.summary()}.",
        "never",
        advice.update_engine_note(),
        {"unit": status.summary()},
        tuple(p for p in (status.path,) if p),
        ("update-engine.service",),
    )


def find(host: Host) -> list[RebootSource]:
    found: list[RebootSource] = []
    locksmith = read_locksmith(host)
    if locksmith is not None:
        blind = host.stagger.detectors_blind is not None
        found.append(locksmith_verdict(locksmith, host.unit("locksmithd.service"), blind))
    engine = host.unit("update-engine.service")
    if engine.found:
        found.append(update_engine_source(engine))
    return found

"""Known reboot sources: for each agent that can reboot a host on its own, read its settings
from the tree and decide — in a pure function of those settings — whether it will reboot
this host by itself (yes / no / unknown), how, and when.

Readers (`read_*`) do the file reading through `Host`; verdicts (`*_verdict`) take plain
values and return a `RebootSource`, so each rule is tested without a file tree."""

from __future__ import annotations

import configparser
import posixpath
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from stagger.doctor import advice
from stagger.doctor.conditions import HostImage, read_host_image
from stagger.doctor.configs import (
    AptValue,
    apt_bool,
    parse_anacrontab,
    parse_apt_conf,
    parse_crontab,
    parse_env_file,
    parse_environment_assignments,
    reboot_command,
)
from stagger.doctor.rootfs import RootFS
from stagger.doctor.units import (
    DbusActivation,
    UnitStatus,
    UnitTree,
    boot_units,
    load_dbus_activations,
    load_tree,
    unit_status,
)


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


# ---------------------------------------------------------------------------------------------
# The host as read once


@dataclass
class Host:
    """Everything read from the root, each piece once, on first use."""

    fs: RootFS
    fleetlock_urls: tuple[str, ...] = ()

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

    def unit(self, name: str) -> UnitStatus:
        return unit_status(self.tree, name, self.boot, self.activations)

    def timer_schedule(self, timer: str) -> str:
        loaded = self.tree.get(timer)
        if loaded is None or not loaded.found:
            return ""
        keys = ("OnCalendar", "OnBootSec", "OnUnitActiveSec", "RandomizedDelaySec")
        return ", ".join(f"{k}={v}" for k in keys for v in loaded.unit.values("Timer", k))


def _not_running(status: UnitStatus) -> str | None:
    """Why a unit will not run on this host, or None when it will."""
    if not status.found:
        return f"{status.name} is not installed"
    if status.masked:
        return f"{status.name} is masked"
    if not status.starts:
        return f"{status.name} is {status.enabled.value} and nothing starts it"
    return None


# ---------------------------------------------------------------------------------------------
# update_engine + locksmithd (CoreOS Container Linux, Flatcar)

LOCKSMITH_STRATEGIES = ("reboot", "etcd-lock", "best-effort", "off")


@dataclass(frozen=True)
class LocksmithSettings:
    strategy: str  # as configured; "" means locksmithd's default (reboot, v0.6.0+)
    window_start: str
    window_length: str
    group: str
    strategy_source: str  # file or unit that set REBOOT_STRATEGY
    update_conf: str  # the admin file to edit


def locksmith_verdict(s: LocksmithSettings, status: UnitStatus) -> RebootSource:
    strategy = s.strategy or "reboot"
    settings = {
        "REBOOT_STRATEGY": s.strategy or "(unset: reboot)",
        "window_start": s.window_start,
        "window_length": s.window_length,
        "group": s.group,
        "unit": status.summary(),
    }
    evidence = tuple(p for p in (s.strategy_source, status.path) if p)
    fix = advice.locksmith_fix(s.update_conf)
    units = ("locksmithd.service",)
    if s.window_start and s.window_length:
        when = f"in the reboot window starting {s.window_start} for {s.window_length}"
    else:
        when = "at any hour, minutes after an update is staged (no reboot window)"
    stopped = _not_running(status)
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


# ---------------------------------------------------------------------------------------------
# Zincati (Fedora CoreOS)

ZINCATI_DIRS = ("/usr/lib/zincati/config.d", "/run/zincati/config.d", "/etc/zincati/config.d")


@dataclass(frozen=True)
class ZincatiSettings:
    enabled: bool
    strategy: str
    windows: tuple[str, ...]
    time_zone: str
    base_url: str
    group: str
    fragments: tuple[str, ...]
    errors: tuple[str, ...] = ()


def _merge_toml(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge_toml(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = into[key] + value  # [[updates.periodic.window]] accumulate
        else:
            into[key] = value


def merge_zincati(fragments: Iterable[tuple[str, str]]) -> ZincatiSettings:
    """Fragments as (path, text), already in Zincati's order (by file name)."""
    merged: dict[str, Any] = {}
    errors: list[str] = []
    paths: list[str] = []
    for path, text in fragments:
        paths.append(path)
        try:
            _merge_toml(merged, tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            errors.append(f"{path}: {exc}")
    updates = merged.get("updates", {})
    periodic = updates.get("periodic", {})
    windows = tuple(
        f"{','.join(w.get('days', []))} {w.get('start_time', '?')} "
        f"for {w.get('length_minutes', '?')} min"
        for w in periodic.get("window", [])
        if isinstance(w, dict)
    )
    return ZincatiSettings(
        enabled=bool(updates.get("enabled", True)),
        strategy=str(updates.get("strategy", "") or "immediate"),
        windows=windows,
        time_zone=str(periodic.get("time_zone", "UTC")),
        base_url=str(updates.get("fleet_lock", {}).get("base_url", "")),
        group=str(merged.get("identity", {}).get("group", "default")),
        fragments=tuple(paths),
        errors=tuple(errors),
    )


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def zincati_verdict(
    s: ZincatiSettings, status: UnitStatus, stagger_urls: tuple[str, ...]
) -> RebootSource:
    settings = {
        "updates.enabled": str(s.enabled).lower(),
        "strategy": s.strategy,
        "windows": "; ".join(s.windows),
        "time_zone": s.time_zone,
        "fleet_lock.base_url": s.base_url,
        "group": s.group,
        "unit": status.summary(),
    }
    evidence = s.fragments
    fix = advice.zincati_fix()
    units = ("zincati.service",)

    def src(v: Verdict, how: str, when: str, fix: str = fix) -> RebootSource:
        return RebootSource("zincati", v, how, when, fix, settings, evidence, units)

    stopped = _not_running(status)
    if stopped:
        return src(Verdict.NO, f"{stopped}.", "never")
    if s.errors:
        return src(
            Verdict.UNKNOWN,
            f"a Zincati fragment is not valid TOML, so Zincati will not start: {s.errors[0]}",
            "unknown",
        )
    if not s.enabled:
        return src(
            Verdict.NO,
            "updates.enabled = false: Zincati neither updates nor reboots "
            "(updates are off too: turn them back on with the fix)",
            "never",
        )
    if s.strategy == "immediate":
        return src(
            Verdict.YES,
            "Zincati finalizes (reboots into) each update as soon as it "
            "is staged (strategy immediate).",
            "at any hour, minutes after an update is staged",
        )
    if s.strategy == "periodic":
        return src(
            Verdict.YES,
            "Zincati reboots into each staged update inside its periodic "
            "windows (strategy periodic), with no fleet-wide slot.",
            f"windows {'; '.join(s.windows) or '(none: Zincati fails)'} ({s.time_zone})",
        )
    if s.strategy == "fleet_lock":
        if any(_same_url(s.base_url, u) for u in stagger_urls):
            return src(
                Verdict.NO,
                f"Zincati asks stagger's FleetLock server at {s.base_url} "
                "for a slot before each reboot.",
                "when stagger grants a slot",
                "nothing to change: stagger decides",
            )
        return src(
            Verdict.UNKNOWN,
            "Zincati reboots when the FleetLock server at "
            f"{s.base_url or '(no base_url: Zincati fails)'} grants a slot; the doctor "
            "cannot tell whether that is stagger (pass --fleetlock-url URL).",
            "when that server grants a slot",
        )
    return src(
        Verdict.UNKNOWN,
        f"strategy {s.strategy!r} is not one Zincati knows: it refuses to start.",
        "unknown",
    )


def read_zincati(host: Host) -> ZincatiSettings | None:
    status_found = host.tree.get("zincati.service")
    present = any(host.fs.is_dir(d) for d in ZINCATI_DIRS)
    if not present and (status_found is None or not status_found.found):
        return None
    chosen: dict[str, str | None] = {}
    for d in ZINCATI_DIRS:  # later directories win for the same file name
        for fname in host.fs.listdir(d):
            if fname.startswith(".") or not fname.endswith(".toml"):
                continue
            path = posixpath.join(d, fname)
            chosen[fname] = None if host.fs.points_to_null(path) else path
    fragments = [
        (p, host.fs.read_text(p) or "") for _, p in sorted(chosen.items()) if p is not None
    ]
    return merge_zincati(fragments)


# ---------------------------------------------------------------------------------------------
# unattended-upgrades (Debian, Ubuntu)

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
    stopped = _not_running(timer)
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


# ---------------------------------------------------------------------------------------------
# dnf-automatic (RHEL, Fedora, CentOS)

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
    running = [t for t, st in timers.items() if _not_running(st) is None]
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


# ---------------------------------------------------------------------------------------------
# rebootmgr (openSUSE MicroOS, SLE Micro)

REBOOTMGR_CONFS = (
    "/usr/etc/rebootmgr.conf",
    "/etc/rebootmgr.conf",
    "/etc/rebootmgr/rebootmgr.conf",
)


@dataclass(frozen=True)
class RebootmgrSettings:
    strategy: str
    window_start: str
    window_duration: str
    conf: str
    files: tuple[str, ...]


def rebootmgr_verdict(s: RebootmgrSettings, status: UnitStatus) -> RebootSource:
    settings = {
        "strategy": s.strategy,
        "window-start": s.window_start,
        "window-duration": s.window_duration,
        "unit": status.summary(),
    }
    fix = advice.rebootmgr_fix(s.conf)
    units = ("rebootmgr.service",)

    def src(v: Verdict, how: str, when: str, fix: str = fix) -> RebootSource:
        return RebootSource("rebootmgr", v, how, when, fix, settings, s.files, units)

    stopped = _not_running(status)
    if stopped:
        return src(Verdict.NO, f"{stopped}.", "never")
    window = (
        f"in the maintenance window {s.window_start} for {s.window_duration}"
        if s.window_start and s.window_duration
        else ""
    )
    how = (
        "rebootmgrd reboots when transactional-update (or `rebootmgrctl reboot`) asks "
        f"(strategy {s.strategy})."
    )
    match s.strategy:
        case "off":
            return src(
                Verdict.NO,
                "strategy off: rebootmgrd ignores every reboot request.",
                "never",
                "nothing to change",
            )
        case "instantly":
            return src(Verdict.YES, how, "immediately after an update")
        case "maint-window" | "best-effort":
            return src(Verdict.YES, how, window or "immediately after an update (no window)")
        case "etcd-lock":
            return src(
                Verdict.YES,
                how + " It takes rebootmgr's own etcd lock first.",
                window or "after taking its etcd lock",
            )
    return src(Verdict.UNKNOWN, f"strategy {s.strategy!r} is not one rebootmgr knows.", "unknown")


def read_rebootmgr(host: Host) -> RebootmgrSettings | None:
    files = [p for p in REBOOTMGR_CONFS if host.fs.is_file(p)]
    if not files and not host.unit("rebootmgr.service").found:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    for path in files:
        try:
            parser.read_string(host.fs.read_text(path) or "", source=path)
        except configparser.Error:
            continue
    return RebootmgrSettings(
        strategy=parser.get("rebootmgr", "strategy", fallback="best-effort").strip(),
        window_start=parser.get("rebootmgr", "window-start", fallback="").strip(),
        window_duration=parser.get("rebootmgr", "window-duration", fallback="").strip(),
        conf=files[-1] if files else "/etc/rebootmgr.conf",
        files=tuple(files),
    )


# ---------------------------------------------------------------------------------------------
# kured (Kubernetes)

# k3s and RKE2 apply every manifest in these directories to the cluster themselves.
AUTO_DEPLOY_DIRS = (
    "/var/lib/rancher/k3s/server/manifests",
    "/var/lib/rancher/rke2/server/manifests",
)
MANIFEST_DIRS = (*AUTO_DEPLOY_DIRS, "/etc/kubernetes", "/etc/kured", "/root")
MANIFEST_MAX_DEPTH = 3
_KURED_FLAG = re.compile(
    r"--(reboot-days|start-time|end-time|time-zone|period)[=\s]+\"?([^\s\"']+)"
)


def kured_when(args: Mapping[str, str]) -> str:
    days = args.get("reboot-days", "every day")
    start = args.get("start-time", "0:00")
    end = args.get("end-time", "23:59:59")
    tz = args.get("time-zone", "UTC")
    period = args.get("period", "1h")
    return f"{days}, {start}–{end} {tz}, within {period} of /var/run/reboot-required appearing"


def kured_verdict(
    where: str, auto_deployed: bool, is_unit: bool, running: str | None, args: Mapping[str, str]
) -> RebootSource:
    settings = dict(args)
    fix = advice.kured_fix(where, is_unit)
    how = (
        "kured drains this node and runs `systemctl reboot` whenever "
        "/var/run/reboot-required exists, taking kured's own lock, not stagger's."
    )
    evidence = (where,)
    if is_unit:
        if running:
            return RebootSource(
                "kured", Verdict.NO, f"{running}.", "never", fix, settings, evidence, (where,)
            )
        return RebootSource(
            "kured", Verdict.YES, how, kured_when(args), fix, settings, evidence, (where,)
        )
    if auto_deployed:
        return RebootSource(
            "kured",
            Verdict.YES,
            how + f" ({where} is applied by k3s/RKE2.)",
            kured_when(args),
            fix,
            settings,
            evidence,
        )
    return RebootSource(
        "kured",
        Verdict.UNKNOWN,
        how + f" A kured DaemonSet manifest is at "
        f"{where}; the doctor cannot see whether it is applied to the cluster.",
        kured_when(args),
        fix,
        settings,
        evidence,
    )


def read_kured(host: Host) -> list[RebootSource]:
    out: list[RebootSource] = []
    status = host.unit("kured.service")
    if status.found:
        out.append(kured_verdict("kured.service", False, True, _not_running(status), {}))
    for top in MANIFEST_DIRS:
        for path in _walk(host.fs, top, MANIFEST_MAX_DEPTH):
            if not path.endswith((".yaml", ".yml", ".json")):
                continue
            text = host.fs.read_text(path) or ""
            if "kured" not in text or "DaemonSet" not in text:
                continue
            args = {m.group(1): m.group(2) for m in _KURED_FLAG.finditer(text)}
            out.append(kured_verdict(path, top in AUTO_DEPLOY_DIRS, False, None, args))
    return out


def _walk(fs: RootFS, top: str, depth: int) -> list[str]:
    out: list[str] = []
    for name in fs.listdir(top):
        path = posixpath.join(top, name)
        if fs.is_dir(path):
            if depth > 1 and not fs.is_link(path):
                out.extend(_walk(fs, path, depth - 1))
        elif fs.is_file(path):
            out.append(path)
    return out


# ---------------------------------------------------------------------------------------------
# cron and systemd timers that call reboot

CRON_DAEMONS = ("cron.service", "crond.service", "cronie.service")
CRON_PERIODIC = ("hourly", "daily", "weekly", "monthly")


def cron_verdict(
    schedule: str, command: str, source: str, line: int, daemons: Mapping[str, UnitStatus]
) -> RebootSource:
    found = {n: s for n, s in daemons.items() if s.found}
    running = [n for n, s in found.items() if _not_running(s) is None]
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


def read_cron(host: Host) -> list[RebootSource]:
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
    stopped = _not_running(timer)
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


def read_timers(host: Host) -> list[RebootSource]:
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


# ---------------------------------------------------------------------------------------------
# All of them


def find_sources(host: Host) -> list[RebootSource]:
    """Every reboot source found on the host, worst first."""
    found: list[RebootSource] = []
    locksmith = read_locksmith(host)
    if locksmith is not None:
        found.append(locksmith_verdict(locksmith, host.unit("locksmithd.service")))
    engine = host.unit("update-engine.service")
    if engine.found:
        found.append(update_engine_source(engine))
    zincati = read_zincati(host)
    if zincati is not None:
        found.append(zincati_verdict(zincati, host.unit("zincati.service"), host.fleetlock_urls))
    unattended = read_unattended(host)
    if unattended is not None:
        timer = host.unit("apt-daily-upgrade.timer")
        found.append(
            unattended_verdict(unattended, timer, host.timer_schedule("apt-daily-upgrade.timer"))
        )
    dnf = read_dnf(host)
    if dnf is not None:
        names = [t for t in (*DNF_APPLY_TIMERS, *DNF_CONFIG_TIMERS) if host.unit(t).found]
        found.append(
            dnf_verdict(
                dnf, {t: host.unit(t) for t in names}, {t: host.timer_schedule(t) for t in names}
            )
        )
    rebootmgr = read_rebootmgr(host)
    if rebootmgr is not None:
        found.append(rebootmgr_verdict(rebootmgr, host.unit("rebootmgr.service")))
    found.extend(read_kured(host))
    found.extend(read_cron(host))
    found.extend(read_timers(host))
    return sorted(found, key=lambda s: VERDICT_ORDER[s.will_reboot])

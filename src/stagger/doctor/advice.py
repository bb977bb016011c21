"""What to change so that stagger alone decides when a host reboots — and updates keep
flowing. One function per reboot source; each returns the exact edit, never "stop the update
daemon" (the seed's workaround, which also stops security updates)."""

from __future__ import annotations

STAGGER_UNIT = "stagger-agent.service"

WARNING = (
    "Do not stop, disable or mask the update daemon (update-engine, zincati, rpm-ostreed, "
    "apt-daily-upgrade, dnf-automatic): that also stops security updates; "
    "turn off only its reboot and let stagger reboot."
)

# Units that deliver updates: switching them off is the bad know-how the warning is about.
UPDATE_DAEMONS = frozenset(
    {
        "update-engine.service",
        "zincati.service",
        "rpm-ostreed.service",
        "apt-daily-upgrade.service",
        "apt-daily-upgrade.timer",
        "apt-daily.service",
        "apt-daily.timer",
        "unattended-upgrades.service",
        "dnf-automatic.service",
        "dnf-automatic.timer",
        "dnf-automatic-install.service",
        "dnf-automatic-install.timer",
        "dnf5-automatic.service",
        "dnf5-automatic.timer",
        "transactional-update.service",
        "transactional-update.timer",
    }
)


def condition_alternative(unit: str) -> str:
    """What to do when a unit's condition path is read-only (the seed's /usr/.noupdate)."""
    if unit in UPDATE_DAEMONS:
        return (
            f"do not switch {unit} off (it delivers security updates and never needs to "
            "reboot by itself); turn off the reboot source listed above instead"
        )
    return (
        f"use `systemctl mask {unit}` (a /dev/null link in the writable /etc/systemd/system) "
        f"or a drop-in /etc/systemd/system/{unit}.d/50-off.conf with a condition on a "
        "path under /etc"
    )


def locksmith_fix(update_conf: str, detectors_blind: bool = False) -> str:
    """`detectors_blind`: stagger's configured detectors would never see update_engine's
    updates, so the fix must add its detector too (else the host would never reboot)."""
    fix = (
        f"set REBOOT_STRATEGY=off in {update_conf} and run "
        "`systemctl mask --now locksmithd.service`; update-engine keeps downloading and "
        "staging updates"
    )
    if detectors_blind:
        return (
            f'{fix}; and set [agent] detectors = ["update_engine"] in stagger\'s '
            "configuration (/etc/stagger/config.d/): with the detectors it has now, "
            f"{STAGGER_UNIT} would never see the update, and no reboot would happen"
        )
    return f"{fix}, and {STAGGER_UNIT} reboots when it reports UPDATE_STATUS_UPDATED_NEED_REBOOT"


def zincati_fix(fragment: str = "/etc/zincati/config.d/55-updates-strategy.toml") -> str:
    return (
        f'write {fragment} with `[updates]` `strategy = "fleet_lock"` and '
        '`[updates.fleet_lock]` `base_url = "http://<stagger server>/"` (keep the trailing '
        "slash; the file must end in .toml); Zincati keeps staging updates and asks stagger "
        "for a slot before each reboot"
    )


def unattended_upgrades_fix(source: str | None, line: int | None) -> str:
    where = f"{source} line {line}" if source and line else "/etc/apt/apt.conf.d/99stagger"
    return (
        f'set Unattended-Upgrade::Automatic-Reboot "false"; in {where} (APT reads '
        "apt.conf.d in name order, the last file wins); unattended-upgrades keeps "
        "installing updates and leaves /var/run/reboot-required for stagger"
    )


def dnf_automatic_fix(conf: str) -> str:
    return (
        f"set `reboot = never` in the [commands] section of {conf}; dnf-automatic keeps "
        "applying updates and stagger reboots when `needs-restarting -r` says so"
    )


def rebootmgr_fix(conf: str) -> str:
    return (
        f"set strategy=off in the [rebootmgr] section of {conf} (or run "
        "`rebootmgrctl set-strategy off`); transactional-update keeps installing updates"
    )


def kured_fix(where: str, is_unit: bool) -> str:
    if is_unit:
        return f"`systemctl mask --now {where}`: kured only reboots, it installs nothing"
    return (
        f"remove the kured DaemonSet ({where}; `kubectl -n kube-system delete daemonset "
        "kured`): kured only reboots, it installs nothing"
    )


def cron_fix(source: str, line: int) -> str:
    return f"delete line {line} of {source} (it reboots the host on a timer, with no slot)"


def timer_fix(timer: str) -> str:
    return f"`systemctl mask --now {timer}` (it reboots the host on a timer, with no slot)"


def update_engine_note() -> str:
    return "nothing to change: keep it running, it delivers the updates stagger reboots for"

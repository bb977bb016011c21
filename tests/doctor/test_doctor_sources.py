"""Known reboot sources: each verdict (yes / no / unknown) decided from settings, the
readers on fixture trees shaped like real hosts, and the configuration parsers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stagger.doctor.configs import (
    AptValue,
    apt_bool,
    parse_apt_conf,
    parse_crontab,
    parse_env_file,
    reboot_command,
)
from stagger.doctor.rootfs import RootFS
from stagger.doctor.sources import Host, Verdict, find_sources
from stagger.doctor.sources.apt import UnattendedSettings, read_unattended, unattended_verdict
from stagger.doctor.sources.coreos import LocksmithSettings, locksmith_verdict, read_locksmith
from stagger.doctor.sources.cron import cron_verdict
from stagger.doctor.sources.dnf import DnfSettings, dnf_verdict
from stagger.doctor.sources.kured import kured_verdict
from stagger.doctor.sources.rebootmgr import RebootmgrSettings, rebootmgr_verdict
from stagger.doctor.sources.timers import timer_verdict
from stagger.doctor.sources.zincati import (
    ZincatiSettings,
    merge_zincati,
    read_zincati,
    zincati_verdict,
)
from stagger.doctor.units.enablement import EnabledState
from stagger.doctor.units.startup import StartKind, StartReason
from stagger.doctor.units.status import UnitStatus

FIXTURES = Path(__file__).parents[1] / "fixtures" / "doctor"


def running(name: str) -> UnitStatus:
    why = StartReason(StartKind.LINK, "multi-user.target", "link", "/etc/x", True)
    return UnitStatus(
        name, f"/usr/lib/systemd/system/{name}", EnabledState.ENABLED, False, (why,), True
    )


def disabled(name: str) -> UnitStatus:
    return UnitStatus(
        name, f"/usr/lib/systemd/system/{name}", EnabledState.DISABLED, False, (), False
    )


def masked(name: str) -> UnitStatus:
    return UnitStatus(name, f"/etc/systemd/system/{name}", EnabledState.MASKED, True, (), False)


def absent(name: str) -> UnitStatus:
    return UnitStatus(name, None, EnabledState.NOT_FOUND, False, (), False)


def host(name: str) -> Host:
    return Host(RootFS.at(FIXTURES / name))


def sources_of(name: str) -> dict[str, Verdict]:
    return {s.name: s.will_reboot for s in find_sources(host(name))}


# ------------------------------------------------------------------------------- locksmith


def locksmith(strategy: str = "", start: str = "", length: str = "") -> LocksmithSettings:
    return LocksmithSettings(
        strategy, start, length, "", "/etc/coreos/update.conf", "/etc/coreos/update.conf"
    )


@pytest.mark.parametrize(
    ("strategy", "verdict"),
    [
        ("reboot", Verdict.YES),
        ("", Verdict.YES),  # unset means reboot since locksmith v0.6.0
        ("etcd-lock", Verdict.YES),
        ("best-effort", Verdict.YES),
        ("off", Verdict.NO),
        ("sometimes", Verdict.UNKNOWN),
    ],
)
def test_locksmith_verdict_follows_reboot_strategy(strategy: str, verdict: Verdict) -> None:
    src = locksmith_verdict(locksmith(strategy), running("locksmithd.service"))
    assert src.will_reboot is verdict


@pytest.mark.parametrize("status", [masked("locksmithd.service"), disabled("locksmithd.service")])
def test_locksmithd_that_never_runs_does_not_reboot(status: UnitStatus) -> None:
    assert locksmith_verdict(locksmith("reboot"), status).will_reboot is Verdict.NO


def test_locksmith_reports_its_window() -> None:
    src = locksmith_verdict(locksmith("reboot", "Sun 04:00", "1h"), running("locksmithd.service"))
    assert src.when == "in the reboot window starting Sun 04:00 for 1h"


def test_locksmith_fix_turns_off_the_strategy_and_masks_locksmithd() -> None:
    src = locksmith_verdict(locksmith("reboot"), running("locksmithd.service"))
    assert "REBOOT_STRATEGY=off in /etc/coreos/update.conf" in src.fix
    assert "systemctl mask --now locksmithd.service" in src.fix


def test_seed_coreos_host_is_rebooted_by_the_locksmith_strategy() -> None:
    srcs = {s.name: s for s in find_sources(host("coreos"))}
    assert srcs["locksmith"].will_reboot is Verdict.YES
    assert srcs["locksmith"].settings["REBOOT_STRATEGY"] == "reboot"
    assert srcs["locksmith"].evidence[0] == "/etc/coreos/update.conf"
    assert srcs["update_engine"].will_reboot is Verdict.NO
    assert next(iter(srcs)) == "locksmith"  # worst first


def test_update_conf_in_etc_overrides_the_vendor_file_and_environment(tmp_path: Path) -> None:
    files = {
        "usr/lib/systemd/system/locksmithd.service": "[Service]\n"
        "Environment=REBOOT_STRATEGY=etcd-lock LOCKSMITHD_GROUP=web\n"
        "EnvironmentFile=-/usr/share/coreos/update.conf\n"
        "EnvironmentFile=-/etc/coreos/update.conf\n",
        "usr/share/coreos/update.conf": "REBOOT_STRATEGY=reboot\n",
        "etc/coreos/update.conf": "# set by ct\nREBOOT_STRATEGY='off'\n"
        "REBOOT_WINDOW_START=Thu 23:00\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h30m\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    s = read_locksmith(Host(RootFS.at(tmp_path)))
    assert s is not None
    assert (s.strategy, s.strategy_source) == ("off", "/etc/coreos/update.conf")
    assert (s.window_start, s.window_length, s.group) == ("Thu 23:00", "1h30m", "web")


def test_flatcar_handed_to_stagger_has_no_other_reboot_source() -> None:
    assert sources_of("flatcar") == {"locksmith": Verdict.NO, "update_engine": Verdict.NO}


# --------------------------------------------------------------------------------- zincati


def zincati(strategy: str, **kw: object) -> ZincatiSettings:
    base: dict[str, object] = dict(
        enabled=True,
        strategy=strategy,
        windows=(),
        time_zone="UTC",
        base_url="",
        group="default",
        fragments=(),
    )
    base.update(kw)
    return ZincatiSettings(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "urls", "verdict"),
    [
        (zincati("immediate"), (), Verdict.YES),
        (zincati("periodic", windows=("Sat 22:30 for 60 min",)), (), Verdict.YES),
        (zincati("fleet_lock", base_url="http://lock/"), (), Verdict.UNKNOWN),
        (
            zincati("fleet_lock", base_url="http://stagger:8080/"),
            ("http://stagger:8080",),
            Verdict.NO,
        ),
        (zincati("immediate", enabled=False), (), Verdict.NO),
        (zincati("weekly"), (), Verdict.UNKNOWN),
        (zincati("immediate", errors=("bad toml",)), (), Verdict.UNKNOWN),
    ],
)
def test_zincati_verdict_follows_strategy(
    settings: ZincatiSettings, urls: tuple[str, ...], verdict: Verdict
) -> None:
    assert zincati_verdict(settings, running("zincati.service"), urls).will_reboot is verdict


def test_a_masked_zincati_does_not_reboot() -> None:
    src = zincati_verdict(zincati("immediate"), masked("zincati.service"), ())
    assert src.will_reboot is Verdict.NO


def test_zincati_fix_points_the_fleet_lock_strategy_at_stagger() -> None:
    src = zincati_verdict(zincati("immediate"), running("zincati.service"), ())
    assert 'strategy = "fleet_lock"' in src.fix
    assert "base_url" in src.fix


def test_zincati_fragments_merge_by_name_later_wins_windows_accumulate() -> None:
    s = merge_zincati(
        [
            ("/usr/lib/zincati/config.d/30-s.toml", '[updates]\nstrategy = "immediate"\n'),
            (
                "/etc/zincati/config.d/55-s.toml",
                '[updates]\nstrategy = "periodic"\n'
                '[[updates.periodic.window]]\ndays = ["Mon"]\nstart_time = "01:00"\n'
                "length_minutes = 30\n",
            ),
            (
                "/etc/zincati/config.d/60-w.toml",
                '[[updates.periodic.window]]\ndays = ["Tue"]\n'
                'start_time = "02:00"\nlength_minutes = 45\n',
            ),
        ]
    )
    assert s.strategy == "periodic"
    assert s.windows == ("Mon 01:00 for 30 min", "Tue 02:00 for 45 min")


def test_fcos_fixture_reads_toml_fragments_only_in_name_order() -> None:
    s = read_zincati(host("fcos"))
    assert s is not None
    assert s.enabled  # 90-disable-auto-updates.yaml is ignored, as Zincati ignores it
    assert (s.strategy, s.time_zone) == ("periodic", "Europe/Berlin")
    assert s.fragments[-1] == "/etc/zincati/config.d/55-updates-strategy.toml"
    assert sources_of("fcos") == {"zincati": Verdict.YES}


def test_a_dev_null_fragment_in_etc_masks_the_vendor_fragment(tmp_path: Path) -> None:
    d = tmp_path / "usr/lib/zincati/config.d"
    d.mkdir(parents=True)
    (d / "30-updates-strategy.toml").write_text('[updates]\nstrategy = "periodic"\n')
    e = tmp_path / "etc/zincati/config.d"
    e.mkdir(parents=True)
    os.symlink("/dev/null", e / "30-updates-strategy.toml")
    s = read_zincati(Host(RootFS.at(tmp_path)))
    assert s is not None
    assert (s.strategy, s.fragments) == ("immediate", ())


# --------------------------------------------------------------------- unattended-upgrades


def unattended(
    reboot: str | None, periodic: str = "1", with_users: bool = True
) -> UnattendedSettings:
    value = AptValue(reboot, "/etc/apt/apt.conf.d/52local", 2) if reboot is not None else None
    return UnattendedSettings(value, "now", with_users, periodic, ())


@pytest.mark.parametrize(
    ("settings", "timer", "verdict"),
    [
        (unattended("true"), running("apt-daily-upgrade.timer"), Verdict.YES),
        (unattended("false"), running("apt-daily-upgrade.timer"), Verdict.NO),
        (unattended(None), running("apt-daily-upgrade.timer"), Verdict.NO),
        (unattended("true", periodic="0"), running("apt-daily-upgrade.timer"), Verdict.NO),
        (unattended("true"), masked("apt-daily-upgrade.timer"), Verdict.NO),
        (unattended("true"), absent("apt-daily-upgrade.timer"), Verdict.UNKNOWN),
    ],
)
def test_unattended_upgrades_verdict(
    settings: UnattendedSettings, timer: UnitStatus, verdict: Verdict
) -> None:
    assert unattended_verdict(settings, timer, "").will_reboot is verdict


def test_unattended_upgrades_without_users_waits_for_logout() -> None:
    src = unattended_verdict(
        unattended("true", with_users=False), running("apt-daily-upgrade.timer"), ""
    )
    assert "unless someone is logged in" in src.how


def test_debian_fixture_reads_the_last_apt_file_and_ignores_dpkg_old() -> None:
    s = read_unattended(host("debian"))
    assert s is not None
    assert s.automatic_reboot == AptValue("true", "/etc/apt/apt.conf.d/52local", 2)
    assert (s.reboot_time, s.with_users, s.periodic) == ("02:00", False, "1")
    src = next(x for x in find_sources(host("debian")) if x.name == "unattended-upgrades")
    assert src.will_reboot is Verdict.YES
    assert "/etc/apt/apt.conf.d/52local line 2" in src.fix
    assert 'Automatic-Reboot "false"' in src.fix


def test_apt_conf_handles_nesting_comments_and_clear() -> None:
    values: dict[str, AptValue] = {}
    parse_apt_conf(
        'A::B "1"; // A::B "2";\n/* A::C "3"; */\nA { C "4"; D::E "5"; };\n', "f", values
    )
    assert {k: v.value for k, v in values.items()} == {"a::b": "1", "a::c": "4", "a::d::e": "5"}
    parse_apt_conf("#clear A::D;\n", "g", values)
    assert set(values) == {"a::b", "a::c"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("yes", True), ("on", True), ("false", False), ("0", False), ("2", True)],
)
def test_apt_booleans(text: str, expected: bool) -> None:
    assert apt_bool(text, not expected) is expected


# ---------------------------------------------------------------------------- dnf-automatic


def dnf(reboot: str, apply: bool = True) -> DnfSettings:
    return DnfSettings(reboot, apply, "shutdown -r +5", "/etc/dnf/automatic.conf", ())


@pytest.mark.parametrize(
    ("settings", "timers", "verdict"),
    [
        (dnf("when-needed"), {"dnf-automatic.timer": running("dnf-automatic.timer")}, Verdict.YES),
        (dnf("when-changed"), {"dnf-automatic.timer": running("dnf-automatic.timer")}, Verdict.YES),
        (dnf("never"), {"dnf-automatic.timer": running("dnf-automatic.timer")}, Verdict.NO),
        (
            dnf("when-needed", apply=False),
            {"dnf-automatic.timer": running("dnf-automatic.timer")},
            Verdict.NO,
        ),
        (
            dnf("when-needed", apply=False),
            {"dnf-automatic-install.timer": running("dnf-automatic-install.timer")},
            Verdict.YES,
        ),
        (dnf("when-needed"), {"dnf-automatic.timer": disabled("dnf-automatic.timer")}, Verdict.NO),
        (
            dnf("sometimes"),
            {"dnf-automatic.timer": running("dnf-automatic.timer")},
            Verdict.UNKNOWN,
        ),
    ],
)
def test_dnf_automatic_verdict(
    settings: DnfSettings, timers: dict[str, UnitStatus], verdict: Verdict
) -> None:
    assert dnf_verdict(settings, timers, {}).will_reboot is verdict


def test_rhel_fixture_reboots_when_needed_after_the_daily_timer() -> None:
    src = next(x for x in find_sources(host("rhel")) if x.name == "dnf-automatic")
    assert src.will_reboot is Verdict.YES
    assert src.settings["reboot"] == "when-needed"
    assert "dnf-automatic.timer (OnCalendar=*-*-* 6:00" in src.when
    assert "reboot = never" in src.fix


# ---------------------------------------------------------------------- rebootmgr and kured


@pytest.mark.parametrize(
    ("strategy", "status", "verdict"),
    [
        ("best-effort", running("rebootmgr.service"), Verdict.YES),
        ("instantly", running("rebootmgr.service"), Verdict.YES),
        ("maint-window", running("rebootmgr.service"), Verdict.YES),
        ("etcd-lock", running("rebootmgr.service"), Verdict.YES),
        ("off", running("rebootmgr.service"), Verdict.NO),
        ("best-effort", masked("rebootmgr.service"), Verdict.NO),
        ("whenever", running("rebootmgr.service"), Verdict.UNKNOWN),
    ],
)
def test_rebootmgr_verdict(strategy: str, status: UnitStatus, verdict: Verdict) -> None:
    s = RebootmgrSettings(strategy, "03:30", "1h30m", "/etc/rebootmgr.conf", ())
    assert rebootmgr_verdict(s, status).will_reboot is verdict


def test_microos_fixture_reboots_in_its_maintenance_window() -> None:
    src = next(x for x in find_sources(host("microos")) if x.name == "rebootmgr")
    assert (src.will_reboot, src.when) == (Verdict.YES, "in the maintenance window 03:30 for 1h30m")


def test_kured_verdicts_by_where_it_was_found() -> None:
    assert kured_verdict("kured.service", False, True, None, {}).will_reboot is Verdict.YES
    assert kured_verdict("kured.service", False, True, "masked", {}).will_reboot is Verdict.NO
    assert kured_verdict("/k3s/kured.yaml", True, False, None, {}).will_reboot is Verdict.YES
    assert kured_verdict("/root/kured.yaml", False, False, None, {}).will_reboot is (
        Verdict.UNKNOWN
    )


def test_k3s_fixture_kured_window_is_read_from_its_arguments() -> None:
    (src,) = find_sources(host("k3s"))
    assert (src.name, src.will_reboot) == ("kured", Verdict.YES)
    assert src.when.startswith("sat,sun, 2:00–5:00 Europe/Paris")


# ------------------------------------------------------------------------- cron and timers


def test_cron_reboot_runs_only_with_a_cron_daemon() -> None:
    yes = cron_verdict(
        "0 3 * * *", "reboot", "/etc/crontab", 3, {"cron.service": running("cron.service")}
    )
    no = cron_verdict(
        "0 3 * * *", "reboot", "/etc/crontab", 3, {"cron.service": masked("cron.service")}
    )
    unknown = cron_verdict("0 3 * * *", "reboot", "/etc/crontab", 3, {})
    assert (yes.will_reboot, no.will_reboot, unknown.will_reboot) == (
        Verdict.YES,
        Verdict.NO,
        Verdict.UNKNOWN,
    )
    assert yes.fix.startswith("delete line 3 of /etc/crontab")


def test_timer_reboot_verdict_follows_the_timer() -> None:
    assert timer_verdict(running("r.timer"), "r.service", "x", "").will_reboot is Verdict.YES
    assert timer_verdict(disabled("r.timer"), "r.service", "x", "").will_reboot is Verdict.NO


def test_cron_fixture_finds_the_cron_line_and_both_timers() -> None:
    srcs = find_sources(host("cron"))
    got = [(s.name, s.will_reboot, s.when) for s in srcs]
    assert got == [
        ("cron", Verdict.YES, "30 3 * * 0"),
        ("timer weekly-reboot.timer", Verdict.YES, "OnCalendar=Sun *-*-* 04:00:00"),
        ("timer monthly-reboot.timer", Verdict.NO, "never"),
    ]
    assert srcs[2].settings["reboots with"] == "Unit=reboot.target"


def test_clean_host_has_no_source_that_reboots() -> None:
    assert sources_of("clean") == {"unattended-upgrades": Verdict.NO}


@pytest.mark.parametrize(
    "command",
    [
        "reboot",
        "/sbin/reboot -f",
        "/sbin/shutdown -r now",
        "shutdown --reboot +5",
        "sudo systemctl reboot",
        "/bin/systemctl --no-block reboot",
        "systemctl start reboot.target",
        "test -f /var/run/reboot-required && /usr/sbin/reboot",
        "init 6",
    ],
)
def test_commands_that_reboot_are_recognised(command: str) -> None:
    assert reboot_command(command) is not None


@pytest.mark.parametrize(
    "command",
    [
        "test -f /var/run/reboot-required && echo needed",
        "shutdown -h now",
        "systemctl restart nginx",
        "echo reboot-required",
        "/usr/lib/apt/apt.systemd.daily install",
        "# reboot",
    ],
)
def test_commands_that_do_not_reboot_are_not(command: str) -> None:
    assert reboot_command(command) is None


def test_crontab_lines_with_and_without_user_field() -> None:
    (sys_entry,) = parse_crontab("MAILTO=root\n@weekly root reboot\n", "/etc/crontab", True)
    (user_entry,) = parse_crontab("# c\n5 4 * * sun /sbin/reboot % input\n", "/var/spool/x", False)
    assert (sys_entry.schedule, sys_entry.user, sys_entry.command) == ("@weekly", "root", "reboot")
    assert (user_entry.schedule, user_entry.command, user_entry.line) == (
        "5 4 * * sun",
        "/sbin/reboot",
        2,
    )


def test_env_file_quotes_comments_and_later_assignments() -> None:
    text = "# c\n; c\nA=1\nB=\"two words\"\nA='3'\nnot a line\n"
    assert parse_env_file(text) == {"A": "3", "B": "two words"}

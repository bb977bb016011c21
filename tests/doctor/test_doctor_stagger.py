"""stagger itself in the doctor's report: whether its agent runs, the opt-out flag, the strategy
and windows in one line, whether it applies updates, and which FleetLock URLs are stagger's.
Information only: none of it changes the exit code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stagger.config.loader import load_config
from stagger.core.strategy import Strategy
from stagger.doctor.rootfs import RootFS
from stagger.doctor.sources import Host
from stagger.doctor.sources.base import Verdict
from stagger.doctor.sources.zincati import ZincatiSettings, zincati_verdict
from stagger.doctor.stagger_node import (
    UPDATES_OFF,
    FleetLockURL,
    StaggerConfigRead,
    StaggerNode,
    config_fleetlock_urls,
    read_stagger_config,
    reboots_line,
    same_fleetlock_url,
    stagger_node,
)
from stagger.doctor.units.enablement import EnabledState
from stagger.doctor.units.startup import StartKind, StartReason
from stagger.doctor.units.status import UnitStatus

FIXTURES = Path(__file__).parents[1] / "fixtures" / "doctor"
AGENT = "stagger-agent.service"


def running() -> UnitStatus:
    why = StartReason(StartKind.LINK, "multi-user.target", "link", "/etc/x", True)
    return UnitStatus(
        AGENT, f"/lib/systemd/system/{AGENT}", EnabledState.ENABLED, False, (why,), True
    )


def masked() -> UnitStatus:
    return UnitStatus(AGENT, f"/etc/systemd/system/{AGENT}", EnabledState.MASKED, True, (), False)


def absent() -> UnitStatus:
    return UnitStatus(AGENT, None, EnabledState.NOT_FOUND, False, (), False)


def config_read(tmp_path: Path, toml: str) -> StaggerConfigRead:
    conf = tmp_path / "etc/stagger/config.d/50-node.toml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(toml)
    return read_stagger_config(RootFS.at(tmp_path))


def node(
    tmp_path: Path,
    toml: str = "",
    unit: UnitStatus | None = None,
    flag: bool = False,
    backend: str | None = "etcd://10.0.0.1:2379",
) -> StaggerNode:
    """The doctor's view of a node configured with `toml`, plus (in a fragment of its own)
    `backend`: an agent that names none never reboots."""
    if backend is not None:
        conf = tmp_path / "etc/stagger/config.d/10-backend.toml"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f'[agent]\nbackend = "{backend}"\n')
    return stagger_node(unit or running(), config_read(tmp_path, toml), flag, ())


# ---------------------------------------------------------------------------------- updates


def test_updates_off_says_security_updates_stop_and_names_the_updater(tmp_path: Path) -> None:
    n = node(tmp_path, '[updates]\nenabled = false\nupdater = "update_engine"\n')
    assert n.updates_enabled is False
    assert n.updates == f"{UPDATES_OFF} (updater update_engine)"
    assert "security updates will not be applied by stagger" in n.updates
    assert "the host's own timer, if any, still runs" in n.updates


def test_updates_off_does_not_stop_stagger_rebooting(tmp_path: Path) -> None:
    n = node(tmp_path, "[updates]\nenabled = false\n")
    assert n.will_reboot
    assert n.never_reboots == ()


def test_updates_on_show_the_updater_and_its_interval(tmp_path: Path) -> None:
    n = node(
        tmp_path,
        '[updates]\nupdater = "command"\ncommand = ["apt-get", "-y", "upgrade"]\n'
        'interval = "6h"\njitter = "5%"\n',
    )
    assert n.updates.startswith("command every 6h ±5% (apt-get -y upgrade), any time")


def test_updater_none_leaves_updates_to_the_host(tmp_path: Path) -> None:
    n = node(tmp_path, "")
    assert n.updater == "none"
    assert "the host's own timer applies updates" in n.updates


# ------------------------------------------------------------------ will stagger reboot here


def test_opt_out_flag_says_plainly_that_stagger_never_reboots(tmp_path: Path) -> None:
    n = node(tmp_path, flag=True)
    assert not n.will_reboot
    assert n.opt_out_flag
    assert n.never_reboots[0].startswith(
        "/etc/stagger/disabled exists: stagger will never reboot this host"
    )


def test_masked_agent_means_stagger_never_reboots(tmp_path: Path) -> None:
    n = node(tmp_path, unit=masked())
    assert not n.will_reboot
    assert n.never_reboots == (
        f"{AGENT} is masked: stagger will never reboot this host "
        f"(`systemctl unmask {AGENT}` to hand reboots to stagger)",
    )


def test_missing_agent_means_stagger_never_reboots(tmp_path: Path) -> None:
    n = node(tmp_path, unit=absent())
    assert n.never_reboots == (f"{AGENT} is not installed: stagger will never reboot this host",)


def test_strategy_off_means_stagger_never_reboots(tmp_path: Path) -> None:
    n = node(tmp_path, '[agent]\nstrategy = "off"\n')
    assert "[agent] strategy = off: stagger will never reboot this host" in n.never_reboots
    assert n.reboots.startswith("strategy off: stagger never reboots this host")


def test_an_enabled_agent_with_a_valid_config_reboots(tmp_path: Path) -> None:
    assert node(tmp_path, '[agent]\ngroup = "web"\n').will_reboot


def test_an_agent_with_no_backend_configured_never_reboots(tmp_path: Path) -> None:
    n = node(tmp_path, '[agent]\ngroup = "web"\n', backend=None)
    assert not n.will_reboot
    (line,) = n.never_reboots
    assert line.startswith("stagger will never reboot this host: not configured: no [agent]")
    assert node(tmp_path, '[agent]\nstrategy = "immediate"\n', backend=None).will_reboot


def test_a_broken_config_is_reported_with_its_file_not_raised(tmp_path: Path) -> None:
    read = config_read(tmp_path, '[agent]\nstrategy = "sometimes"\n')
    assert read.loaded is None
    assert read.problems[0].startswith("/etc/stagger/config.d/50-node.toml")
    n = stagger_node(running(), read, False, ())
    assert not n.will_reboot
    assert n.strategy is None
    assert "stagger's configuration is invalid, so its agent will not start" in n.never_reboots[0]
    assert "sometimes" in n.never_reboots[0]


def test_invalid_toml_is_reported_too(tmp_path: Path) -> None:
    read = config_read(tmp_path, "[agent\n")
    assert read.loaded is None
    assert "is not valid TOML" in read.problems[0]


# ------------------------------------------------------------------------ strategy and windows


def test_strategy_and_windows_fit_one_line(tmp_path: Path) -> None:
    n = node(
        tmp_path,
        '[agent]\ngroup = "web"\nbackend = "etcd://10.0.0.1:2379"\n'
        '[[window]]\ndays = ["Sat", "Sun"]\nstart = "03:00"\nlength = "90m"\n'
        'time_zone = "Asia/Tokyo"\n',
    )
    assert n.reboots == (
        "strategy lock: takes a slot of group 'web' at etcd://10.0.0.1:2379 before each "
        "reboot (from the store itself: a stagger server's [[blocker]] entries do not apply); "
        "windows weekends 03:00 for 1h30m (Asia/Tokyo)"
    )
    assert "\n" not in n.reboots


def test_a_node_that_asks_a_server_for_its_slot_is_not_told_blockers_pass_it_by() -> None:
    line = reboots_line(Strategy.LOCK, "web", "fleetlock+https://lock.example/", (), 0)
    assert "[[blocker]]" not in line
    direct = reboots_line(Strategy.BEST_EFFORT, "web", "sqlite:///x.db", (), 0)
    assert "[[blocker]] entries do not apply" in direct


def test_no_windows_means_any_time() -> None:
    line = reboots_line(Strategy.IMMEDIATE, "default", "sqlite:///x.db", (), 0)
    assert line.endswith("; any time (no windows)")


def test_backend_credentials_are_not_shown(tmp_path: Path) -> None:
    n = node(tmp_path, '[agent]\nbackend = "fleetlock+https://web-01:s3cret@lock.example/"\n')
    assert n.backend is not None
    assert "s3cret" not in n.backend
    assert "s3cret" not in n.reboots


# ------------------------------------------------------------ which FleetLock URLs are stagger's


def test_agent_fleetlock_backend_is_stagger_s_url_without_credentials(tmp_path: Path) -> None:
    read = config_read(
        tmp_path, '[agent]\nbackend = "fleetlock+https://n:t@lock.example:8443/p?token=x"\n'
    )
    assert read.loaded is not None
    assert config_fleetlock_urls(read.loaded) == (
        FleetLockURL("https://lock.example:8443/p/", "[agent].backend"),
    )


def test_an_etcd_or_sqlite_backend_names_no_fleetlock_url(tmp_path: Path) -> None:
    read = config_read(tmp_path, '[agent]\nbackend = "etcd://10.0.0.1:2379"\n')
    assert read.loaded is not None
    assert config_fleetlock_urls(read.loaded) == ()


def test_a_configured_server_on_every_address_counts_on_loopback(tmp_path: Path) -> None:
    read = config_read(tmp_path, '[server]\nlisten = "0.0.0.0:8080"\nprefix = "/fleet_lock"\n')
    assert read.loaded is not None
    urls = [u.url for u in config_fleetlock_urls(read.loaded)]
    assert "http://127.0.0.1:8080/fleet_lock/" in urls
    assert "http://localhost:8080/" in urls  # the server also answers without its prefix
    assert not any("0.0.0.0" in u for u in urls)


def test_the_default_server_table_is_not_a_server(tmp_path: Path) -> None:
    read = config_read(tmp_path, '[agent]\ngroup = "web"\n')
    assert read.loaded is not None
    assert config_fleetlock_urls(read.loaded) == ()


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://Lock.example:80/", "http://lock.example", True),
        ("https://lock.example/p/", "https://lock.example:443/p", True),
        ("http://lock.example/", "https://lock.example/", False),
        ("http://lock.example:8080/", "http://lock.example:8081/", False),
        ("http://lock.example/a/", "http://lock.example/b/", False),
        ("http://lock.example:99999/", "http://lock.example:99999/", False),
    ],
)
def test_fleetlock_urls_compare_as_servers(a: str, b: str, same: bool) -> None:
    assert same_fleetlock_url(a, b) is same


def test_zincati_pointed_at_the_agent_backend_is_not_a_source() -> None:
    s = ZincatiSettings(True, "fleet_lock", (), "UTC", "https://stagger.example:8443/", "w", ())
    url = FleetLockURL("https://stagger.example:8443/", "[agent].backend")
    zincati = UnitStatus("zincati.service", "/z", EnabledState.ENABLED, False, (), True)
    src = zincati_verdict(s, zincati, (url,))
    assert src.will_reboot is Verdict.NO
    assert "[agent].backend" in src.how


def test_host_reads_stagger_s_urls_from_its_config() -> None:
    host = Host(RootFS.at(FIXTURES / "fcos-stagger"), ("http://other:1/",))
    assert [str(u) for u in host.stagger_urls] == [
        "http://other:1/ (--fleetlock-url)",
        "https://stagger.example:8443/ ([agent].backend)",
    ]


def test_loader_used_is_stagger_s_own(tmp_path: Path) -> None:
    read = config_read(tmp_path, '[agent]\ngroup = "web"\n')
    assert read.loaded is not None
    assert read.loaded.config == load_config(None, tmp_path).config
    assert read.files == ("/etc/stagger/config.d/50-node.toml",)


# ------------------------------------------------------------------------------- the command


def doctor(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stagger", "doctor", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def copy_fixture(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root, symlinks=True)
    return root


def test_json_has_a_stagger_object_with_updates_off() -> None:
    proc = doctor(FIXTURES / "stagger-debian", "--json")
    assert proc.returncode == 0, proc.stdout
    s = json.loads(proc.stdout)["stagger"]
    assert (s["strategy"], s["group"], s["updater"], s["updates_enabled"]) == (
        "lock",
        "web",
        "command",
        False,
    )
    assert s["windows"] == ["weekdays 02:00 for 2h (Europe/Berlin)"]
    assert s["will_reboot"] is True
    assert s["config_files"] == ["/etc/stagger/config.d/50-node.toml"]
    assert "s3cret" not in proc.stdout


def test_report_says_updates_are_off_on_this_node() -> None:
    out = doctor(FIXTURES / "stagger-debian").stdout
    assert (
        "  updates: updates are off on this node: security updates will not be applied by "
        "stagger — the host's own timer, if any, still runs (updater command)"
    ) in out
    assert "  reboots: strategy lock: takes a slot of group 'web'" in out


def test_zincati_on_the_agent_s_fleetlock_server_needs_no_flag() -> None:
    proc = doctor(FIXTURES / "fcos-stagger")
    assert proc.returncode == 0, proc.stdout
    assert "(stagger's, per [agent].backend)" in proc.stdout


def test_opt_out_flag_is_said_plainly_and_keeps_exit_zero(tmp_path: Path) -> None:
    root = copy_fixture("stagger-debian", tmp_path)
    (root / "etc/stagger/disabled").touch()
    proc = doctor(root)
    assert proc.returncode == 0, proc.stdout
    assert (
        "[STAGGER WILL NOT REBOOT] /etc/stagger/disabled exists: stagger will never reboot "
        "this host"
    ) in proc.stdout
    assert "stagger will not reboot it either" in proc.stdout


def test_a_broken_stagger_config_is_reported_and_keeps_the_exit_rule(tmp_path: Path) -> None:
    root = copy_fixture("stagger-debian", tmp_path)
    (root / "etc/stagger/config.d/60-typo.toml").write_text('[agent]\nstrategy = "sometimes"\n')
    proc = doctor(root, "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)["stagger"]
    assert s["config_problems"][0].startswith("/etc/stagger/config.d/60-typo.toml")
    assert s["will_reboot"] is False
    assert "Traceback" not in proc.stderr


def test_stagger_information_never_turns_a_foreign_source_into_exit_zero(tmp_path: Path) -> None:
    root = copy_fixture("stagger-debian", tmp_path)
    conf = root / "etc/apt/apt.conf.d/50unattended-upgrades"
    conf.write_text('Unattended-Upgrade::Automatic-Reboot "true";\n')
    assert doctor(root).returncode == 1


# ------------------------------------------------------- detectors that never see the update


def test_the_file_detector_never_sees_update_engine_s_updates(tmp_path: Path) -> None:
    n = stagger_node(running(), config_read(tmp_path, ""), False, (), "update_engine")
    assert n.detectors == ("file",)
    assert n.detectors_blind is not None
    assert "configured detectors (file) will never see an update" in n.detectors_blind
    assert 'set [agent] detectors = ["update_engine"]' in n.detectors_blind
    assert n.will_reboot is False


@pytest.mark.parametrize(
    ("toml", "host"),
    [
        ('[agent]\ndetectors = ["update_engine"]\n', "update_engine"),
        ('[agent]\ndetectors = ["rpm-ostree"]\n', "rpm-ostree"),
        (
            '[agent]\ndetectors = ["command"]\n[detectors.command]\ncommand = ["/bin/t"]\n',
            "update_engine",
        ),
        ('[detectors.file]\npath = "/run/my-flag"\n', "update_engine"),  # the operator's own
        ("", None),  # a package-based host: its packages write /run/reboot-required
    ],
)
def test_detectors_that_may_see_the_host_s_updates_are_not_called_blind(
    tmp_path: Path, toml: str, host: str | None
) -> None:
    backend = tmp_path / "etc/stagger/config.d/10-backend.toml"
    backend.parent.mkdir(parents=True, exist_ok=True)
    backend.write_text('[agent]\nbackend = "etcd://10.0.0.1:2379"\n')  # else it never reboots
    n = stagger_node(running(), config_read(tmp_path, toml), False, (), host)
    assert n.detectors_blind is None
    assert n.will_reboot is True


def test_the_rpm_ostree_host_needs_the_rpm_ostree_detector(tmp_path: Path) -> None:
    n = stagger_node(running(), config_read(tmp_path, ""), False, (), "rpm-ostree")
    assert n.detectors_blind is not None
    assert 'detectors = ["rpm-ostree"]' in n.detectors_blind


def test_on_flatcar_with_the_default_detector_the_doctor_says_no_reboot_will_happen() -> None:
    proc = doctor(FIXTURES / "flatcar", "--json")
    s = json.loads(proc.stdout)["stagger"]
    assert s["detectors"] == ["file"]
    assert "UPDATE_STATUS_UPDATED_NEED_REBOOT" in s["detectors_blind"]
    assert s["will_reboot"] is False
    text = doctor(FIXTURES / "flatcar").stdout
    assert "stagger will not reboot it either (see below): no reboot will happen." in text
    assert "[STAGGER WILL NOT REBOOT] on this host update_engine reports" in text


def test_on_flatcar_with_the_update_engine_detector_stagger_reboots(tmp_path: Path) -> None:
    root = copy_fixture("flatcar", tmp_path)
    conf = root / "etc/stagger/config.d/50-imported.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text('[agent]\ndetectors = ["update_engine"]\nbackend = "etcd://10.0.0.1:2379"\n')
    s = json.loads(doctor(root, "--json").stdout)["stagger"]
    assert (s["detectors_blind"], s["will_reboot"]) == (None, True)


def test_the_locksmith_fix_adds_the_detector_the_config_lacks() -> None:
    """The fix must be true of the config it reads: with the default file detector, masking
    locksmithd alone would leave a host that never reboots."""
    proc = doctor(FIXTURES / "coreos", "--json")
    (src,) = [s for s in json.loads(proc.stdout)["reboot_sources"] if s["name"] == "locksmith"]
    assert 'set [agent] detectors = ["update_engine"]' in src["fix"]
    assert "reboots when it reports UPDATE_STATUS_UPDATED_NEED_REBOOT" not in src["fix"]


def test_on_fedora_coreos_zincati_through_stagger_s_server_is_a_coordinated_reboot(
    tmp_path: Path,
) -> None:
    root = copy_fixture("fcos", tmp_path)
    (root / "etc/zincati/config.d/55-updates-strategy.toml").write_text(
        '[updates]\nstrategy = "fleet_lock"\n'
        '[updates.fleet_lock]\nbase_url = "https://stagger.example.com:8443/"\n'
    )
    proc = doctor(root, "--fleetlock-url", "https://stagger.example.com:8443")
    assert proc.returncode == 0, proc.stdout
    assert "no reboot will happen" not in proc.stdout
    assert (
        "zincati will reboot it when stagger's FleetLock server grants a slot: a coordinated "
        "reboot through stagger."
    ) in proc.stdout
    doc = json.loads(
        doctor(root, "--fleetlock-url", "https://stagger.example.com:8443", "--json").stdout
    )
    (zincati,) = [s for s in doc["reboot_sources"] if s["name"] == "zincati"]
    assert zincati["through_stagger"] is True

"""config/migrate: locksmith's update.conf and Zincati's fragments → stagger TOML. Every output
is loaded back through the real loader, so what `stagger config import` prints is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagger.config import LoadedConfig, load_config
from stagger.config.migrate import Imported, import_files, parse_env_file, render
from stagger.core.errors import ConfigError
from stagger.core.strategy import Strategy

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def imported(tmp_path: Path, name: str, text: str) -> Imported:
    return import_files([write(tmp_path, name, text)])


def round_trip(tmp_path: Path, result: Imported) -> LoadedConfig:
    out = write(tmp_path, "imported.toml", render(result))
    return load_config(out)


def comment_text(toml: str) -> str:
    """The rendered comments as one line, so a check does not depend on where they wrap."""
    comments = (line.lstrip("# ") for line in toml.splitlines() if line.startswith("#"))
    return " ".join(" ".join(comments).split())


def notes_about(result: Imported, word: str) -> list[str]:
    return [n for n in result.notes if word in n]


# --- locksmith ---------------------------------------------------------------------------------


def test_flatcar_update_conf_maps_strategy_group_window_and_etcd(tmp_path: Path) -> None:
    result = import_files([FIXTURES / "flatcar-update.conf"])
    config = round_trip(tmp_path, result).config
    assert config.agent.strategy is Strategy.LOCK
    assert config.agent.group == "web"
    assert config.agent.backend == (
        "etcd+https://10.0.0.1:2379,10.0.0.2:2379?ca=/etc/ssl/etcd/ca.pem"
        "&cert=/etc/ssl/etcd/client.pem&key=/etc/ssl/etcd/client-key.pem"
    )
    (window,) = config.window
    assert (window.days, window.start, window.length) == (["thu"], "04:00", "1h30m0s")


def test_an_update_conf_selects_the_update_engine_detector_and_updater(tmp_path: Path) -> None:
    """On Flatcar nothing writes /run/reboot-required: the default file detector would never
    see an update, and the migrated node would never reboot."""
    result = import_files([FIXTURES / "flatcar-update.conf"])
    config = round_trip(tmp_path, result).config
    assert config.agent.detectors == ["update_engine"]
    assert config.updates.updater == "update_engine"
    said = comment_text(render(result))
    assert "nothing writes /run/reboot-required" in said
    assert "UPDATE_STATUS_UPDATED_NEED_REBOOT" in said


def test_an_update_conf_with_updates_disabled_writes_no_updater(tmp_path: Path) -> None:
    result = imported(tmp_path, "update.conf", "REBOOT_STRATEGY=off\nSERVER=disabled\n")
    config = round_trip(tmp_path, result).config
    assert config.agent.detectors == ["update_engine"]
    assert config.updates.updater == "none"
    assert notes_about(result, "SERVER=disabled")


def test_locksmith_windows_keep_the_host_zone(tmp_path: Path) -> None:
    result = import_files([FIXTURES / "flatcar-update.conf"])
    assert round_trip(tmp_path, result).config.window[0].time_zone is None
    # The comment is wrapped at 100 columns, and where it breaks depends on the source's path.
    assert "host's local time" in comment_text(render(result))


def test_update_conf_group_is_the_update_channel_not_the_reboot_group(tmp_path: Path) -> None:
    result = import_files([FIXTURES / "coreos-update.conf"])
    assert "group" not in result.agent
    (note,) = notes_about(result, "GROUP=beta")
    assert "update channel, not the reboot group" in note


def test_unprefixed_window_keys_and_a_daily_window_are_read(tmp_path: Path) -> None:
    result = import_files([FIXTURES / "coreos-update.conf"])
    (window,) = round_trip(tmp_path, result).config.window
    assert (window.days, window.start, window.length) == (["daily"], "04:00", "2h")


def test_prefixed_window_keys_win_over_the_legacy_ones(tmp_path: Path) -> None:
    result = imported(
        tmp_path,
        "update.conf",
        "REBOOT_WINDOW_START=01:00\nREBOOT_WINDOW_LENGTH=1h\n"
        "LOCKSMITHD_REBOOT_WINDOW_START=Sun 02:00\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=30m\n",
    )
    ((window, _),) = result.windows
    assert window == {"days": ["sun"], "start": "02:00", "length": "30m"}


def test_reboot_strategy_reboot_is_immediate(tmp_path: Path) -> None:
    result = imported(tmp_path, "update.conf", "REBOOT_STRATEGY=reboot\n")
    assert result.agent["strategy"][0] == "immediate"


def test_unset_reboot_strategy_is_locksmiths_default_reboot(tmp_path: Path) -> None:
    result = imported(tmp_path, "update.conf", "GROUP=stable\n")
    value, comment = result.agent["strategy"]
    assert value == "immediate"
    assert "unset" in comment


def test_unknown_reboot_strategy_is_not_mapped(tmp_path: Path) -> None:
    result = imported(tmp_path, "update.conf", "REBOOT_STRATEGY=sometimes\n")
    assert "strategy" not in result.agent
    assert notes_about(result, "REBOOT_STRATEGY=sometimes")


def test_a_window_start_without_a_length_is_not_mapped(tmp_path: Path) -> None:
    result = imported(tmp_path, "update.conf", "LOCKSMITHD_REBOOT_WINDOW_START=04:00\n")
    assert result.windows == []
    assert notes_about(result, "locksmith needs both")


def test_a_go_duration_we_cannot_read_is_not_mapped(tmp_path: Path) -> None:
    result = imported(
        tmp_path,
        "update.conf",
        "LOCKSMITHD_REBOOT_WINDOW_START=04:00\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1500us\n",
    )
    assert result.windows == []
    assert notes_about(result, "not mapped")


def test_etcd_lock_without_an_endpoint_uses_locksmiths_default_etcd(tmp_path: Path) -> None:
    result = imported(tmp_path, "update.conf", "REBOOT_STRATEGY=etcd-lock\n")
    assert result.agent["backend"][0] == "etcd://127.0.0.1:2379"


def test_the_etcd_password_is_never_copied(tmp_path: Path) -> None:
    result = imported(
        tmp_path,
        "update.conf",
        "LOCKSMITHD_ENDPOINT=http://10.0.0.1:2379\nLOCKSMITHD_ETCD_USERNAME=root\n"
        "LOCKSMITHD_ETCD_PASSWORD=hunter2\n",
    )
    assert "hunter2" not in render(result)
    assert result.agent["backend"][0] == "etcd://10.0.0.1:2379?user=root"


def test_unknown_keys_are_listed_as_not_mapped(tmp_path: Path) -> None:
    result = imported(tmp_path, "update.conf", "SERVER=disabled\nFOO=bar\n")
    assert notes_about(result, "SERVER=disabled")
    assert notes_about(result, "FOO=bar")


def test_env_file_comments_quotes_and_bad_lines_follow_systemd() -> None:
    values, notes = parse_env_file("# c\n; c\nA='x y'\nB=\"z\"\n  C = 1 \nnot a line\n")
    assert values == {"A": "x y", "B": "z", "C": "1"}
    assert len(notes) == 1


def test_a_later_update_conf_overrides_an_earlier_one(tmp_path: Path) -> None:
    usr = write(tmp_path, "usr.conf", "REBOOT_STRATEGY=reboot\n")
    etc = write(tmp_path, "etc.conf", "REBOOT_STRATEGY=off\n")
    assert import_files([usr, etc]).agent["strategy"][0] == "off"


# --- Zincati -----------------------------------------------------------------------------------


def test_zincati_periodic_windows_keep_their_zone(tmp_path: Path) -> None:
    result = import_files([FIXTURES / "zincati" / "55-updates-strategy.toml"])
    config = round_trip(tmp_path, result).config
    assert config.agent.strategy is Strategy.IMMEDIATE
    assert [(w.days, w.start, w.length, w.time_zone) for w in config.window] == [
        (["sat", "sun"], "23:30", "60m", "America/Panama"),
        (["wed"], "21:00", "30m", "America/Panama"),
    ]


def test_zincati_windows_default_to_utc(tmp_path: Path) -> None:
    result = imported(
        tmp_path,
        "55.toml",
        '[updates]\nstrategy = "periodic"\n[[updates.periodic.window]]\ndays = ["Tue"]\n'
        'start_time = "4:00"\nlength_minutes = 45\n',
    )
    ((window, _),) = result.windows
    assert window == {"days": ["tue"], "start": "04:00", "length": "45m", "time_zone": "UTC"}


def test_zincati_localtime_zone_leaves_the_host_zone(tmp_path: Path) -> None:
    result = imported(
        tmp_path,
        "55.toml",
        '[updates]\nstrategy = "periodic"\n[updates.periodic]\ntime_zone = "localtime"\n'
        '[[updates.periodic.window]]\ndays = ["Tuesday"]\nstart_time = "04:00"\n'
        "length_minutes = 45\n",
    )
    ((window, _),) = result.windows
    assert "time_zone" not in window


def test_zincati_fleet_lock_maps_to_lock_on_the_same_server(tmp_path: Path) -> None:
    result = import_files([FIXTURES / "zincati" / "50-fleet-lock.toml"])
    config = round_trip(tmp_path, result).config
    assert config.agent.strategy is Strategy.LOCK
    assert config.agent.group == "workers"
    assert config.agent.backend == "fleetlock+http://fleet-lock.example.com:8080/"
    assert notes_about(result, "rollout_wariness")


def test_zincati_windows_are_ignored_under_fleet_lock_as_zincati_did(tmp_path: Path) -> None:
    result = imported(
        tmp_path,
        "50.toml",
        '[updates]\nstrategy = "fleet_lock"\n[updates.fleet_lock]\nbase_url = "http://h/"\n'
        '[[updates.periodic.window]]\ndays = ["Mon"]\nstart_time = "04:00"\nlength_minutes = 5\n',
    )
    assert result.windows == []
    assert notes_about(result, "Zincati ignored it")


def test_zincati_fragments_merge_in_the_order_given(tmp_path: Path) -> None:
    result = import_files(
        [
            FIXTURES / "zincati" / "50-fleet-lock.toml",
            FIXTURES / "zincati" / "55-updates-strategy.toml",
        ]
    )
    assert result.agent["strategy"][0] == "immediate"
    assert len(result.windows) == 2
    assert notes_about(result, "base_url")


def test_zincati_fragments_select_the_rpm_ostree_detector(tmp_path: Path) -> None:
    result = import_files([FIXTURES / "zincati" / "50-fleet-lock.toml"])
    config = round_trip(tmp_path, result).config
    assert config.agent.detectors == ["rpm-ostree"]
    assert "rpm-ostree deployment" in comment_text(render(result))


def test_zincati_with_updates_disabled_maps_to_off(tmp_path: Path) -> None:
    result = imported(tmp_path, "90.toml", "[updates]\nenabled = false\n")
    assert result.agent["strategy"][0] == "off"


def test_zincati_node_uuid_becomes_the_id(tmp_path: Path) -> None:
    uuid = "e0f3745b108f471cbd4883c6fbed8cdd"
    result = imported(tmp_path, "10.toml", f'[identity]\nnode_uuid = "{uuid}"\n')
    assert round_trip(tmp_path, result).config.agent.id == uuid


def test_zincati_keys_about_downloads_are_listed_as_not_mapped(tmp_path: Path) -> None:
    result = imported(tmp_path, "50.toml", '[cincinnati]\nbase_url = "https://u"\n')
    assert notes_about(result, "cincinnati.base_url")


def test_an_invalid_zincati_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        imported(tmp_path, "bad.toml", "[updates\n")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        import_files([tmp_path / "nope.conf"])

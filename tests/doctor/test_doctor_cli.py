"""`stagger doctor` as an operator runs it: a real process, its report, its JSON, its exit
code (0 only when nothing but stagger reboots the host)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "doctor"


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stagger", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def doctor_json(tree: str, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = doctor("--root", str(FIXTURES / tree), "--json", *args)
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("tree", "code"),
    [
        ("coreos", 1),
        ("flatcar", 0),
        ("fcos", 1),
        ("debian", 1),
        ("rhel", 1),
        ("cron", 1),
        ("k3s", 1),
        ("microos", 1),
        ("clean", 0),
        ("stagger-debian", 0),
        ("fcos-stagger", 0),
    ],
)
def test_exit_code_is_zero_only_when_nothing_but_stagger_reboots(tree: str, code: int) -> None:
    proc = doctor("--root", str(FIXTURES / tree))
    assert proc.returncode == code, proc.stderr


def test_seed_report_names_the_unit_started_anyway_and_the_fix() -> None:
    out = doctor("--root", str(FIXTURES / "coreos")).stdout
    assert "update-engine.service: disabled, started anyway by multi-user.target" in out
    assert "D-Bus activation of com.coreos.update1" in out
    assert "[REBOOTS ON ITS OWN] locksmith" in out
    assert "REBOOT_STRATEGY=off in /etc/coreos/update.conf" in out
    assert "ConditionPathExists=!/usr/.noupdate: true" in out
    assert "cannot be used to switch the unit off" in out
    assert out.rstrip().splitlines()[-1].startswith("Warning: Do not stop")


def test_report_lists_reboot_sources_before_harmless_ones() -> None:
    out = doctor("--root", str(FIXTURES / "coreos")).stdout
    assert out.index("[REBOOTS ON ITS OWN] locksmith") < out.index("[ok] update_engine")


def test_json_has_the_documented_shape() -> None:
    code, doc = doctor_json("coreos")
    assert code == 1
    src = doc["reboot_sources"][0]
    assert {"name", "will_reboot", "how", "fix"} <= set(src)
    assert (src["name"], src["will_reboot"]) == ("locksmith", "yes")
    units = {u["name"]: u for u in doc["units"]}
    engine = units["update-engine.service"]
    assert {"name", "path", "enabled", "started_by", "conditions"} <= set(engine)
    assert engine["path"] == "/usr/lib64/systemd/system/update-engine.service"
    assert engine["enabled"] == "disabled"
    assert [r["kind"] for r in engine["started_by"]] == ["link", "dbus"]
    noupdate = engine["conditions"][1]
    assert (noupdate["path"], noupdate["result"], noupdate["can_switch_off"]) == (
        "/usr/.noupdate",
        True,
        False,
    )


def test_unit_option_shows_only_that_unit() -> None:
    code, doc = doctor_json("coreos", "--unit", "locksmithd.service")
    assert [u["name"] for u in doc["units"]] == ["locksmithd.service"]
    assert doc["units"][0]["enabled"] == "disabled"
    assert code == 1  # the verdict still covers every reboot source


def test_unit_option_on_a_missing_unit_says_not_found() -> None:
    _, doc = doctor_json("clean", "--unit", "nope.service")
    assert doc["units"][0]["enabled"] == "not-found"


def test_fleetlock_url_of_stagger_makes_zincati_harmless(tmp_path: Path) -> None:
    conf = tmp_path / "etc/zincati/config.d/55-stagger.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text(
        '[updates]\nstrategy = "fleet_lock"\n'
        '[updates.fleet_lock]\nbase_url = "http://10.0.0.5:8080/"\n'
    )
    unit = tmp_path / "usr/lib/systemd/system/zincati.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(
        "[Service]\nExecStart=/usr/libexec/zincati agent\n[Install]\nWantedBy=multi-user.target\n"
    )
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "zincati.service").symlink_to("/usr/lib/systemd/system/zincati.service")
    assert doctor("--root", str(tmp_path)).returncode == 1  # whose server is it?
    proc = doctor("--root", str(tmp_path), "--fleetlock-url", "http://10.0.0.5:8080")
    assert proc.returncode == 0, proc.stdout


def test_a_root_that_is_not_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    proc = doctor("--root", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("stagger: --root")
    assert "Traceback" not in proc.stderr


def test_a_path_as_unit_name_is_a_usage_error() -> None:
    proc = doctor("--root", str(FIXTURES / "clean"), "--unit", "/etc/x.service")
    assert proc.returncode == 2
    assert "is not a unit name" in proc.stderr

"""`stagger config show|check|import` and `stagger windows`, through the real entry point.

Most tests call `stagger.cli.main.main()` in this process with the argv the console script
gets; the exit-code and no-traceback tests run the installed script as a real process. Every
test passes --root or --config, so the host's /etc is never read."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from cli_support import run_script
from cli_support import stagger as run

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"
ETC = "etc/stagger/config.d"
TOKYO = """\
[agent]
group = "web"

[[window]]
days = ["Mon", "Thu"]
start = "04:00"
length = "1h30m"
time_zone = "Asia/Tokyo"

[[blackout]]
start = "2026-12-24T00:00:00+09:00"
end = "2027-01-04T00:00:00+09:00"
reason = "year-end freeze"
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / ETC).mkdir(parents=True)
    (tmp_path / ETC / "50-web.toml").write_text(TOKYO)
    return tmp_path


# --- config show -------------------------------------------------------------------------------


def test_config_show_json_gives_each_value_with_its_file(root: Path) -> None:
    doc = run("config", "show", "--root", str(root), "--json").json()
    values = {v["key"]: v for v in doc["values"]}
    assert values["agent.group"] == {
        "key": "agent.group",
        "value": "web",
        "source": str(root / ETC / "50-web.toml"),
    }
    assert values["agent.strategy"]["source"] == "default"
    assert doc["config"]["window"][0]["time_zone"] == "Asia/Tokyo"


def test_config_show_prints_a_table_with_sources(root: Path) -> None:
    r = run("config", "show", "--root", str(root))
    assert r.code == 0
    assert "agent.group" in r.out
    assert "50-web.toml" in r.out


def test_config_show_prints_the_host_time_zone_and_where_it_was_read(root: Path) -> None:
    (root / "etc/localtime").symlink_to("/usr/share/zoneinfo/Asia/Tokyo")
    r = run("config", "show", "--root", str(root))
    assert r.code == 0
    line = next(x for x in r.out.splitlines() if x.startswith("host time zone:"))
    assert line == (
        f"host time zone: Asia/Tokyo ({root / 'etc/localtime'} -> /usr/share/zoneinfo/Asia/Tokyo)"
    )
    doc = run("config", "show", "--root", str(root), "--json").json()
    assert doc["host_time_zone"] == {
        "name": "Asia/Tokyo",
        "source": f"{root / 'etc/localtime'} -> /usr/share/zoneinfo/Asia/Tokyo",
    }


def test_config_show_says_when_no_windows_are_configured(tmp_path: Path) -> None:
    r = run("config", "show", "--root", str(tmp_path))
    assert "no windows are configured" in r.out


# --- config check ------------------------------------------------------------------------------


def test_config_check_exits_0_for_a_valid_configuration(root: Path) -> None:
    r = run("config", "check", "--root", str(root))
    assert (r.code, r.err) == (0, "")
    assert "configuration is valid" in r.out


def test_config_check_lists_every_problem_and_exits_2(root: Path) -> None:
    (root / ETC / "60-bad.toml").write_text('[agent]\nstrategy = "sometimes"\ncolour = 1\n')
    r = run("config", "check", "--root", str(root))
    assert r.code == 2
    lines = r.err.splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"stagger: {root / ETC / '60-bad.toml'}, line ") for line in lines)


def test_config_check_json_lists_problems_with_file_key_and_line(root: Path) -> None:
    (root / ETC / "60-bad.toml").write_text('[agent]\nstrategy = "sometimes"\n')
    r = run("config", "check", "--root", str(root), "--json")
    assert r.code == 2
    (problem,) = r.json()["problems"]
    assert problem["file"] == str(root / ETC / "60-bad.toml")
    assert (problem["key"], problem["line"]) == ("[agent] strategy", 2)


def test_a_bad_config_is_one_message_and_exit_2_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[window]]\ndays = 'someday'\n")
    r = run_script("windows", "--config", str(bad), backend=None, env=dict(os.environ))
    assert r.code == 2
    assert "Traceback" not in r.err
    assert r.err.startswith("stagger: the configuration has 3 problems:\n")
    assert f"{bad}, line 2: [[window]] #1 days: day 'someday' is not a day" in r.err


# --- config import -----------------------------------------------------------------------------


def test_config_import_prints_toml_that_config_check_accepts(tmp_path: Path) -> None:
    r = run("config", "import", str(FIXTURES / "flatcar-update.conf"))
    assert r.code == 0
    out = tmp_path / "imported.toml"
    out.write_text(r.out)
    assert run("config", "check", "--config", str(out)).code == 0


def test_config_import_comments_on_what_it_cannot_map() -> None:
    r = run("config", "import", str(FIXTURES / "flatcar-update.conf"))
    assert "# Not mapped:" in r.out
    assert "GROUP=stable" in r.out


def test_config_import_json_has_the_mapped_values() -> None:
    doc = run("config", "import", str(FIXTURES / "zincati" / "50-fleet-lock.toml"), "--json").json()
    assert doc["agent"]["strategy"] == "lock"
    assert doc["toml"].startswith("# stagger configuration imported from")


def test_config_import_of_a_missing_file_is_exit_2() -> None:
    r = run("config", "import", "/nonexistent/update.conf")
    assert r.code == 2
    assert "cannot read /nonexistent/update.conf" in r.err


# --- windows -----------------------------------------------------------------------------------


def test_windows_json_lists_openings_with_rfc3339_start_and_end(root: Path) -> None:
    r = run("windows", "--root", str(root), "--from", "2026-05-14T00:48:00+09:00", "-n", "2")
    doc = run(
        "windows", "--root", str(root), "--from", "2026-05-14T00:48:00+09:00", "-n", "2", "--json"
    ).json()
    assert r.code == 0
    assert [(o["start"], o["end"]) for o in doc] == [
        ("2026-05-14T04:00:00+09:00", "2026-05-14T05:30:00+09:00"),
        ("2026-05-18T04:00:00+09:00", "2026-05-18T05:30:00+09:00"),
    ]
    assert doc[0]["start_utc"] == "2026-05-13T19:00:00+00:00"
    assert all(datetime.fromisoformat(o["end"]).utcoffset() is not None for o in doc)


def test_windows_explains_why_first(root: Path) -> None:
    r = run("windows", "--root", str(root), "--from", "2026-05-14T00:48:00+09:00")
    assert r.out.splitlines()[0].endswith("closed: next window Thu 04:00 Asia/Tokyo (in 3h12m)")


def test_windows_explain_a_gap_made_by_a_blackout(root: Path) -> None:
    doc = run(
        "windows", "--root", str(root), "--from", "2026-12-20T00:00:00+09:00", "-n", "2", "--json"
    ).json()
    assert doc[1]["start"] == "2027-01-04T04:00:00+09:00"
    assert "year-end freeze" in doc[1]["notes"][0]


def test_windows_explain_a_dst_shift(tmp_path: Path) -> None:
    cfg = tmp_path / "ny.toml"
    cfg.write_text(
        '[[window]]\ndays = "daily"\nstart = "02:30"\nlength = "1h"\n'
        'time_zone = "America/New_York"\n'
    )
    doc = run(
        "windows", "--config", str(cfg), "--from", "2026-03-08T00:00:00-05:00", "-n", "1", "--json"
    ).json()
    assert doc[0]["start"] == "2026-03-08T03:00:00-04:00"
    assert "does not exist" in doc[0]["notes"][0]


def test_windows_without_windows_say_always_open(tmp_path: Path) -> None:
    r = run("windows", "--root", str(tmp_path), "--from", "2026-05-14T00:00:00Z")
    assert "no windows are configured" in r.out


def test_windows_refuses_a_from_without_offset(root: Path) -> None:
    r = run("windows", "--root", str(root), "--from", "2026-05-14T00:00:00")
    assert r.code == 2
    assert "--from '2026-05-14T00:00:00' is not an RFC 3339 time with a UTC offset" in r.err

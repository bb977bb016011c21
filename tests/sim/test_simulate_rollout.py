"""`stagger simulate` with rollout control: the scenario's [rollout] table and the quick flags
(--stages, --bake, --max-failures, --pace, --max P%), and what the run reports of them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from stagger.core.errors import InvalidInput
from stagger.core.rollout_gate import budget_to_text
from stagger.sim import Overrides, build_scenario, load_scenario_file

ROLLOUT_FILE = """
[[group]]
name = "canary"
nodes = 4
max = 2

[[group]]
name = "web"
nodes = 20
max = "25%"

[[group]]
name = "db"
nodes = 6
max = 1

[rollout]
max_failures = 2
[[rollout.stage]]
groups = ["canary"]
bake = "30m"
[[rollout.stage]]
groups = ["web"]
close_after = "6h"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


# --- the scenario -------------------------------------------------------------------------


def test_the_rollout_table_of_a_scenario_file_gives_stages_and_budget(tmp_path: Path) -> None:
    sc = build_scenario(load_scenario_file(write(tmp_path, ROLLOUT_FILE)), Overrides())
    assert [s.groups for s in sc.stages] == [("canary",), ("web",)]
    assert [s.bake for s in sc.stages] == [timedelta(minutes=30), timedelta(0)]
    assert sc.stages[1].close_after == timedelta(hours=6)
    assert budget_to_text(sc.max_failures) == "2"
    web = sc.groups[1]
    assert (web.max, web.percent, web.slots, web.max_text()) == (25, True, 5, "25%")


def test_flags_override_the_files_rollout(tmp_path: Path) -> None:
    file = load_scenario_file(write(tmp_path, ROLLOUT_FILE))
    sc = build_scenario(file, Overrides(bake="5m", max_failures="10%", pace="2m"))
    assert [s.bake for s in sc.stages] == [timedelta(minutes=5)] * 2
    assert budget_to_text(sc.max_failures) == "10%"
    assert sc.pace == timedelta(minutes=2)


def test_stages_split_every_group_by_share_into_a_group_per_stage() -> None:
    sc = build_scenario(None, Overrides(nodes=5000, max="10%", stages="1%,20%,rest"))
    assert [(g.name, g.nodes, g.slots) for g in sc.groups] == [
        ("default.1", 50, 5),
        ("default.2", 1000, 100),
        ("default.3", 3950, 395),
    ]
    assert [s.groups for s in sc.stages] == [("default.1",), ("default.2",), ("default.3",)]


def test_stages_split_each_group_of_a_file_and_keep_a_small_share_non_empty(
    tmp_path: Path,
) -> None:
    file = load_scenario_file(write(tmp_path, ROLLOUT_FILE))
    sc = build_scenario(file, Overrides(stages="10%,rest"))
    assert [(g.name, g.nodes) for g in sc.groups] == [
        ("canary.1", 1),  # 10 % of 4 rounds down to 0: at least one node
        ("canary.2", 3),
        ("web.1", 2),
        ("web.2", 18),
        ("db.1", 1),
        ("db.2", 5),
    ]
    assert [s.groups for s in sc.stages] == [
        ("canary.1", "web.1", "db.1"),
        ("canary.2", "web.2", "db.2"),
    ]
    assert budget_to_text(sc.max_failures) == "2"  # the file's budget stays


def test_the_bound_adds_stage_by_stage_with_the_bakes_between_them() -> None:
    sc = build_scenario(
        None, Overrides(nodes=200, max="10%", stages="10%,rest", bake="30m")
    )  # 20 nodes by 2, then 180 by 18: ten 5-minute cycles each
    assert sc.bound_seconds() == 10 * 300 + 1800 + 10 * 300
    paced = build_scenario(None, Overrides(nodes=20, max="2", pace="10m"))
    assert paced.bound_seconds() == 10 * 300 + 9 * 600


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (Overrides(stages="1%,rest,20%"), "not valid at 'rest'"),
        (Overrides(stages="rest"), "not valid at 'rest'"),
        (Overrides(stages="60%,50%"), "covers 110% of the fleet"),
        (Overrides(stages="10%,20%"), "must add up to 100%"),
        (Overrides(stages="0%,rest"), "not valid at '0%'"),
        (Overrides(bake="30m"), "--bake needs stages"),
        (Overrides(max_failures="3"), "--max-failures needs stages"),
        (Overrides(stages="5%,rest", max_failures="many"), "max_failures 'many' is not valid"),
        (Overrides(stages="5%,rest", bake="soon"), "--bake"),
        (Overrides(max="150%"), "give a whole one from 1% to 100%"),
        (Overrides(pace="later"), "pace"),
    ],
)
def test_bad_rollout_flags_say_what_to_give(flags: Overrides, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        build_scenario(None, flags)


def test_a_stage_naming_a_group_the_scenario_lacks_is_refused(tmp_path: Path) -> None:
    text = ROLLOUT_FILE.replace('groups = ["web"]', 'groups = ["api"]')
    with pytest.raises(InvalidInput, match="stage 2 names group 'api'"):
        build_scenario(load_scenario_file(write(tmp_path, text)), Overrides())

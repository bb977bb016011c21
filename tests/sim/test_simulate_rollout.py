"""`stagger simulate` with rollout control: the scenario's [rollout] table and the quick flags
(--stages, --bake, --max-failures, --pace, --max P%), and what the run reports of them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from stagger.core.errors import InvalidInput
from stagger.core.rollout_gate import budget_to_text
from stagger.core.schedule import Schedule
from stagger.core.windows import Window
from stagger.sim import Overrides, Result, build_scenario, load_scenario_file, simulate
from stagger.sim.engine import Simulator

STAGGER = str(Path(sys.executable).with_name("stagger"))

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


# --- the run: the backend's own rollout gate and budget decide -----------------------------


def first_grant(result: Result, group: str) -> float:
    g = next(g for g in result.groups if g.name == group)
    return min(t for t, v in g.holders if v > 0)


def test_no_grant_in_a_stage_before_the_stage_before_finished_and_baked() -> None:
    sc = build_scenario(None, Overrides(nodes=60, max="10%", stages="10%,30%,rest", bake="20m"))
    result = simulate(sc)
    assert result.done == 60
    one, two, three = result.stages
    assert (one.nodes, two.nodes, three.nodes) == (6, 18, 36)
    # The store's stage ends are when each stage's last node finished, as the nodes say.
    for stage in (one, two, three):
        (group,) = stage.groups
        ends = next(g for g in result.groups if g.name == group).finished
        assert stage.finished_seconds == pytest.approx(max(ends))
    assert one.started_seconds == 0.0
    for before, stage in ((one, two), (two, three)):
        assert before.finished_seconds is not None
        assert stage.started_seconds == pytest.approx(before.finished_seconds + 20 * 60)
        assert first_grant(result, stage.groups[0]) >= stage.started_seconds
    assert result.completion_seconds == pytest.approx(three.finished_seconds)
    # 10 % slots: 6 nodes by 1, 18 by 1, 36 by 3; 5-minute cycles, and two bakes
    assert result.bound_seconds == (6 + 18 + 12) * 300 + 2 * 20 * 60
    assert result.completion_seconds >= result.bound_seconds


def test_without_stages_the_same_groups_reboot_side_by_side() -> None:
    """The check above can fail: with no rollout, the later groups start at once."""
    staged = build_scenario(None, Overrides(nodes=60, max="10%", stages="10%,30%,rest"))
    free = replace(staged, stages=())
    result = simulate(free)
    assert result.stages == []
    assert all(first_grant(result, g.name) == 0.0 for g in result.groups)


def test_the_error_budget_stops_the_run() -> None:
    flags = Overrides(nodes=40, max="5", stages="50%,rest", health_failure_rate=0.1, seed=3)
    free = simulate(build_scenario(None, flags))
    stopped = simulate(build_scenario(None, replace(flags, max_failures="1")))
    assert not free.stopped_by_budget
    assert stopped.stopped_by_budget
    assert stopped.halted
    assert stopped.done < free.done
    assert stopped.completion_seconds is None
    assert stopped.stages[1].started_seconds is None  # stage 2 never opened
    assert stopped.to_json()["stopped_by_budget"] is True


@pytest.mark.parametrize(
    "schedule",
    [Schedule(), Schedule((Window.parse(["tue", "thu"], "02:00", "1h", "Europe/Berlin"),))],
    ids=["always-open", "windows"],
)
@pytest.mark.parametrize("rate", [0.0, 0.1])
def test_skipping_the_polls_a_rollout_holds_back_gives_the_same_rollout(
    schedule: Schedule, rate: float
) -> None:
    flags = Overrides(
        nodes=30, max="3", stages="20%,30%,rest", bake="7m", drain_time="70s", seed=1,
        health_failure_rate=rate, max_failures="1",
    )  # fmt: skip
    sc = replace(build_scenario(None, flags), schedule=schedule)
    parked = asyncio.run(Simulator(sc, park=True).run())
    polled = asyncio.run(Simulator(sc, park=False).run())
    assert [sorted(g.finished) for g in parked.groups] == [
        sorted(g.finished) for g in polled.groups
    ]
    assert parked.to_json()["stages"] == polled.to_json()["stages"]
    assert parked.stopped_by_budget == polled.stopped_by_budget
    assert parked.stages[1].started_seconds is not None
    assert parked.events < polled.events


def grants_and_releases(result: Result) -> tuple[list[float], list[float]]:
    """When the backend's holder count went up (grants) and down (releases), per step."""
    ups: list[float] = []
    downs: list[float] = []
    for g in result.groups:
        last = 0
        for t, v in g.holders:
            (ups if v > last else downs).extend([t] * abs(v - last))
            last = v
    return sorted(ups), sorted(downs)


def test_a_pace_spaces_the_grants_of_a_freed_slot() -> None:
    result = simulate(build_scenario(None, Overrides(nodes=8, max="2", pace="10m")))
    assert result.done == 8
    grants, releases = grants_and_releases(result)
    assert grants[:2] == [0.0, 0.0]
    # every later grant takes a slot freed at least a pace earlier (one per release)
    for grant, freed in zip(grants[2:], releases, strict=False):
        assert grant >= freed + 600
    assert result.bound_seconds == 4 * 300 + 3 * 600
    assert result.completion_seconds >= result.bound_seconds
    unpaced = simulate(build_scenario(None, Overrides(nodes=8, max="2")))
    assert unpaced.completion_seconds < result.bound_seconds  # the check above can fail


@pytest.mark.parametrize("pace", ["0s", "2m"])
def test_skipping_paced_and_queued_polls_gives_the_same_rollout(pace: str) -> None:
    flags = Overrides(
        nodes=40, max="10%", pace=pace, drain_time="70s", stages="25%,rest", bake="3m"
    )
    sc = replace(build_scenario(None, flags), needed_over=timedelta(minutes=5))
    parked = asyncio.run(Simulator(sc, park=True).run())
    polled = asyncio.run(Simulator(sc, park=False).run())
    assert [sorted(g.finished) for g in parked.groups] == [
        sorted(g.finished) for g in polled.groups
    ]
    assert parked.events < polled.events


def test_a_stage_closes_after_close_after_with_a_halted_node_left_behind(tmp_path: Path) -> None:
    text = """
health_failure_rate = 0.3
seed = 1
[[group]]
name = "canary"
nodes = 6
max = 2
[[group]]
name = "web"
nodes = 10
max = 2
[rollout]
[[rollout.stage]]
groups = ["canary"]
close_after = "2h"
[[rollout.stage]]
groups = ["web"]
"""
    result = simulate(build_scenario(load_scenario_file(write(tmp_path, text)), Overrides()))
    canary = result.stages[0]
    assert result.groups[0].halted  # a halted node keeps its stage from being done...
    assert canary.finished_seconds == 2 * 3600  # ...until close_after closes it
    assert result.stages[1].started_seconds == 2 * 3600
    assert first_grant(result, "web") == pytest.approx(2 * 3600, abs=30)


# --- the command --------------------------------------------------------------------------


def test_the_cli_prints_the_stages_as_json(tmp_path: Path) -> None:
    plot = tmp_path / "rollout.svg"
    done = subprocess.run(
        [STAGGER, "simulate", "--nodes", "30", "--max", "10%", "--stages", "10%,rest",
         "--bake", "15m", "--max-failures", "5", "--json", "--plot", str(plot)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["stopped_by_budget"] is False
    assert [s["nodes"] for s in doc["stages"]] == [3, 27]
    for stage in doc["stages"]:
        assert set(stage) >= {"nodes", "started_seconds", "finished_seconds", "bake_seconds"}
        assert stage["bake_seconds"] == 900
    assert doc["stages"][1]["started_seconds"] == pytest.approx(
        doc["stages"][0]["finished_seconds"] + 900
    )
    assert doc["scenario"]["max_failures"] == "5"
    assert [g["max_percent"] for g in doc["groups"]] == [10, 10]
    assert "stage 2" in plot.read_text()

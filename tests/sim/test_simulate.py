"""`stagger simulate`: the real node cycle and semaphore on a virtual clock.

The invariants are checked over random scenarios (hypothesis); the numbers the CLI prints come
from the same Result the tests read. The simulator skips the polls of nodes that could only be
denied (engine.py's docstring); one test runs every poll for real and compares.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagger.config.loader import InvalidConfig
from stagger.core.errors import InvalidInput
from stagger.core.schedule import Schedule
from stagger.core.windows import Blackout, Window
from stagger.sim import Overrides, Result, build_scenario, load_scenario_file, simulate
from stagger.sim.distributions import parse_distribution
from stagger.sim.engine import Simulator
from stagger.sim.scenario import GroupPlan, Scenario

STAGGER = str(Path(sys.executable).with_name("stagger"))
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
TUE_THU = Schedule((Window.parse(["tue", "thu"], "02:00", "1h", "Europe/Berlin"),))


def scenario(**kw: object) -> Scenario:
    base = build_scenario(None, Overrides(nodes=20, max=3))
    return replace(base, **kw)  # type: ignore[arg-type]


def finished(result: Result) -> list[float]:
    return sorted(t for g in result.groups for t in g.finished)


# --- random scenarios ---------------------------------------------------------------------

durations = st.sampled_from(["30s", "1m", "70s", "uniform:20s-2m", "lognormal:1m,0.5"])
schedules = st.sampled_from(
    [
        Schedule(),
        TUE_THU,
        Schedule(blackouts=(Blackout(START + timedelta(minutes=10), START + timedelta(hours=2)),)),
        Schedule(
            (Window.parse("daily", "00:05", "20m"),),
            (Blackout(START + timedelta(days=1), START + timedelta(days=2), "freeze"),),
        ),
    ]
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(1, 3))
    groups = tuple(
        GroupPlan(f"g{i}", draw(st.integers(1, 25)), draw(st.integers(1, 4))) for i in range(count)
    )
    return replace(
        scenario(),
        groups=groups,
        drain=parse_distribution(draw(durations)),
        reboot=parse_distribution(draw(durations)),
        boot=parse_distribution(draw(durations)),
        schedule=draw(schedules),
        needed_over=timedelta(minutes=draw(st.sampled_from([0, 3, 45]))),
        health_failure_rate=draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])),
        seed=draw(st.integers(0, 1000)),
    )


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios())
def test_never_more_than_max_nodes_down_or_holding_per_group(sc: Scenario) -> None:
    result = simulate(sc)
    for g in result.groups:
        assert all(v <= g.max for _, v in g.down), g.name
        assert all(v <= g.max for _, v in g.holders), g.name
        assert g.max_down <= g.max
        assert g.max_holders <= g.max
    assert result.max_concurrent <= max(g.max for g in sc.groups)


@SETTINGS
@given(scenarios())
def test_every_node_is_done_halted_or_stopped_behind_halted_nodes(sc: Scenario) -> None:
    """A node that is neither done nor halted waits only because its group's every slot is
    held by a halted node."""
    result = simulate(sc)
    for g in result.groups:
        assert g.done + len(g.halted) + g.waiting == g.nodes
        assert len(g.halted) <= g.max
        if g.waiting:
            assert len(g.halted) == g.max


@SETTINGS
@given(scenarios())
def test_every_node_is_done_when_health_never_fails(sc: Scenario) -> None:
    result = simulate(replace(sc, health_failure_rate=0.0))
    assert result.done == result.nodes
    assert result.halted == []
    assert result.completion_seconds is not None


def test_a_weekly_window_finishes_the_fleet_inside_windows() -> None:
    sc = scenario(schedule=TUE_THU, groups=(GroupPlan("default", 40, 2),))
    result = simulate(sc)
    assert result.done == 40
    assert result.bound_seconds is None
    assert result.ratio is None
    for t in finished(result):
        # done = reboot start + 3m reboot + 1m boot; the reboot started inside an opening
        assert TUE_THU.is_open(START + timedelta(seconds=t) - timedelta(minutes=4))


def test_a_health_failure_halts_its_group_with_at_most_max_nodes_holding() -> None:
    sc = scenario(groups=(GroupPlan("web", 20, 3),), health_failure_rate=1.0)
    result = simulate(sc)
    group = result.groups[0]
    assert len(group.halted) == 3
    assert group.done == 0
    assert group.waiting == 17
    assert result.completion_seconds is None
    assert group.max_holders == 3


def test_each_group_halts_on_its_own_slots() -> None:
    sc = scenario(groups=(GroupPlan("a", 10, 2), GroupPlan("b", 10, 3)), health_failure_rate=1.0)
    result = simulate(sc)
    assert [len(g.halted) for g in result.groups] == [2, 3]
    assert [g.max_holders for g in result.groups] == [2, 3]
    assert all(i.startswith("a-") for i in result.groups[0].halted)


def test_the_same_seed_gives_the_same_result() -> None:
    sc = scenario(
        reboot=parse_distribution("lognormal:3m,0.4"),
        drain=parse_distribution("uniform:30s-2m"),
        needed_over=timedelta(minutes=30),
        health_failure_rate=0.05,
        seed=7,
    )
    a, b = simulate(sc), simulate(sc)
    assert a.to_json() | {"wall_seconds": 0} == b.to_json() | {"wall_seconds": 0}
    assert finished(a) == finished(b)
    other = simulate(replace(sc, seed=8))
    assert finished(other) != finished(a)


@pytest.mark.parametrize("schedule", [Schedule(), TUE_THU], ids=["always-open", "windows"])
@pytest.mark.parametrize("needed_over", [0, 7], ids=["at-once", "spread"])
@pytest.mark.parametrize("drain", ["1m", "70s"])
def test_skipping_denied_polls_gives_the_same_rollout_as_running_them(
    schedule: Schedule, needed_over: int, drain: str
) -> None:
    sc = scenario(
        groups=(GroupPlan("default", 40, 3),),
        schedule=schedule,
        needed_over=timedelta(minutes=needed_over),
        drain=parse_distribution(drain),
    )
    parked = asyncio.run(Simulator(sc, park=True).run())
    polled = asyncio.run(Simulator(sc, park=False).run())
    assert finished(parked) == finished(polled)
    assert parked.completion_seconds == polled.completion_seconds
    assert parked.events < polled.events


@pytest.mark.parametrize("drain", ["60s", "70s"])
def test_nodes_on_their_own_retry_beats_take_freed_slots_within_one_retry_in_or_out_of_step(
    drain: str,
) -> None:
    # 300 nodes, max 30, one 30 s retry: after a batch frees its 30 slots, the 30 nodes first
    # in the queue (fair order) take them at their next poll, each on its own beat
    # (Timings.retry_at): within one retry interval, whether the cycle (1m+3m+1m, or
    # 1m10s+3m+1m) is a whole number of retries or not. In lockstep, a 5m10s cycle waited 20 s
    # every batch, and a node polling out of turn never takes the slot of one ahead of it.
    result = simulate(build_scenario(None, Overrides(nodes=300, max=30, drain_time=drain)))
    waits = 10 - 1  # batches after the first, which asks at once
    assert result.bound_seconds == 10 * (300 if drain == "60s" else 310)
    per_batch = (result.completion_seconds - result.bound_seconds) / waits
    assert 0 <= per_batch < 30


# --- scenario files and distributions -----------------------------------------------------


def test_a_scenario_file_sets_groups_schedule_and_cycle(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        """
start = 2026-03-02T00:00:00Z
needed_over = "1h"
reboot_time = "uniform:2m-4m"
seed = 3

[[group]]
name = "web"
nodes = 12
max = 2

[[group]]
name = "db"
nodes = 3
max = 1

[[window]]
days = "daily"
start = "01:00"
length = "3h"

[cycle]
retry = "10s"
"""
    )
    sc = build_scenario(load_scenario_file(path), Overrides(drain_time="2m"))
    assert [(g.name, g.nodes, g.max) for g in sc.groups] == [("web", 12, 2), ("db", 3, 1)]
    assert sc.start == datetime(2026, 3, 2, tzinfo=UTC)
    assert sc.timings.retry_interval == timedelta(seconds=10)
    assert str(sc.drain) == "2m"
    assert str(sc.reboot) == "uniform:2m-4m"
    assert sc.schedule.windows[0].time_zone == "UTC"
    result = simulate(sc)
    assert result.done == 15


def test_a_scenario_file_with_an_unknown_key_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("nodes = 3\nmax_slots = 2\n")
    with pytest.raises(InvalidConfig, match=r"s\.toml, line 2:.*unknown key 'max_slots'"):
        load_scenario_file(path)


def test_groups_in_the_file_and_nodes_on_the_command_line_conflict(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[[group]]\nname = "a"\nnodes = 3\nmax = 1\n')
    with pytest.raises(InvalidInput, match="drop --nodes"):
        build_scenario(load_scenario_file(path), Overrides(nodes=5))


@pytest.mark.parametrize(
    ("text", "mean"),
    [("90s", 90.0), ("uniform:2m-4m", 180.0), ("lognormal:3m,0", 180.0)],
)
def test_distributions_parse_to_their_mean(text: str, mean: float) -> None:
    assert parse_distribution(text).mean == pytest.approx(mean)


@pytest.mark.parametrize(
    "text", ["", "fast", "uniform:4m", "uniform:4m-2m", "lognormal:3m", "lognormal:3m,x", "zipf:1"]
)
def test_bad_distributions_say_what_is_allowed(text: str) -> None:
    with pytest.raises(InvalidInput, match="like"):
        parse_distribution(text, what="reboot time")


# --- the command --------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STAGGER, "simulate", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_the_cli_prints_the_summary_as_json(tmp_path: Path) -> None:
    plot = tmp_path / "rollout.png"
    done = run_cli(
        "--nodes", "40", "--max", "4", "--reboot-time", "uniform:2m-4m", "--seed", "5",
        "--health-failure-rate", "0.05", "--json", "--plot", str(plot),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    for key in ("completion_seconds", "bound_seconds", "ratio", "max_concurrent", "halted"):
        assert key in doc
    assert doc["nodes"] == 40
    assert doc["max_concurrent"] <= 4
    assert isinstance(doc["halted"], list)
    assert all(isinstance(i, str) and i.startswith("node-") for i in doc["halted"])
    assert doc["bound_seconds"] == 10 * 300
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cli_gives_no_bound_when_windows_decide(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[[window]]\ndays = "weekdays"\nstart = "02:00"\nlength = "2h"\n')
    done = run_cli("--scenario", str(path), "--nodes", "10", "--max", "2", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["bound_seconds"] is None
    assert doc["ratio"] is None
    assert doc["completion_seconds"] > 0


def test_the_cli_reports_a_bad_value_in_one_sentence() -> None:
    done = run_cli("--drain-time", "soon")
    assert done.returncode == 2
    assert done.stderr.startswith("stagger: drain time 'soon'")
    assert "Traceback" not in done.stderr


def test_the_cli_refuses_a_plot_it_cannot_write_before_simulating(tmp_path: Path) -> None:
    done = run_cli("--plot", str(tmp_path / "rollout.jpg"))
    assert done.returncode == 2
    assert ".png nor .svg" in done.stderr


# --- the plot -------------------------------------------------------------------------------


def test_the_plot_draws_slots_held_unlike_nodes_down_with_the_legend_off_the_data() -> None:
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgb
    from matplotlib.lines import Line2D

    from stagger.sim.plot import figure

    sc = scenario(
        groups=(GroupPlan("web", 12, 3), GroupPlan("db", 4, 1)),
        schedule=Schedule((Window.parse("daily", "00:00", "30m", "UTC"),)),
    )
    fig = figure(simulate(sc))
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        fills = {c.get_label(): c for c in ax.collections if isinstance(c, PolyCollection)}
        lines = {ln.get_label(): ln for ln in ax.get_lines() if isinstance(ln, Line2D)}
        for group in ("web", "db"):
            fill = to_rgb(fills[f"{group}: nodes down"].get_facecolor()[0][:3])
            held = to_rgb(lines[f"{group}: slots held"].get_color())
            assert sum(abs(a - b) for a, b in zip(fill, held, strict=True)) > 0.6, (fill, held)
        held_colours = {to_rgb(lines[f"{g}: slots held"].get_color()) for g in ("web", "db")}
        assert len(held_colours) == 2  # each group its own
        (legend,) = fig.legends
        box = legend.get_window_extent()
        for axes in fig.axes:
            assert not box.overlaps(axes.get_window_extent()), "the legend covers the plot"
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)

"""`stagger simulate --plot`: nodes down over time per group, the slot limit, the share of
the fleet done, and the schedule's windows and blackouts shaded. matplotlib is imported here
only, and only when a plot is asked for."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from stagger.core.durations import format_duration
from stagger.core.errors import InvalidInput
from stagger.sim.engine import Result

FORMATS = (".png", ".svg")
WINDOW_COLOR = "#2ca02c"
BLACKOUT_COLOR = "#7f7f7f"


def _unit(end_seconds: float) -> tuple[float, str]:
    """Seconds per x-axis unit and its name: minutes, hours or days, by the run's length."""
    if end_seconds <= 3 * 3600:
        return 60.0, "minutes"
    if end_seconds <= 3 * 86400:
        return 3600.0, "hours"
    return 86400.0, "days"


def _steps(
    points: list[tuple[float, int]], end: float, scale: float
) -> tuple[list[float], list[int]]:
    xs, ys = [0.0], [0]
    for t, v in points:
        xs.append(t / scale)
        ys.append(v)
    xs.append(end / scale)
    ys.append(ys[-1])
    return xs, ys


def check_plot_path(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise InvalidInput(
            f"plot file {str(path)!r} is neither .png nor .svg: name it like rollout.png"
        )
    if not path.parent.is_dir():
        raise InvalidInput(
            f"plot file {str(path)!r} is in a directory that does not exist: create "
            f"{str(path.parent)!r} first"
        )


def plot(result: Result, path: Path) -> None:
    """Write the plot to `path` (.png or .svg)."""
    check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = result.scenario
    end = max(result.end_seconds, 1.0) * 1.02
    scale, unit = _unit(end)
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    done_ax: Any = ax.twinx()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    top = 1
    for i, g in enumerate(result.groups):
        color = colors[i % len(colors)]
        name = f"{g.name}: " if len(result.groups) > 1 else ""
        xs, ys = _steps(g.down, end, scale)
        ax.fill_between(
            xs, ys, step="post", color=color, alpha=0.35, linewidth=0, label=f"{name}nodes down"
        )
        hx, hy = _steps(g.holders, end, scale)
        ax.step(hx, hy, where="post", color=color, linewidth=1.0, label=f"{name}slots held")
        ax.axhline(g.max, color=color, linestyle="--", linewidth=1.0, alpha=0.9)
        ax.annotate(
            f"max {g.max}" + (f" ({g.name})" if len(result.groups) > 1 else ""),
            xy=(end / scale, g.max),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color=color,
        )
        top = max(top, g.max, g.max_down)
    finished = sorted(t for g in result.groups for t in g.finished)
    if finished:
        dx = [0.0] + [t / scale for t in finished] + [end / scale]
        dy = [0.0] + [100.0 * (k + 1) / result.nodes for k in range(len(finished))]
        dy.append(dy[-1])
        done_ax.step(dx, dy, where="post", color="black", linewidth=1.0, alpha=0.45)
    done_ax.set_ylim(0, 105)
    done_ax.set_ylabel("fleet done (%)  — grey line", color="#555555")

    _shade(ax, result, end, scale)
    ax.set_xlim(0, end / scale)
    ax.set_ylim(0, top * 1.25 + 1)
    ax.set_xlabel(f"{unit} since {sc.start:%a %Y-%m-%d %H:%M} UTC")
    ax.set_ylabel("nodes (down: rebooting or booting; held: drain to release)")
    ax.set_title(_title(result), fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _shade(ax: Any, result: Result, end: float, scale: float) -> None:
    sc = result.scenario
    until = sc.start + timedelta(seconds=end)
    if sc.schedule.windows:
        first = True
        for o in sc.schedule.openings(sc.start, 10_000):
            if o.start >= until:
                break
            a = (o.start - sc.start).total_seconds() / scale
            b = ((o.end or until) - sc.start).total_seconds() / scale
            ax.axvspan(
                max(a, 0),
                b,
                color=WINDOW_COLOR,
                alpha=0.12,
                linewidth=0,
                label="window open" if first else None,
            )
            first = False
    first = True
    for bo in sc.schedule.blackouts:
        if bo.end <= sc.start or bo.start >= until:
            continue
        a = (bo.start - sc.start).total_seconds() / scale
        b = (bo.end - sc.start).total_seconds() / scale
        ax.axvspan(
            max(a, 0),
            b,
            facecolor="none",
            edgecolor=BLACKOUT_COLOR,
            hatch="///",
            linewidth=0,
            label="blackout" if first else None,
        )
        first = False


def _title(result: Result) -> str:
    sc = result.scenario
    slots = ", ".join(f"{g.name} {g.nodes}/{g.max}" for g in result.groups)
    cycle = f"{sc.drain} + {sc.reboot} + {sc.boot}"
    head = f"{result.nodes} nodes (group nodes/max: {slots}); cycle {cycle}"
    if result.completion_seconds is None:
        tail = f"not finished: {result.done} done, {len(result.halted)} halted"
    else:
        tail = f"done in {format_duration(timedelta(seconds=result.completion_seconds))}"
        if result.ratio is not None and result.bound_seconds is not None:
            bound = format_duration(timedelta(seconds=result.bound_seconds))
            tail += f" (bound {bound}, ratio {result.ratio:.3f})"
    return f"{head}\n{tail}"

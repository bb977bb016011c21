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
DONE_COLOR = "#555555"
STAGE_COLOR = "#9467bd"  # a rollout stage's opening and bake
# Per group: the fill of "nodes down" and, in another hue, the "slots held" line and the max
# (line and max share a colour: the line touching its max means every slot was used). No
# green (the windows) and no grey (the blackouts and the fleet-done line).
GROUP_COLORS = (
    ("#6baed6", "#b2182b"),  # blue fill, dark red line
    ("#fdae6b", "#542788"),  # orange fill, dark purple line
    ("#bcbddc", "#8c510a"),  # lavender fill, brown line
    ("#f1b6da", "#01665e"),  # pink fill, teal line
)


def group_colors(index: int) -> tuple[str, str]:
    """(fill of nodes down, colour of slots held and max) for the index-th group."""
    return GROUP_COLORS[index % len(GROUP_COLORS)]


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
    import matplotlib.pyplot as plt

    fig = figure(result)
    fig.savefig(path)
    plt.close(fig)


def figure(result: Result) -> Any:
    """The plot as a matplotlib Figure (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = result.scenario
    end = max(result.end_seconds, 1.0) * 1.02
    scale, unit = _unit(end)
    # The legend goes below the axes (layout="constrained" makes room): never over the data.
    fig, ax = plt.subplots(figsize=(11, 6.2), dpi=110, layout="constrained")
    done_ax: Any = ax.twinx()
    top = 1
    for i, g in enumerate(result.groups):
        fill, color = group_colors(i)
        name = f"{g.name}: " if len(result.groups) > 1 else ""
        xs, ys = _steps(g.down, end, scale)
        ax.fill_between(
            xs, ys, step="post", color=fill, alpha=0.6, linewidth=0, label=f"{name}nodes down"
        )
        hx, hy = _steps(g.holders, end, scale)
        ax.step(hx, hy, where="post", color=color, linewidth=1.0, label=f"{name}slots held")
        ax.axhline(g.max, color=color, linestyle="--", linewidth=1.0, alpha=0.9, label=f"{name}max")
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
        done_ax.step(
            dx, dy, where="post", color=DONE_COLOR, linewidth=1.2, label="fleet done (right axis)"
        )
    done_ax.set_ylim(0, 105)
    done_ax.set_ylabel("fleet done (%)", color=DONE_COLOR)

    _shade(ax, result, end, scale)
    _stages(ax, result, end, scale)
    ax.set_xlim(0, end / scale)
    ax.set_ylim(0, top * 1.25 + 1)
    ax.set_xlabel(f"{unit} since {sc.start:%a %Y-%m-%d %H:%M} UTC")
    ax.set_ylabel("nodes (down: rebooting or booting; held: drain to release)")
    ax.set_title(_title(result), fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = done_ax.get_legend_handles_labels()
    # Three rows: a column per group (down, held, max), then the schedule and the fleet line.
    fig.legend(
        handles + more,
        labels + more_labels,
        loc="outside lower center",
        ncol=-(-len(labels + more_labels) // 3),
        fontsize=8,
        frameon=False,
    )
    return fig


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


def _stages(ax: Any, result: Result, end: float, scale: float) -> None:
    """A rollout's stages: a dotted line where each opened, named at the top, and its bake
    (from its last node's finish to the bake's end) as a light band."""
    first_bake = True
    for i, st in enumerate(result.stages):
        if st.started_seconds is not None:
            x = st.started_seconds / scale
            ax.axvline(x, color=STAGE_COLOR, linestyle=":", linewidth=1.2)
            ax.annotate(
                f"stage {i + 1}",
                xy=(x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
                color=STAGE_COLOR,
            )
        if st.finished_seconds is not None and st.bake_seconds > 0:
            a = st.finished_seconds / scale
            b = min(st.finished_seconds + st.bake_seconds, end) / scale
            ax.axvspan(
                a,
                b,
                color=STAGE_COLOR,
                alpha=0.08,
                linewidth=0,
                label="stage baking" if first_bake else None,
            )
            first_bake = False


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

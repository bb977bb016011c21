"""`stagger simulate`: a whole fleet's rollout on a virtual clock, driven by the real node
cycle and semaphore (src/stagger/sim/). Flags for the common questions, a TOML scenario file
for the rest; a summary, --json, and --plot FILE.png|.svg."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stagger.cli.output import JsonOption, console, emit, reported_errors
from stagger.core.durations import format_duration
from stagger.sim.distributions import FORMS

if TYPE_CHECKING:
    from stagger.sim.engine import Progress, Result

PROGRESS_EVERY = 1.0  # seconds of wall time between progress lines on stderr


def _dur(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration(timedelta(seconds=seconds))


class _Reporter:
    """Progress lines on stderr, at most one a second, only once a run takes a while."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.last = self.began

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        sys.stderr.write(
            f"simulating: {p.done}/{p.nodes} nodes done, virtual time "
            f"{_dur(p.virtual_seconds)}, {p.events} events, {now - self.began:.0f}s\n"
        )
        sys.stderr.flush()


def simulate_command(
    nodes: int | None = typer.Option(
        None,
        "--nodes",
        min=1,
        metavar="N",
        help="Nodes in the fleet (default 100).",
        show_default=False,
    ),
    max_: str | None = typer.Option(
        None,
        "--max",
        metavar="K|P%",
        help="Slots: nodes down at once, or a percentage of each group (default 5).",
        show_default=False,
    ),
    drain_time: str | None = typer.Option(
        None,
        "--drain-time",
        metavar="T",
        help=f"Drain time (default 1m): {FORMS}.",
        show_default=False,
    ),
    reboot_time: str | None = typer.Option(
        None,
        "--reboot-time",
        metavar="T",
        help="Reboot time (default 3m), same forms.",
        show_default=False,
    ),
    boot_time: str | None = typer.Option(
        None,
        "--boot-time",
        metavar="T",
        help="Boot time (default 1m), same forms.",
        show_default=False,
    ),
    needed_over: str | None = typer.Option(
        None,
        "--needed-over",
        metavar="D",
        help="Nodes learn they need a reboot at random times over D (default 0s: all at once).",
        show_default=False,
    ),
    health_failure_rate: float | None = typer.Option(
        None,
        "--health-failure-rate",
        metavar="R",
        help="Share of reboots whose health check fails, 0 to 1 (default 0).",
        show_default=False,
    ),
    seed: int | None = typer.Option(
        None, "--seed", metavar="S", help="Random seed (default 0).", show_default=False
    ),
    stages: str | None = typer.Option(
        None,
        "--stages",
        metavar="P%,...,rest",
        help="A rollout in stages: every group split by these shares (1%,20%,rest).",
        show_default=False,
    ),
    bake: str | None = typer.Option(
        None,
        "--bake",
        metavar="D",
        help="Each stage bakes D after its last node finished.",
        show_default=False,
    ),
    max_failures: str | None = typer.Option(
        None,
        "--max-failures",
        metavar="N|P%",
        help="The rollout's error budget: it stops after N halted nodes.",
        show_default=False,
    ),
    pace: str | None = typer.Option(
        None,
        "--pace",
        metavar="D",
        help="A freed slot is granted again only D later (every group).",
        show_default=False,
    ),
    scenario: Path | None = typer.Option(
        None,
        "--scenario",
        metavar="FILE.toml",
        readable=False,
        help="A scenario file: [[group]], [rollout], [[window]], [[blackout]], [cycle], times (see "
        "docs/simulate.md). Flags override it.",
        show_default=False,
    ),
    plot_file: Path | None = typer.Option(
        None,
        "--plot",
        metavar="FILE.png|.svg",
        help="Draw nodes down over time per group, the slot limit and the windows.",
        show_default=False,
    ),
    json: bool = JsonOption,
) -> None:
    """Simulate a rollout: when is the fleet done, how many nodes are down at once, and where
    health failures halt it. The real node cycle and semaphore run on a virtual clock."""
    # Imported here so that `stagger --help` and other commands do not pay for the simulator.
    from stagger.sim.engine import simulate
    from stagger.sim.plot import check_plot_path, plot
    from stagger.sim.scenario import Overrides, build_scenario, load_scenario_file

    with reported_errors(json):
        file = load_scenario_file(scenario) if scenario is not None else None
        sc = build_scenario(
            file,
            Overrides(
                nodes=nodes,
                max=max_,
                drain_time=drain_time,
                reboot_time=reboot_time,
                boot_time=boot_time,
                needed_over=needed_over,
                health_failure_rate=health_failure_rate,
                seed=seed,
                stages=stages,
                bake=bake,
                max_failures=max_failures,
                pace=pace,
            ),
        )
        if plot_file is not None:
            check_plot_path(plot_file)  # before a long run, not after it
        result = simulate(sc, _Reporter())
        if plot_file is not None:
            plot(result, plot_file)
    emit(result.to_json(), json, lambda: _render(result, plot_file))


def _render(result: Result, plot_file: Path | None) -> None:
    from rich.table import Table

    out = console()
    sc = result.scenario
    out.print(
        f"{result.nodes} nodes, cycle {sc.drain} + {sc.reboot} + {sc.boot}, seed {sc.seed}"
        + (f", health failure rate {sc.health_failure_rate:g}" if sc.health_failure_rate else "")
    )
    if sc.schedule.windows or sc.schedule.blackouts:
        for w in sc.schedule.windows:
            out.print(f"  window: {w.describe()}")
        for b in sc.schedule.blackouts:
            out.print(f"  blackout: {b.start.isoformat()} to {b.end.isoformat()} {b.label()}")
    table = Table(box=None, pad_edge=False)
    for col in ("group", "nodes", "max", "done", "halted", "waiting", "max holders", "max down"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for g in result.groups:
        table.add_row(
            g.name,
            str(g.nodes),
            str(g.max),
            str(g.done),
            str(len(g.halted)),
            str(g.waiting),
            str(g.max_holders),
            str(g.max_down),
        )
    out.print(table)
    for i, st in enumerate(result.stages, start=1):
        line = f"stage {i} ({', '.join(st.groups)}): {st.nodes} nodes"
        if st.started_seconds is None:
            line += ", never opened"
        else:
            line += f", opened at {_dur(st.started_seconds)}"
            if st.finished_seconds is not None:
                how = "closed (close_after)" if st.closed else "done"
                line += f", {how} at {_dur(st.finished_seconds)}"
            if st.bake_seconds:
                line += f", bake {_dur(st.bake_seconds)}"
        out.print(line)
    if result.stopped_by_budget:
        budget = sc.max_failures.text() if sc.max_failures is not None else "?"
        out.print(
            f"stopped: the rollout's error budget (max_failures {budget}) halted it; "
            "nothing resumes it in a simulation (an operator runs `stagger resume`)"
        )
    if result.completion_seconds is not None:
        days = result.completion_seconds / 86400
        line = f"completion: {_dur(result.completion_seconds)}"
        if days >= 1:
            line += f" ({days:.1f} days)"
        if result.bound_seconds is not None and result.ratio is not None:
            what = "stage by stage + bakes" if sc.stages else "⌈N/k⌉·cycle"
            line += f"; bound {what} {_dur(result.bound_seconds)}; ratio {result.ratio:.3f}"
        else:
            line += "; no bound: windows or blackouts decide the pace"
        out.print(line)
    else:
        line = f"not finished: {result.done} of {result.nodes} nodes done"
        if result.last_done_seconds is not None:
            line += f", the last of them after {_dur(result.last_done_seconds)}"
        out.print(line)
    if result.halted:
        shown = ", ".join(result.halted[:10]) + (" …" if len(result.halted) > 10 else "")
        out.print(
            f"halted (health failed, slot kept): {shown}; their groups stop at these nodes "
            "until an operator fixes them or runs `stagger unlock --group G --id NODE`"
        )
    out.print(
        f"max concurrent: {result.max_concurrent} (holds read from the backend); "
        f"{result.aborted} aborted attempt(s); simulated in {result.wall_seconds:.1f}s"
    )
    if plot_file is not None:
        out.print(f"plot: {plot_file}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)

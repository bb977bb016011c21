"""The rollout benchmark: how close a simulated fleet gets to the best possible rollout, and
how fast the simulator runs.

    .venv/bin/python benchmarks/rollout.py [--nodes 10000] [--max 50]

Runs `stagger simulate`'s engine (the real node cycle and the SQLite semaphore on a virtual
clock) on one group with windows always open and a fixed cycle (drain 1m + reboot 3m + boot
1m), and prints completion ÷ the bound ⌈N/k⌉·cycle (target ≤ 1.05), the highest number of
holds the backend reported at once (must be ≤ max) and the simulator's wall time. Variants:
nodes learning over an hour instead of all at once, and a cycle that is not a whole number of
retry intervals (1m10s drain). Then the same fleet under a weekly schedule (Tue and Thu
02:00–06:00 Europe/Berlin), printing completion in days.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from stagger.core.schedule import Schedule
from stagger.core.windows import Window
from stagger.sim import Overrides, Result, build_scenario, simulate
from stagger.sim.scenario import Scenario


def row(name: str, result: Result) -> str:
    ratio = f"{result.ratio:.4f}" if result.ratio is not None else "—"
    days = (result.completion_seconds or 0) / 86400
    bound = f"{result.bound_seconds / 3600:.2f} h" if result.bound_seconds else "—"
    done = (
        f"{result.completion_seconds / 3600:.2f} h ({days:.2f} d)"
        if result.completion_seconds is not None
        else f"not finished ({result.done} done)"
    )
    return (
        f"| {name:<44} | {done:>20} | {bound:>9} | {ratio:>6} | {result.max_concurrent:>4} "
        f"| {result.events:>7} | {result.wall_seconds:>6.1f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--max", type=int, default=50)
    args = parser.parse_args()

    base = build_scenario(None, Overrides(nodes=args.nodes, max=args.max))
    runs: list[tuple[str, Scenario]] = [
        ("always open, all at once, 1m+3m+1m", base),
        (
            "always open, learnt over 1h, 1m+3m+1m",
            build_scenario(None, Overrides(nodes=args.nodes, max=args.max, needed_over="1h")),
        ),
        (
            "always open, all at once, 1m10s+3m+1m",
            build_scenario(None, Overrides(nodes=args.nodes, max=args.max, drain_time="70s")),
        ),
        (
            "always open, learnt over 1h, 1m10s+3m+1m",
            build_scenario(
                None,
                Overrides(nodes=args.nodes, max=args.max, drain_time="70s", needed_over="1h"),
            ),
        ),
        (
            "weekly: Tue+Thu 02:00-06:00 Europe/Berlin",
            replace(
                base,
                schedule=Schedule((Window.parse(["tue", "thu"], "02:00", "4h", "Europe/Berlin"),)),
            ),
        ),
    ]
    print(f"{args.nodes} nodes, one group, max {args.max}")
    print(
        "| run                                          |           completion |     bound "
        "|  ratio |  max |  events |   wall   |"
    )
    print("|" + "|".join("-" * (w - 1) + ":" for w in (46, 22, 11, 8, 6, 9, 10)) + "|")
    for name, sc in runs:
        print(row(name, simulate(sc)), flush=True)


if __name__ == "__main__":
    main()

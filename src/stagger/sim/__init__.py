"""The fleet simulator (`stagger simulate`): the real node cycle and semaphore, virtual time.

Its parts load on first use, so `stagger --help` (which shows the simulator's option help,
from sim.distributions) does not load the engine and its backends."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stagger.sim.engine import Progress, Result, simulate, simulate_async
    from stagger.sim.scenario import Overrides, Scenario, build_scenario, load_scenario_file

_HOMES = {
    "Progress": "stagger.sim.engine",
    "Result": "stagger.sim.engine",
    "simulate": "stagger.sim.engine",
    "simulate_async": "stagger.sim.engine",
    "Overrides": "stagger.sim.scenario",
    "Scenario": "stagger.sim.scenario",
    "build_scenario": "stagger.sim.scenario",
    "load_scenario_file": "stagger.sim.scenario",
}

__all__ = [
    "Overrides",
    "Progress",
    "Result",
    "Scenario",
    "build_scenario",
    "load_scenario_file",
    "simulate",
    "simulate_async",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)

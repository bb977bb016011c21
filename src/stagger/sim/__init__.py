"""The fleet simulator (`stagger simulate`): the real node cycle and semaphore, virtual time."""

from stagger.sim.engine import Progress, Result, simulate, simulate_async
from stagger.sim.scenario import Overrides, Scenario, build_scenario, load_scenario_file

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

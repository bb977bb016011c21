"""What a simulation runs: groups of nodes with their max, the schedule, when nodes learn
they need a reboot, how long drains, reboots and boots take, and how often health fails.

A scenario file is TOML. The schedule uses the config's own `[[window]]` and `[[blackout]]`
tables (config.window_section.WindowConfig/BlackoutConfig) and `[cycle]` the agent's timings,
so a fleet's real config fragments can be pasted in. Command-line flags override the file.

    start = 2026-01-05T00:00:00Z     # when the simulation begins (default: this Monday 00:00 UTC)
    needed_over = "2h"               # nodes learn at uniform random times over 2h ("0s": at once)
    drain_time = "1m"                # a duration, "uniform:2m-4m" or "lognormal:3m,0.3"
    reboot_time = "3m"
    boot_time = "1m"
    health_failure_rate = 0.01
    seed = 1

    [[group]]
    name = "web"
    nodes = 1500
    max = 15

    [rollout]                        # optional: stages, as the server config's [rollout]
    max_failures = 2
    [[rollout.stage]]
    groups = ["web"]
    bake = "30m"

    [[window]]
    days = ["Tue", "Thu"]
    start = "02:00"
    length = "4h"
    time_zone = "UTC"
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator

from stagger.config.agent_sections import Duration
from stagger.config.cycle_section import CycleConfig
from stagger.config.files import FileProblem, parse_toml, read_text
from stagger.config.loader import ConfigProblem, InvalidConfig, problems_from
from stagger.config.section import Section
from stagger.config.window_section import BlackoutConfig, WindowConfig
from stagger.core import rollout as rollouts
from stagger.core.cycle.vocabulary import Timings
from stagger.core.durations import parse_duration
from stagger.core.errors import InvalidInput
from stagger.core.rollout_gate import Budget, Stage, parse_budget
from stagger.core.schedule import Schedule
from stagger.core.semaphore import DEFAULT_GROUP, validate_group, validate_max
from stagger.core.windows import parse_instant
from stagger.sim.distributions import FORMS, Distribution, parse_distribution

MAX_NODES = 1_000_000
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, so weekly windows read easily
DEFAULT_NODES = 100
DEFAULT_MAX = 5
DEFAULT_DRAIN, DEFAULT_REBOOT, DEFAULT_BOOT = "1m", "3m", "1m"
DEFAULT_ZONE = "UTC"  # for windows that name no time zone: a simulation has no host zone


def _nodes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NODES:
        raise InvalidInput(f"nodes {value!r} is not valid: give a whole number from 1 to 1000000")
    return value


def _distribution(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string: {FORMS}")
    parse_distribution(value, what=what)
    return value


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInput(
            f"health_failure_rate {value!r} is not valid: give a fraction from 0 to 1 "
            "(0.01 is one node in a hundred)"
        )
    return float(value)


class GroupFile(Section):
    name: str = Field(description="the group's name: letters, digits, '.' and '-'")
    nodes: int = Field(description="how many nodes the group has, 1 to 1000000")
    max: int | str = Field(
        description="how many of its nodes may be down at once, 0 to 10000, or a percentage "
        "of them such as '10%'"
    )

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return validate_group(str(value))

    @field_validator("nodes", mode="before")
    @classmethod
    def _n(cls, value: Any) -> int:
        return _nodes(value)

    @field_validator("max", mode="before")
    @classmethod
    def _max(cls, value: Any) -> int | str:
        parse_max(value)
        return value  # type: ignore[no-any-return]


class ScenarioFile(Section):
    """The TOML scenario file; every key optional (flags and defaults fill the rest)."""

    start: datetime | None = Field(
        None, description="when the simulation begins, RFC 3339 with a UTC offset"
    )
    nodes: int | None = Field(None, description="nodes in the one group (without [[group]])")
    max: int | str | None = Field(
        None, description="the one group's max (without [[group]]): a count or a percentage"
    )
    group: list[GroupFile] = Field(
        default_factory=list, description="an array of tables: [[group]] with name, nodes, max"
    )
    drain_time: str | None = Field(None, description=FORMS)
    reboot_time: str | None = Field(None, description=FORMS)
    boot_time: str | None = Field(None, description=FORMS)
    needed_over: Duration | None = Field(
        None, description="nodes learn they need a reboot over this period; '0s' at once"
    )
    health_failure_rate: float | None = Field(None, description="a fraction from 0 to 1")
    seed: int | None = Field(None, description="the random seed, a whole number")
    window: list[WindowConfig] = Field(
        default_factory=list, description="[[window]] tables, as in the config"
    )
    blackout: list[BlackoutConfig] = Field(
        default_factory=list, description="[[blackout]] tables, as in the config"
    )
    pace: Duration | None = Field(
        None, description="every group's pace: a freed slot is granted again only this later"
    )
    rollout: dict[str, Any] | None = Field(
        None, description="the server config's [rollout] table: max_failures, [[rollout.stage]]"
    )
    cycle: CycleConfig = Field(
        default_factory=lambda: CycleConfig.model_validate({}),
        description="the agent's [cycle] timings (retry, backoff, heartbeat...)",
    )

    @field_validator("nodes", mode="before")
    @classmethod
    def _n(cls, value: Any) -> int | None:
        return None if value is None else _nodes(value)

    @field_validator("max", mode="before")
    @classmethod
    def _max(cls, value: Any) -> int | str | None:
        if value is not None:
            parse_max(value)
        return value  # type: ignore[no-any-return]

    @field_validator("health_failure_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> float | None:
        return None if value is None else _rate(value)

    @field_validator("drain_time", "reboot_time", "boot_time", mode="before")
    @classmethod
    def _dist(cls, value: Any) -> str | None:
        return None if value is None else _distribution(value, "time")

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value  # TOML's own offset date-time, unquoted
        if isinstance(value, str):
            return parse_instant(value, what="start")
        raise InvalidInput(
            f"start {value!r} is not a time: write an RFC 3339 time with a UTC offset, "
            "like 2026-01-05T00:00:00Z"
        )


def load_scenario_file(path: Path) -> ScenarioFile:
    """Read and validate a scenario file; problems name the file, key and line."""
    try:
        text = read_text(path)
        data = parse_toml(text)
    except FileProblem as exc:
        raise InvalidConfig([ConfigProblem(str(path), exc.phrase, "", exc.line)]) from None
    except FileNotFoundError:
        raise InvalidConfig([ConfigProblem(str(path), "does not exist: check the path")]) from None
    except OSError as exc:
        raise InvalidConfig(
            [ConfigProblem(str(path), f"cannot be read: {exc.strerror or exc}")]
        ) from None
    try:
        return ScenarioFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfig(problems_from(exc, str(path), text)) from None


def parse_max(value: Any) -> tuple[int, bool]:
    """A group's max: (slots, False), or for a percentage such as "10%" (percent, True)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        text = value.strip()[:-1].strip()
        if not text.isdigit() or not 1 <= int(text) <= 100:
            raise InvalidInput(
                f"max {value!r} is not a percentage: give a whole one from 1% to 100%, e.g. 10%"
            )
        return int(text), True
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return validate_max(value), False


@dataclass(frozen=True)
class GroupPlan:
    name: str
    nodes: int
    max: int  # slots, or with `percent` a percentage of the group's nodes
    percent: bool = False

    @property
    def slots(self) -> int:
        """The max in slots once every node of the group is known (percentages round down,
        at least 1)."""
        return max(1, self.nodes * self.max // 100) if self.percent else self.max

    def max_text(self) -> str:
        return f"{self.max}%" if self.percent else str(self.max)


@dataclass(frozen=True)
class Overrides:
    """Values given on the command line; None means "not given"."""

    nodes: int | None = None
    max: int | str | None = None
    drain_time: str | None = None
    reboot_time: str | None = None
    boot_time: str | None = None
    needed_over: str | None = None
    health_failure_rate: float | None = None
    seed: int | None = None
    stages: str | None = None
    bake: str | None = None
    max_failures: str | None = None
    pace: str | None = None


@dataclass(frozen=True)
class Scenario:
    groups: tuple[GroupPlan, ...]
    drain: Distribution
    reboot: Distribution
    boot: Distribution
    schedule: Schedule = field(default_factory=Schedule)
    needed_over: timedelta = timedelta(0)
    health_failure_rate: float = 0.0
    seed: int = 0
    start: datetime = DEFAULT_START
    timings: Timings = field(default_factory=Timings)
    stages: tuple[Stage, ...] = ()  # the rollout's stages; () for no rollout
    max_failures: Budget | None = None  # the rollout's error budget
    pace: timedelta | None = None  # every group's pace

    @property
    def nodes(self) -> int:
        return sum(g.nodes for g in self.groups)

    @property
    def always_open(self) -> bool:
        """No windows and no blackouts: a reboot may start at any time."""
        return not self.schedule.windows and not self.schedule.blackouts

    @property
    def cycle_seconds(self) -> float:
        """The mean time one node keeps its slot: drain + reboot + boot."""
        return self.drain.mean + self.reboot.mean + self.boot.mean

    def group_bound_seconds(self, group: GroupPlan) -> float:
        """⌈n/k⌉ cycles through k slots, with a pace between a slot's release and its next
        grant: no group can finish sooner when its nodes need a reboot at the start."""
        rounds = math.ceil(group.nodes / group.slots)
        pace = self.pace.total_seconds() if self.pace is not None else 0.0
        return rounds * self.cycle_seconds + (rounds - 1) * pace

    def bound_seconds(self) -> float | None:
        """The slowest group's ⌈n/k⌉ · (drain + reboot + boot) (plus its paces); with a
        rollout, stage after stage, each the bound of its slowest group plus its bake (but the
        last stage's). No rollout can finish sooner when every node needs a reboot at the
        start (with mean times). None when windows or blackouts make it meaningless, or a
        group has no slots."""
        if not self.always_open or any(g.slots == 0 for g in self.groups):
            return None
        by_name = {g.name: g for g in self.groups}
        staged = {name for s in self.stages for name in s.groups}
        chain = 0.0
        for i, stage in enumerate(self.stages):
            chain += max((self.group_bound_seconds(by_name[n]) for n in stage.groups), default=0)
            if i < len(self.stages) - 1:
                chain += stage.bake.total_seconds()
        free = [self.group_bound_seconds(g) for g in self.groups if g.name not in staged]
        return max([chain, *free])


STAGE_FORMS = "shares such as 1%,20%,rest (percentages of every group, the last may be rest)"


def split_stages(text: str) -> list[int | None]:
    """`--stages`: each stage's percentage, None for the last stage's `rest`."""
    parts = [p.strip() for p in text.split(",")]
    shares: list[int | None] = []
    for i, part in enumerate(parts):
        if part == "rest" and i == len(parts) - 1 and i > 0:
            shares.append(None)
            continue
        body = part[:-1].strip() if part.endswith("%") else ""
        if not body.isdigit() or not 1 <= int(body) <= 100:
            raise InvalidInput(f"--stages {text!r} is not valid at {part!r}: give {STAGE_FORMS}")
        shares.append(int(body))
    total = sum(s for s in shares if s is not None)
    if total > 100 or (shares[-1] is not None and total != 100):
        raise InvalidInput(
            f"--stages {text!r} covers {total}% of the fleet: the shares must add up to 100% "
            "(or end with rest)"
        )
    return shares


def _staged_groups(
    groups: tuple[GroupPlan, ...], shares: list[int | None]
) -> tuple[tuple[GroupPlan, ...], list[list[str]]]:
    """Every group split by the shares into one group per stage, `web.1`, `web.2`…, each
    with the group's max; a stage's share rounds down but is at least one node while any
    remain. The new groups, and each stage's group names."""
    out: list[GroupPlan] = []
    names: list[list[str]] = [[] for _ in shares]
    for g in groups:
        left = g.nodes
        for i, share in enumerate(shares):
            last = i == len(shares) - 1
            count = left if last or share is None else min(left, max(1, g.nodes * share // 100))
            left -= count
            if count == 0:
                continue
            name = validate_group(f"{g.name}.{i + 1}")
            out.append(GroupPlan(name, count, g.max, g.percent))
            names[i].append(name)
    return tuple(out), names


def _rollout_plan(
    table: dict[str, Any] | None, groups: tuple[GroupPlan, ...], flags: Overrides
) -> tuple[tuple[GroupPlan, ...], tuple[Stage, ...], Budget | None]:
    """The groups (split by --stages), the stages and the budget, from the file's [rollout]
    table (read as the server config's, core/rollout.py) and the flags, which override it."""
    stages: tuple[Stage, ...] = ()
    budget: Budget | None = None
    if table is not None:
        table_stages, budget = rollouts.plan_from_table(table)
        known = {g.name for g in groups}
        for i, stage in enumerate(table_stages, start=1):
            missing = [n for n in stage.groups if n not in known]
            if missing:
                raise InvalidInput(
                    f"stage {i} names group {missing[0]!r}, which the scenario does not have: "
                    "name a [[group]] of the scenario"
                )
        if flags.stages is None:
            stages = table_stages
    if flags.stages is not None:
        groups, names = _staged_groups(groups, split_stages(flags.stages))
        stages = rollouts.check_stages([Stage(tuple(n)) for n in names])
    if flags.bake is not None:
        if not stages:
            raise InvalidInput("--bake needs stages: give --stages or [[rollout.stage]] tables")
        bake = parse_duration(flags.bake, what="--bake")
        stages = rollouts.check_stages([replace(s, bake=bake) for s in stages])
    if flags.max_failures is not None:
        budget = parse_budget(flags.max_failures)
    if budget is not None and not stages:
        raise InvalidInput("--max-failures needs stages: give --stages or [[rollout.stage]] tables")
    return groups, stages, budget


def _pace(text: str | None) -> timedelta | None:
    """A pace; "0s" is no pace."""
    pace = None if text is None else parse_duration(text, what="pace")
    return pace if pace else None


def _group(name: str, nodes: int, limit: Any) -> GroupPlan:
    value, percent = parse_max(limit)
    return GroupPlan(name, _nodes(nodes), value, percent)


def build_scenario(file: ScenarioFile | None, flags: Overrides) -> Scenario:
    """The file's values, overridden by the flags, filled with the defaults."""
    f = file or ScenarioFile.model_validate({})
    if f.group and (flags.nodes is not None or f.nodes or f.max is not None):
        raise InvalidInput(
            "the scenario defines [[group]] tables, so nodes and max belong in them: "
            "drop --nodes (and the top-level nodes/max keys)"
        )
    if f.group:
        names = [g.name for g in f.group]
        if len(set(names)) != len(names):
            raise InvalidInput("two [[group]] tables have the same name: give each its own")
        groups = tuple(
            _group(g.name, g.nodes, flags.max if flags.max is not None else g.max) for g in f.group
        )
    else:
        nodes = _pick(flags.nodes, f.nodes, DEFAULT_NODES)
        groups = (_group(DEFAULT_GROUP, nodes, _pick(flags.max, f.max, DEFAULT_MAX)),)
    if sum(g.nodes for g in groups) > MAX_NODES:
        raise InvalidInput(f"the scenario has more than {MAX_NODES} nodes: simulate fewer")
    groups, stages, budget = _rollout_plan(f.rollout, groups, flags)
    pace = _pick(flags.pace, f.pace, None)
    rate = _pick(flags.health_failure_rate, f.health_failure_rate, 0.0)
    over = _pick(flags.needed_over, f.needed_over, "0s")
    return Scenario(
        groups=groups,
        drain=parse_distribution(
            _pick(flags.drain_time, f.drain_time, DEFAULT_DRAIN), what="drain time"
        ),
        reboot=parse_distribution(
            _pick(flags.reboot_time, f.reboot_time, DEFAULT_REBOOT), what="reboot time"
        ),
        boot=parse_distribution(
            _pick(flags.boot_time, f.boot_time, DEFAULT_BOOT), what="boot time"
        ),
        schedule=Schedule(
            tuple(w.to_window(DEFAULT_ZONE) for w in f.window),
            tuple(b.to_blackout() for b in f.blackout),
        ),
        needed_over=parse_duration(over, what="needed over"),
        health_failure_rate=_rate(rate),
        seed=_pick(flags.seed, f.seed, 0),
        start=f.start or DEFAULT_START,
        timings=f.cycle.timings(),
        stages=stages,
        max_failures=budget,
        pace=_pace(pace),
    )


T = TypeVar("T")


def _pick(flag: T | None, file: T | None, default: T) -> T:
    if flag is not None:
        return flag
    return file if file is not None else default

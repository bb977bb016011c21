"""The [cycle] table: how often the agent's node cycle looks again. The defaults suit a
production fleet (a heartbeat a minute, docs/configuration.md); tests and demos shorten them.

Durations are kept as written and checked with core's parser, like every other section;
`timings()` turns them into the machine's Timings value."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stagger.config.agent_sections import Duration
from stagger.core.cycle.vocabulary import Timings
from stagger.core.durations import parse_duration


class CycleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    heartbeat: Duration = Field(
        "1m", description="how often a node that holds a slot says it is alive, like '1m'"
    )
    retry: Duration = Field(
        "30s",
        description="about how long a node waits before asking again after a denied slot or a "
        "backend error; each node asks on its own beat within it, so a fleet is not in lockstep",
    )
    backoff: Duration = Field(
        "1m", description="the first wait after an aborted attempt; it doubles each time"
    )
    backoff_max: Duration = Field("1h", description="the longest wait after aborted attempts")
    health_recheck: Duration = Field(
        "1m", description="how often a HALTED node runs its health checks again"
    )
    poll: Duration = Field(
        "1m",
        description="how often the agent reads the pause and the disabled flag while nothing "
        "else wakes it",
    )

    def timings(self) -> Timings:
        return Timings(
            touch_interval=parse_duration(self.heartbeat),
            retry_interval=parse_duration(self.retry),
            backoff_base=parse_duration(self.backoff),
            backoff_max=parse_duration(self.backoff_max),
            health_recheck=parse_duration(self.health_recheck),
        )

"""The `[rollout]` table: the stages a reboot rollout goes through, and its error budget
(docs/rollout.md). `stagger server` sets it in the store when it starts (when it differs from
the stored one); `stagger rollout set FILE.toml` reads the same table.

```toml
[rollout]
max_failures = 1            # or "5%": halted nodes before the rollout pauses itself
[[rollout.stage]]
groups = ["canary"]
bake = "30m"                # after the stage's last node finished, wait this long
close_after = "2h"          # optional: end the stage anyway after this long open
[[rollout.stage]]
groups = ["web", "api"]
```
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from stagger.config.section import Section
from stagger.core.errors import InvalidInput
from stagger.core.rollout import plan_from_table
from stagger.core.rollout_gate import Budget, Stage


class RolloutStageConfig(Section):
    groups: list[str] = Field(description='the groups of this stage, like ["canary"]')
    bake: str = Field(
        "0s", description="how long to wait after the stage's last node finished, like '30m'"
    )
    close_after: str | None = Field(
        None, description="end the stage anyway this long after it opened, like '2h'"
    )


class RolloutConfig(Section):
    max_failures: int | str | None = Field(
        None, description='halted nodes that pause the rollout: a count (1) or a share ("5%")'
    )
    stage: list[RolloutStageConfig] = Field(
        default_factory=list, description="an array of tables: [[rollout.stage]] in order"
    )

    def plan(self) -> tuple[tuple[Stage, ...], Budget | None]:
        """The stages and budget, checked by core (core/rollout.py)."""
        table: dict[str, Any] = {"stage": [s.model_dump(exclude_none=True) for s in self.stage]}
        if self.max_failures is not None:
            table["max_failures"] = self.max_failures
        return plan_from_table(table)

    @model_validator(mode="after")
    def _checked(self) -> RolloutConfig:
        try:
            self.plan()
        except InvalidInput as exc:
            raise ValueError(exc.message) from exc
        return self

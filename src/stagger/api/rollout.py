"""The rollout documents: where the rollout is (`RolloutModel`, the answer of
`GET /v1/rollout` and of `stagger rollout status --json`), the request that sets one (the
`[rollout]` table as JSON), and the answer to clearing it. docs/rollout.md explains them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from stagger.api.base import By, MaybeInstant, Model, Request
from stagger.core.rollout_gate import MAX_STAGES
from stagger.core.rollout_status import MAX_STAGE_NAMES, RolloutStatus, StageStatus
from stagger.core.semaphore import GROUP_RE, MAX_GROUP_LEN

StageStateName = Literal["waiting", "open", "baking", "done", "halted"]
StageList = Literal["done", "pending", "halted", "left_behind"]
LISTS: tuple[StageList, ...] = ("done", "pending", "halted", "left_behind")
_FIRST = f"the first {MAX_STAGE_NAMES} at most, by id; `totals` counts them all"


class StageTotalsModel(Model):
    """How many nodes each list of a stage has (the lists name at most the first ones)."""

    done: int
    pending: int
    halted: int
    left_behind: int


class StageModel(Model):
    """A stage: its lists name at most the first nodes of each (by id; `done` names only
    nodes its groups' records name or that report a need, the rest at rest are counted) and
    `totals` counts every node of each; `truncated` names the lists that are cut."""

    number: int = Field(description="the stage's place in the rollout, from 1")
    groups: list[str]
    state: StageStateName = Field(
        description="waiting (an earlier stage has not ended), open (its nodes may reboot), "
        "baking (every node finished; the bake runs), done, or halted (a node of it halted)"
    )
    bake_seconds: float
    close_after_seconds: float | None = None
    done: list[str] = Field(description=f"nodes that finished a cycle or report no need ({_FIRST})")
    pending: list[str] = Field(description=f"nodes that hold a slot or report a need ({_FIRST})")
    halted: list[str] = Field(description=f"nodes whose health failed or silent holders ({_FIRST})")
    left_behind: list[str] = Field(
        default_factory=list,
        description=f"nodes not done when close_after ended the stage ({_FIRST})",
    )
    totals: StageTotalsModel = Field(
        description="how many nodes each list has; from a server that sends none (it named "
        "every node), the lists' lengths"
    )
    truncated: list[StageList] = Field(
        default_factory=list,
        description="the lists that name fewer nodes than their total (empty: every list is "
        "whole); docs/rollout.md says how to list the rest",
    )
    opened_at: MaybeInstant = None
    bake_ends: MaybeInstant = Field(default=None, description="when baking: when the bake ends")

    @model_validator(mode="before")
    @classmethod
    def _counted(cls, data: Any) -> Any:
        """A document from a server before `totals` named every node: its lists' lengths."""
        if isinstance(data, dict) and "totals" not in data:
            data = {**data, "totals": {k: len(data.get(k) or []) for k in LISTS}}
        return data

    @classmethod
    def of(cls, s: StageStatus) -> StageModel:
        totals = StageTotalsModel(**asdict(s.totals))
        named = {k: list(getattr(s, k)) for k in LISTS}
        return cls(
            number=s.index + 1,
            groups=list(s.stage.groups),
            state=s.state.value,
            bake_seconds=s.stage.bake.total_seconds(),
            close_after_seconds=(
                s.stage.close_after.total_seconds() if s.stage.close_after is not None else None
            ),
            **named,
            totals=totals,
            truncated=[k for k in LISTS if len(named[k]) < getattr(totals, k)],
            opened_at=s.opened_at,
            bake_ends=s.bake_ends,
        )


class RolloutModel(Model):
    """The rollout at `now`; `set` is false (and `stages` empty) when there is none."""

    set: bool
    now: MaybeInstant = None
    started_at: MaybeInstant = None
    by: str | None = None
    generation: int | None = None
    max_failures: str | None = Field(default=None, description='a count ("1") or a share ("5%")')
    complete: bool = False
    eta: MaybeInstant = Field(
        default=None, description="estimated end of the rollout; null until it can be estimated"
    )
    stages: list[StageModel] = Field(default_factory=list)

    @classmethod
    def of(cls, status: RolloutStatus | None) -> RolloutModel:
        if status is None:
            return cls(set=False)
        r = status.rollout
        return cls(
            set=True,
            now=status.now,
            started_at=r.started_at,
            by=r.by,
            generation=r.generation,
            max_failures=r.max_failures.text() if r.max_failures is not None else None,
            complete=status.complete,
            eta=status.eta,
            stages=[StageModel.of(s) for s in status.stages],
        )


# A duration with its unit(s), as the config writes one ("30m", "1h30m", "90s").
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"
GroupName = Annotated[str, Field(min_length=1, max_length=MAX_GROUP_LEN, pattern=GROUP_RE.pattern)]


class StageRequest(Request):
    groups: list[GroupName] = Field(max_length=1000, description="a group is in one stage only")
    bake: str = Field("0s", pattern=DURATION_PATTERN, description='like "30m"; at most 3650d')
    close_after: str | None = Field(
        None, pattern=DURATION_PATTERN, description='like "2h"; at least 1s, at most 3650d'
    )


class RolloutRequest(Request):
    """`PUT /v1/rollout`: the `[rollout]` table of docs/rollout.md as JSON."""

    stage: list[StageRequest] = Field(min_length=1, max_length=MAX_STAGES)
    max_failures: int | str | None = Field(
        None, description='halted nodes that pause the rollout: a count (1) or a share ("5%")'
    )
    by: By = None

    def table(self) -> dict[str, Any]:
        """The request as the `[rollout]` table core reads (core.rollout.plan_from_table)."""
        return self.model_dump(exclude={"by"}, exclude_none=True)


class ClearRolloutResponse(Model):
    cleared: bool = Field(description="false when there was no rollout (nothing changed)")


class MaxFailuresRequest(Request):
    """`PUT /v1/groups/{group}/max-failures`: the group's own error budget (null: none)."""

    max_failures: int | str | None = Field(
        description='halted nodes that pause the group: a count (2) or a share ("5%"); null: none'
    )
    by: By = None


class MaxFailuresResponse(Model):
    group: str
    max_failures: str | None

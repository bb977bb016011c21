"""The blockers document: each `[[blocker]]` of a server, its last verdict and why
(`GET /v1/blockers`, and `blockers` in the status document)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field

from stagger.api.base import MaybeInstant, Model
from stagger.core.blockers import Blocker, BlockerKind, Verdict, not_checked


class BlockerModel(Model):
    name: str
    kind: BlockerKind
    url: str = Field(description="the URL checked, secrets masked")
    groups: list[str] | None = Field(description="the groups it holds back; null: every group")
    matchers: list[str] = Field(description="alertmanager: the label matchers an alert must match")
    interval: float = Field(description="seconds between two checks")
    blocking: bool = Field(description="grants in its groups are refused (kind `blocked`)")
    reachable: bool = Field(description="its last check got an answer (false blocks: fail closed)")
    reason: str = Field(description="what the last check found, in one sentence")
    alerts: list[str] = Field(
        default_factory=list, description="alertmanager: the names of the alerts that block"
    )
    checked_at: MaybeInstant = Field(None, description="the last check; null: not checked yet")

    @classmethod
    def of(cls, b: Blocker, v: Verdict) -> BlockerModel:
        return cls(
            name=b.name,
            kind=b.kind,
            url=b.shown_url,
            groups=sorted(b.groups) if b.groups is not None else None,
            matchers=[str(m) for m in b.matchers],
            interval=b.interval.total_seconds(),
            blocking=v.blocking,
            reachable=v.reachable,
            reason=v.reason,
            alerts=list(v.alerts),
            checked_at=v.checked_at,
        )


def blocker_models(
    blockers: Sequence[Blocker], verdicts: Mapping[str, Verdict]
) -> list[BlockerModel]:
    return [BlockerModel.of(b, verdicts.get(b.name) or not_checked(b)) for b in blockers]


class BlockersModel(Model):
    """`GET /v1/blockers`: the server's blockers in configuration order."""

    blockers: list[BlockerModel]

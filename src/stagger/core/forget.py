"""Forgetting a node: an operator removes a node's report (`stagger forget ID`). A node that
holds a slot cannot be forgotten; the history records who forgot it. The fleet view then no
longer shows it from its older lock activity either (core/fleet_view.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from stagger.core.errors import StaggerError
from stagger.core.semaphore import Action, Event, Hold


class NodeHoldsSlot(StaggerError):
    """A node that holds a slot cannot be forgotten: its slot would stay taken by nobody
    anyone sees."""

    exit_code = 1

    def __init__(self, node_id: str, group: str) -> None:
        super().__init__(
            f"node {node_id} holds a slot in group {group}: release it first with "
            f"`stagger unlock --group {group} --id {node_id}`, then forget it"
        )
        self.node_id = node_id
        self.group = group


def check_forget(node_id: str, holds: Mapping[str, Iterable[Hold]]) -> None:
    """Raise NodeHoldsSlot when `node_id` holds a slot in any group (`holds`: each group's
    live holds)."""
    for group in sorted(holds):
        if any(h.id == node_id for h in holds[group]):
            raise NodeHoldsSlot(node_id, group)


def forgotten(node_id: str, group: str, now: datetime, *, by: str) -> Event:
    """The history event of an operator forgetting `node_id`, recorded in the group its
    report named."""
    return Event(now, group, Action.FORGOTTEN, by, node_id, "report removed")

"""The FLEET record's per-node entries: a node's own pause (`stagger pause --node`) and an
emergency reboot asked for one node through the store (`stagger need-reboot --now --node`).
They live in the reserved FLEET pseudo-group's record, beside the fleet-wide pause, so an
acquire reads and guards one record for all of them (core/semaphore.py). Pure, like it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from stagger.core.semaphore import (
    FLEET,
    Action,
    Change,
    Event,
    Pause,
    Semaphore,
    Urgent,
    pause,
    resume,
    validate_id,
    validate_node_id,
)


def node_pause_of(fleet: Semaphore | None, node_id: str, now: datetime) -> Pause | None:
    """`node_id`'s own pause in force at `now`, from the FLEET record (None: not paused)."""
    p = fleet.node_pauses.get(node_id) if fleet is not None else None
    return p if p is not None and p.active(now) else None


def active_node_pauses(fleet: Semaphore | None, now: datetime) -> dict[str, Pause]:
    """Every node pause in force at `now`, by node id (an ended one is simply left out)."""
    if fleet is None:
        return {}
    return {k: p for k, p in sorted(fleet.node_pauses.items()) if p.active(now)}


def pause_node(
    fleet: Semaphore,
    node_id: str,
    now: datetime,
    *,
    by: str,
    reason: str,
    until: datetime | None = None,
) -> Change[Pause]:
    """Stop new grants to one node, in every group (`fleet` is the FLEET record). Its hold,
    if any, stays. Decided by the group pause's own rules (`pause`), so both refuse the same
    inputs. Ended node pauses are dropped on the way, so the record does not grow."""
    validate_node_id(node_id)
    kept = active_node_pauses(fleet, now)
    decided = pause(
        Semaphore(FLEET, pause=kept.get(node_id)), now, by=by, reason=reason, until=until
    )
    p = decided.outcome
    if not decided.changed:
        return Change(fleet, p)
    events = tuple(replace(e, id=node_id) for e in decided.events)
    return Change(replace(fleet, node_pauses={**kept, node_id: p}), p, events)


def resume_node(fleet: Semaphore, node_id: str, now: datetime, *, by: str) -> Change[Pause | None]:
    """Lift one node's pause. Resuming a node that is not paused (or whose pause has ended)
    writes nothing."""
    validate_id(node_id)
    kept = active_node_pauses(fleet, now)
    decided = resume(Semaphore(FLEET, pause=kept.pop(node_id, None)), now, by=by)
    if not decided.changed:
        return Change(fleet, None)
    events = tuple(replace(e, id=node_id) for e in decided.events)
    return Change(replace(fleet, node_pauses=kept), decided.outcome, events)


# --- one node's emergency reboot, asked through the store (kept in the FLEET record) --------


def ask_reboot(
    fleet: Semaphore,
    node_id: str,
    now: datetime,
    *,
    by: str,
    reason: str,
    ignore_blackouts: bool = False,
) -> Change[Urgent]:
    """Ask `node_id`'s agent for an emergency reboot (stagger need-reboot --now --node ID). Its
    reason is checked like a pause's, by the same rules. Asked again, the newer ask replaces
    the older one."""
    validate_node_id(node_id)
    # A pause's checks on reason and by, so both refuse the same text.
    pause(Semaphore(FLEET), now, by=by, reason=reason)
    u = Urgent(reason.strip(), by, now, ignore_blackouts)
    detail = u.reason + (" (blackouts ignored too)" if ignore_blackouts else "")
    event = Event(now, FLEET, Action.REBOOT_ASKED, by, node_id, detail)
    new = replace(fleet, urgent_reboots={**fleet.urgent_reboots, node_id: u})
    return Change(new, u, (event,))


def clear_reboot(
    fleet: Semaphore, node_id: str, now: datetime, *, done_by: datetime | None = None
) -> Change[Urgent | None]:
    """Drop `node_id`'s emergency reboot once its agent rebooted for it: only an ask made
    before `done_by` (the node's last reboot), so a newer ask is kept; None: all of it. Not an
    event of its own (the node's grant and release already tell the story)."""
    validate_id(node_id)
    u = fleet.urgent_reboots.get(node_id)
    if u is None or (done_by is not None and u.since > done_by):
        return Change(fleet, None)
    kept = {k: v for k, v in fleet.urgent_reboots.items() if k != node_id}
    return Change(replace(fleet, urgent_reboots=kept), u, dirty=True)

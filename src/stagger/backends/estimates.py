"""The estimated completion of each busy group (core/eta.py), read through the Backend
Protocol: one history read per group that holds a slot or has a queue. Shared by `stagger
status` and the server's status API, so both print the same document."""

from __future__ import annotations

from stagger.backends.protocol import Backend, Snapshot
from stagger.core.eta import GroupEta, group_eta

# The history read for a group's estimate: enough grants and releases for its median cycle.
ETA_HISTORY = 200


async def group_etas(backend: Backend, snap: Snapshot) -> dict[str, GroupEta]:
    """Each busy group's estimate, by group name."""
    etas: dict[str, GroupEta] = {}
    for g in snap.groups:
        sem = g.semaphore
        if sem.holds or sem.waiting:
            events = await backend.history(g.group, limit=ETA_HISTORY)  # newest first
            etas[g.group] = group_eta(sem, g.now, reversed(events), g.pause is not None)
    return etas

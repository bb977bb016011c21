"""A group's current wave: how far the reboots that began at the group's first grant after it
was last quiet have come (done, in progress, waiting, halted). Pure, like the fleet view it
reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from stagger.core.cycle.node_state import State
from stagger.core.fleet_view import IN_PROGRESS, NodeView
from stagger.core.semaphore import Action, Event


@dataclass(frozen=True)
class Wave:
    """How far a group's current wave has come. `started` is the first grant of the wave;
    None means no wave is in progress (nothing needs a reboot and no slot is held)."""

    group: str
    started: datetime | None
    done: tuple[str, ...] = ()
    in_progress: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    halted: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return len(self.done) + len(self.in_progress) + len(self.waiting) + len(self.halted)


def wave_start(
    group_events: Iterable[Event], pending_needs: Iterable[datetime], now: datetime
) -> datetime | None:
    """The first grant of the group's current wave.

    The wave began at the first grant after the last moment the group was quiet: no slot held
    and no node that still needs a reboot needing it yet. (A node's need is known only while
    it lasts, so the moment is looked for before the earliest need still pending.) None when
    no grant follows that moment and nothing is pending: no wave is in progress."""
    events = sorted(group_events, key=lambda e: e.time)
    needs = list(pending_needs)
    horizon = min(needs) if needs else now
    holders: set[str] = set()
    quiet_at: datetime | None = None  # None: quiet since before the history we have
    for e in events:
        if e.time >= horizon:
            break
        if e.action is Action.ACQUIRED:
            holders.add(e.id)
        elif e.action in (Action.RELEASED, Action.EXPIRED):
            holders.discard(e.id)
        if not holders:
            quiet_at = e.time
    if not needs and not holders:
        # Quiet now: whatever came after quiet_at is finished, so no wave is in progress.
        return None
    for e in events:
        if e.action is Action.ACQUIRED and (quiet_at is None or e.time > quiet_at):
            return e.time
    return None


def current_wave(
    group: str, nodes: Iterable[NodeView], group_events: Iterable[Event], now: datetime
) -> Wave:
    """The current wave of `group`: nodes that needed a reboot since its first grant, as done
    (rebooted since, nothing pending), in progress (holding or on the way), waiting (need a
    reboot, not started) or halted (failed health after the reboot)."""
    mine = [n for n in nodes if n.group == group]
    pending = [
        n.report.needed_since
        for n in mine
        if n.report is not None and n.report.needed_since is not None
    ]
    events = [e for e in group_events if e.group == group]
    started = wave_start(events, pending, now)
    if started is None and not any(n.holds_slot for n in mine):
        return Wave(group, None)
    done: list[str] = []
    moving: list[str] = []
    waiting: list[str] = []
    halted: list[str] = []
    for n in mine:
        r = n.report
        if r is not None and r.state is State.HALTED:
            halted.append(n.id)
        elif n.holds_slot or (r is not None and r.state in IN_PROGRESS):
            moving.append(n.id)
        elif r is not None and r.needed_since is not None:
            waiting.append(n.id)
        elif started is not None and n.last_reboot is not None and n.last_reboot >= started:
            done.append(n.id)
    return Wave(group, started, tuple(done), tuple(moving), tuple(waiting), tuple(halted))

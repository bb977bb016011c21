"""`none`: stagger asks for no update; the host's own timer (apt-daily-upgrade, dnf-automatic,
update_engine's own 45-minute schedule, Zincati) applies them, and stagger coordinates only
the reboots. The schedule never calls it; `stagger update-now` says so instead."""

from __future__ import annotations

from dataclasses import dataclass

from stagger.agent.updaters.base import Progress, UpdateResult
from stagger.core.updates import Outcome


@dataclass
class NoUpdater:
    name: str = "none"

    async def attempt(self, progress: Progress | None = None) -> UpdateResult:
        return UpdateResult(
            Outcome.SKIPPED,
            "[updates] updater = 'none': the host's own timer applies updates; set updater "
            "to 'update_engine' or 'command' to let stagger ask for them",
        )

"""The marker `stagger need-reboot --reason TEXT` leaves (default /run/stagger/need-reboot):
the operator's equivalent of `locksmithctl send-need-reboot`. Always on.

The marker records the boot id it was written in; after a reboot the id differs and the
marker is stale, so a reboot asked for by hand happens once (and /run is emptied at boot
anyway). An unreadable marker is unknown, never a reboot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stagger.agent.detectors.base import Finding, Report
from stagger.agent.detectors.inotify import watch_files
from stagger.agent.state_file import StateFileError, read_boot_id, read_manual_mark

NAME = "manual"


@dataclass
class ManualDetector:
    path: Path
    boot_id_path: Path
    interval: float = 0.5
    name: str = NAME

    async def check(self) -> Finding:
        try:
            mark = read_manual_mark(self.path)
            if mark is None:
                return Finding(False, self.name, f"no {self.path}")
            boot_id = read_boot_id(self.boot_id_path)
        except StateFileError as exc:
            return Finding(None, self.name, exc.message)
        if mark.boot_id != boot_id:
            return Finding(False, self.name, f"{self.path} is from an earlier boot (done)")
        return Finding(
            True, self.name, f"asked by {mark.by} at {mark.since.isoformat()}: {mark.reason}"
        )

    async def watch(self, report: Report) -> None:
        await watch_files(self.check, (self.path,), self.interval, report)

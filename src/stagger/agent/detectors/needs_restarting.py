"""`needs-restarting -r` (dnf-utils / yum-utils on RHEL, Fedora and friends): exit 1 when a
core package (kernel, glibc, systemd...) was updated after boot, exit 0 when not. Note the
order is the opposite of the `command` detector's; anything else is unknown, never a reboot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stagger.agent.detectors.base import Finding, Report, poll, run_command
from stagger.agent.detectors.command import finding_from_exit

NAME = "needs-restarting"


@dataclass
class NeedsRestartingDetector:
    argv: Sequence[str] = ("needs-restarting", "-r")
    interval: float = 300.0
    timeout: float = 120.0
    name: str = NAME

    async def check(self) -> Finding:
        ran = await run_command(self.argv, self.timeout)
        return finding_from_exit(self.name, self.argv, ran, needed_code=1, not_needed_code=0)

    async def watch(self, report: Report) -> None:
        await poll(self.check, self.interval, report)

"""A command that says whether a reboot is needed: exit 0 needed, exit 1 not needed, anything
else unknown — 126 (not executable), 127 (not found), a signal, a timeout. Unknown is logged and
is never a reboot (kured#976: `! needs-restarting` with the command missing rebooted forever)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from stagger.agent.detectors.base import Finding, Ran, Report, poll, run_command

NAME = "command"


def finding_from_exit(
    name: str, argv: Sequence[str], ran: Ran, needed_code: int, not_needed_code: int
) -> Finding:
    """The one mapping from an exit code to a Finding, shared by every command detector."""
    shown = " ".join(argv)
    if ran.code == needed_code:
        return Finding(True, name, f"`{shown}` exited {ran.code}: reboot needed")
    if ran.code == not_needed_code:
        return Finding(False, name, f"`{shown}` exited {ran.code}: no reboot needed")
    return Finding(
        None,
        name,
        f"`{shown}`: {ran.describe()}; treated as unknown, never as a reboot "
        f"(only exit {needed_code} means needed, {not_needed_code} not needed)",
    )


@dataclass
class CommandDetector:
    argv: Sequence[str]
    interval: float = 60.0
    timeout: float = 30.0
    name: str = NAME
    needed_code: int = field(default=0)
    not_needed_code: int = field(default=1)

    async def check(self) -> Finding:
        ran = await run_command(self.argv, self.timeout)
        return finding_from_exit(self.name, self.argv, ran, self.needed_code, self.not_needed_code)

    async def watch(self, report: Report) -> None:
        await poll(self.check, self.interval, report)

"""The Detector Protocol, the Finding it reports, and the shared polling and command helpers.

Rules of this package:
- A Finding's `needed` is True, False or None (unknown). Unknown is never a reboot: a broken
  detector (command not found, exit 127, bad JSON, bus gone) is logged and otherwise treated
  like "not needed" (kured#976 turned `! needs-restarting` + "not found" into a reboot loop).
- Several detectors may be on: a reboot is needed when any one says so (`combine`).
- `watch(report)` runs until cancelled and calls `report` on every change, so the agent hears
  of a need within about a second: push sources (D-Bus) report on the signal; files are
  looked at when inotify says their directory changed (inotify.py; a rename, a touch or a
  package script alike), or stat-polled every `interval` where inotify is not to be had;
  commands run at their interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

log = logging.getLogger("stagger.agent.detectors")

Report = Callable[["Finding"], None]

# Exit codes that mean "the shell could not run it" (126: not executable, 127: not found).
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


@dataclass(frozen=True)
class Finding:
    """What one detector said: needed (True), not needed (False) or unknown (None), and why."""

    needed: bool | None
    detector: str
    detail: str = ""

    @property
    def unknown(self) -> bool:
        return self.needed is None


@runtime_checkable
class Detector(Protocol):
    """One source of "a reboot is needed". `check` answers once; `watch` reports each change
    (the first report comes at once) until cancelled."""

    name: str

    async def check(self) -> Finding: ...

    async def watch(self, report: Report) -> None: ...


def combine(findings: Sequence[Finding]) -> Finding:
    """Needed when any detector says so; else unknown when any is unknown; else not needed.
    The detail names every detector that said needed (or was unknown)."""
    needed = [f for f in findings if f.needed is True]
    if needed:
        return Finding(True, ",".join(f.detector for f in needed), _details(needed))
    unknown = [f for f in findings if f.needed is None]
    if unknown:
        return Finding(None, ",".join(f.detector for f in unknown), _details(unknown))
    return Finding(False, ",".join(f.detector for f in findings), "")


def _details(findings: Sequence[Finding]) -> str:
    return "; ".join(f"{f.detector}: {f.detail}" if f.detail else f.detector for f in findings)


def report_change(finding: Finding, last: Finding | None, report: Report) -> Finding:
    """Report `finding` when it differs from the `last` one reported; returns what was last
    reported now."""
    if finding != last:
        if finding.needed is None:
            log.warning("detector=%s needed=unknown detail=%r", finding.detector, finding.detail)
        report(finding)
    return finding


async def poll(check: Callable[[], Awaitable[Finding]], interval: float, report: Report) -> None:
    """Call the async `check` every `interval` seconds; report the first finding and each
    change. Runs until cancelled."""
    last: Finding | None = None
    while True:
        last = report_change(await check(), last, report)
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class Ran:
    """A command's outcome: `code` None when it could not be started or ran out of time
    (`problem` says which); a negative code is the signal that killed it."""

    code: int | None
    stdout: str = ""
    stderr: str = ""
    problem: str = ""

    def describe(self) -> str:
        """One line: the problem, or the exit code and the last line of stderr."""
        if self.code is None:
            return self.problem
        what = f"exit {self.code}" if self.code >= 0 else f"killed by signal {-self.code}"
        tail = last_line(self.stderr) or last_line(self.stdout)
        return f"{what}: {tail}" if tail else what


async def run_command(
    argv: Sequence[str],
    time_limit: float,
    env: Mapping[str, str] | None = None,
) -> Ran:
    """Run `argv` without a shell, with a timeout (the whole process group is killed when it
    runs over). Never raises for a command that cannot run: that is a `problem`."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=None if env is None else dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        return Ran(None, problem=f"{argv[0]} was not found (as exit {EXIT_NOT_FOUND})")
    except PermissionError:
        return Ran(None, problem=f"{argv[0]} is not executable (as exit {EXIT_NOT_EXECUTABLE})")
    except OSError as exc:
        return Ran(None, problem=f"{argv[0]} could not be started: {exc.strerror or exc}")
    try:
        async with asyncio.timeout(max(time_limit, 0.0)):
            out, err = await proc.communicate()
    except TimeoutError:
        kill_group(proc.pid)
        await proc.wait()
        return Ran(None, problem=f"{argv[0]} did not finish within {time_limit:g}s and was killed")
    except asyncio.CancelledError:
        kill_group(proc.pid)
        await proc.wait()
        raise
    code = proc.returncode if proc.returncode is not None else -1
    return Ran(code, out.decode(errors="replace"), err.decode(errors="replace"))


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip()[:200] if lines else ""


def kill_group(pid: int) -> None:
    """SIGKILL a process group we started (start_new_session made the child its leader)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)

"""`command`: any updater run as a command, such as `apt-get -y upgrade`, `dnf -y upgrade`
or `rpm-ostree upgrade`. Exit 0 is ok; anything else, a command that cannot be started and a
timeout are failed (retried at the next interval).

Run without a shell, stdin closed, stdout and stderr merged and read as they come, so only the
end of the output is kept (base.Tail). On timeout the whole process group is killed: apt and
dnf start helpers that would otherwise be left holding the package lock. When the agent stops
mid-attempt the group gets SIGTERM first (apt, dnf and unattended-upgrade end cleanly on it)
and SIGKILL only after STOP_GRACE."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stagger.agent.detectors.base import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, kill_group
from stagger.agent.updaters.base import Progress, Tail, UpdateResult, last_words
from stagger.core.updates import Outcome

CHUNK = 4096
STOP_GRACE = 10.0  # after SIGTERM, before SIGKILL (unattended-upgrade ends its package first)


@dataclass
class CommandUpdater:
    argv: Sequence[str]
    timeout: float = 3600.0
    env: Mapping[str, str] | None = None
    name: str = "command"

    async def attempt(self, progress: Progress | None = None) -> UpdateResult:
        shown = " ".join(self.argv)
        started = time.monotonic()
        tail = Tail()

        def done(outcome: Outcome, detail: str) -> UpdateResult:
            return UpdateResult(outcome, detail, time.monotonic() - started, tail.lines())

        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=None if self.env is None else dict(self.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            return done(
                Outcome.FAILED,
                f"`{shown}`: {self.argv[0]} was not found (as exit {EXIT_NOT_FOUND}); install "
                "it or fix [updates] command",
            )
        except PermissionError:
            return done(
                Outcome.FAILED,
                f"`{shown}`: {self.argv[0]} is not executable (as exit {EXIT_NOT_EXECUTABLE})",
            )
        except OSError as exc:
            return done(Outcome.FAILED, f"`{shown}` could not be started: {exc.strerror or exc}")
        try:
            async with asyncio.timeout(max(self.timeout, 0.0)):
                await self._read(proc, tail, progress)
            code = await proc.wait()
        except TimeoutError:
            kill_group(proc.pid)
            await proc.wait()
            return done(
                Outcome.FAILED,
                f"`{shown}` did not finish within {self.timeout:g}s and was killed; raise "
                "[updates] timeout if it needs longer",
            )
        except asyncio.CancelledError:  # the agent stops: let the updater end cleanly first
            await _stop_group(proc)
            raise
        words = last_words(tail.lines())
        if code == 0:
            return done(Outcome.OK, f"`{shown}` exited 0" + (f": {words}" if words else ""))
        what = f"exited {code}" if code > 0 else f"was killed by signal {-code}"
        return done(Outcome.FAILED, f"`{shown}` {what}" + (f": {words}" if words else ""))

    @staticmethod
    async def _read(
        proc: asyncio.subprocess.Process, tail: Tail, progress: Progress | None
    ) -> None:
        assert proc.stdout is not None
        partial = ""
        while True:
            chunk = await proc.stdout.read(CHUNK)
            if not chunk:
                break
            text = chunk.decode(errors="replace")
            tail.feed(text)
            if progress is not None:
                *lines, partial = (partial + text).split("\n")
                for line in lines:
                    if line.strip():
                        progress(line.strip()[:200])
                partial = partial[-CHUNK:]


async def _stop_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, SIGKILL it if it has not ended within STOP_GRACE."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_GRACE):
            await asyncio.shield(proc.wait())
    except TimeoutError:
        kill_group(proc.pid)
        await proc.wait()

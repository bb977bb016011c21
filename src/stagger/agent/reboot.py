"""Rebooters: how this host is rebooted, behind one small Protocol (`Rebooter` below: a
`name` and `async reboot(reason)`); runtime.py picks one from the configuration.

- `logind`: `org.freedesktop.login1.Manager.Reboot(false)` on the system bus (what
  `systemctl reboot` asks for too, without needing the systemctl binary); false = do not ask
  the user for authorization interactively.
- `systemctl`: runs `systemctl reboot`.
- `command`: runs the configured command (`[reboot] command`).
- `simulated`: records the reboot (one JSON line, fsynced) and ends the agent at once with
  SIMULATED_REBOOT_EXIT, like a real reboot: nothing after it runs. Whoever supervises the
  agent (tests, `make demo`) writes a new boot id and starts it again.
A reboot that could not be asked for raises RebootFailed; one that was asked for returns and
the system then stops the agent.

`Announced` wraps any of them: a warning to logged-in users (wall) and a delay before the
reboot (locksmith waits 5 minutes), both off by default.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from stagger.agent.detectors.base import run_command
from stagger.core.errors import StaggerError

log = logging.getLogger("stagger.agent.reboot")

# The simulated rebooter ends the agent with this code (EX_TEMPFAIL: "try again", which is
# what a supervisor does: it starts the agent again with a new boot id).
SIMULATED_REBOOT_EXIT = 75
COMMAND_TIME_LIMIT = 120.0
LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
LOGIND_INTERFACE = "org.freedesktop.login1.Manager"


class RebootFailed(StaggerError):
    """The reboot could not be asked for; the node keeps its slot and says why."""

    exit_code = 4


@runtime_checkable
class Rebooter(Protocol):
    name: str

    async def reboot(self, reason: str) -> None:
        """Start the reboot. Returns when it was asked for (the system then stops the agent);
        raises when it could not be; the simulated one ends the process (SystemExit)."""
        ...


@dataclass
class LogindRebooter:
    bus_address: str | None = None  # None: the system bus ($DBUS_SYSTEM_BUS_ADDRESS)
    name: str = "logind"

    async def reboot(self, reason: str) -> None:
        from stagger.agent import dbus

        try:
            bus = await dbus.connect(self.bus_address, COMMAND_TIME_LIMIT)
        except Exception as exc:
            raise RebootFailed(
                f"cannot reach the D-Bus system bus to ask logind for a reboot ({exc}); is "
                "dbus running? Or set [agent] rebooter = 'systemctl' or 'command'"
            ) from exc
        try:
            await dbus.call(
                bus,
                destination=LOGIND,
                path=LOGIND_PATH,
                interface=LOGIND_INTERFACE,
                member="Reboot",
                signature="b",
                body=[False],
                limit=COMMAND_TIME_LIMIT,
            )
        except TimeoutError:
            raise RebootFailed("logind did not answer the reboot request") from None
        except dbus.DBusCallError as exc:
            raise RebootFailed(
                f"logind refused to reboot: {exc.error_name} {exc.text}".rstrip()
                + "; run the agent as root, or set [agent] rebooter = 'systemctl' or 'command'"
            ) from None
        finally:
            bus.disconnect()


@dataclass
class CommandRebooter:
    argv: Sequence[str]
    name: str = "command"

    async def reboot(self, reason: str) -> None:
        ran = await run_command(list(self.argv), COMMAND_TIME_LIMIT)
        if ran.code != 0:
            raise RebootFailed(
                f"the reboot command `{' '.join(self.argv)}` failed: {ran.describe()}"
            )


def systemctl_rebooter() -> CommandRebooter:
    return CommandRebooter(("systemctl", "reboot"), name="systemctl")


@dataclass
class SimulatedRebooter:
    """Appends `{"at", "boot_id", "reason"}` to `record`, fsyncs it, and ends the process."""

    record: Path
    boot_id_path: Path
    name: str = "simulated"

    def write_record(self, reason: str) -> None:
        try:
            boot_id = self.boot_id_path.read_text().strip()
        except OSError:
            boot_id = ""
        line = json.dumps(
            {"at": datetime.now(UTC).isoformat(), "boot_id": boot_id, "reason": reason}
        )
        self.record.parent.mkdir(parents=True, exist_ok=True)
        with self.record.open("a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    async def reboot(self, reason: str) -> None:
        self.write_record(reason)
        log.warning("simulated reboot: exit=%d reason=%r", SIMULATED_REBOOT_EXIT, reason)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(SIMULATED_REBOOT_EXIT)  # like a reboot: no cleanup, no finally, no release


def read_simulated_reboots(record: Path) -> list[dict[str, str]]:
    """The reboots a simulated rebooter recorded, oldest first (for supervisors and tests)."""
    try:
        lines = record.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


@dataclass
class Announced:
    """Warn logged-in users with `wall`, wait `delay` seconds, then reboot with `inner`.
    A failing wall is logged, never a reason not to reboot."""

    inner: Rebooter
    warn_users: bool = False
    delay: float = 0.0
    wall: Sequence[str] = ("wall",)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.inner.name

    async def reboot(self, reason: str) -> None:
        if self.warn_users:
            when = f"in {self.delay:g} seconds" if self.delay > 0 else "now"
            message = f"stagger: this host reboots {when}: {reason}"
            ran = await run_command([*self.wall, message], 30.0)
            if ran.code != 0:
                log.warning("wall failed: %s", ran.describe())
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        await self.inner.reboot(reason)

"""`update_engine` (CoreOS Container Linux, Flatcar): one check-and-install over D-Bus.

`com.coreos.update1.Manager` on the system bus (reference/locksmith.md §4):
1. subscribe to `StatusUpdate(xdssx)` from the name's owner first, so no step is missed;
2. `GetStatus`: `AttemptUpdate` acts only from UPDATE_STATUS_IDLE (update_engine skips it in
   any other state), so in any other state it is not called: the attempt is `skipped`, and
   UPDATED_NEED_REBOOT means the update is already in and waits for its reboot;
3. `AttemptUpdate`, then follow the signals: CHECKING_FOR_UPDATE → UPDATE_AVAILABLE →
   DOWNLOADING (progress) → FINALIZING → UPDATED_NEED_REBOOT is `ok` (the update_engine
   detector then sees the need and the node goes through its cycle); CHECKING_FOR_UPDATE →
   IDLE is `ok` with nothing to apply; REPORTING_ERROR_EVENT (→ IDLE) is `failed`; no final
   status within the timeout is `failed`.
The low-level Message API is used, as in the detector: no introspection XML is needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stagger.agent import dbus
from stagger.agent.detectors.update_engine import BUS_NAME, INTERFACE, NEED_REBOOT, OBJECT_PATH
from stagger.agent.updaters.base import Progress, Tail, UpdateResult
from stagger.core.updates import Outcome

IDLE = "UPDATE_STATUS_IDLE"
CHECKING = "UPDATE_STATUS_CHECKING_FOR_UPDATE"
DOWNLOADING = "UPDATE_STATUS_DOWNLOADING"
ERROR = "UPDATE_STATUS_REPORTING_ERROR_EVENT"
CALL_TIMEOUT = 10.0
NO_VERSION = ("", "0.0.0", "0.0.0.0")  # update_engine's "no new version" (older builds: 0.0.0.0)
PREFIX = "UPDATE_STATUS_"

_DBUS = "org.freedesktop.DBus"
Done = Callable[[Outcome, str], UpdateResult]
_RULE = f"type='signal',sender='{BUS_NAME}',path='{OBJECT_PATH}',interface='{INTERFACE}'"


class _Refused(Exception):
    """The bus or update_engine answered a call with an error (message: one sentence)."""


def _short(operation: str) -> str:
    return operation.removeprefix(PREFIX)


def _status(body: Sequence[Any]) -> tuple[str, float, str] | None:
    """(current_operation, progress, new_version) from an `xdssx` body, or None."""
    if len(body) != 5 or not isinstance(body[2], str):
        return None
    try:
        return body[2], float(body[1]), str(body[3])
    except (TypeError, ValueError):
        return None


@dataclass
class UpdateEngineUpdater:
    bus_address: str | None = None  # None: the system bus ($DBUS_SYSTEM_BUS_ADDRESS)
    timeout: float = 3600.0
    name: str = "update_engine"

    async def attempt(self, progress: Progress | None = None) -> UpdateResult:
        started = time.monotonic()
        tail = Tail()

        def done(outcome: Outcome, detail: str) -> UpdateResult:
            return UpdateResult(outcome, detail, time.monotonic() - started, tail.lines())

        def note(line: str) -> None:
            tail.add(line)
            if progress is not None:
                progress(line)

        try:
            bus = await self._connect()
        except Exception as exc:  # dbus-fast's connect errors have no common base
            return done(
                Outcome.FAILED,
                f"cannot reach the D-Bus system bus to ask update_engine for an update: {exc}",
            )
        try:
            return await self._attempt(bus, note, done)
        except _Refused as exc:
            return done(Outcome.FAILED, str(exc))
        except TimeoutError:
            return done(Outcome.FAILED, f"{BUS_NAME} did not answer within {CALL_TIMEOUT:g}s")
        finally:
            bus.disconnect()

    async def _connect(self) -> Any:
        return await dbus.connect(self.bus_address, CALL_TIMEOUT)

    async def _call(
        self, bus: Any, destination: str, path: str, interface: str, member: str, **kw: Any
    ) -> Any:
        try:
            reply = await dbus.call(
                bus,
                destination=destination,
                path=path,
                interface=interface,
                member=member,
                limit=CALL_TIMEOUT,
                **kw,
            )
        except dbus.DBusCallError as exc:
            raise _Refused(str(exc)) from exc
        if reply is None:
            raise _Refused(f"{member} on {destination} got no reply")
        return reply

    async def _attempt(self, bus: Any, note: Progress, done: Done) -> UpdateResult:
        from dbus_fast import MessageType

        statuses: asyncio.Queue[tuple[str, float, str]] = asyncio.Queue()

        def on_message(msg: Any) -> None:
            if (
                msg.message_type == MessageType.SIGNAL
                and msg.interface == INTERFACE
                and msg.member == "StatusUpdate"
            ):
                status = _status(msg.body)
                if status is not None:
                    statuses.put_nowait(status)

        bus.add_message_handler(on_message)
        await self._call(
            bus, _DBUS, "/org/freedesktop/DBus", _DBUS, "AddMatch", signature="s", body=[_RULE]
        )
        reply = await self._call(bus, BUS_NAME, OBJECT_PATH, INTERFACE, "GetStatus")
        first = _status(reply.body)
        if first is None:
            return done(Outcome.FAILED, f"update_engine sent an unexpected status {reply.body!r}")
        operation, _, version = first
        note(f"status {_short(operation)}")
        if operation == NEED_REBOOT:
            return done(
                Outcome.SKIPPED,
                f"update_engine already applied {version} and waits for a reboot "
                "(UPDATED_NEED_REBOOT); AttemptUpdate acts only from IDLE",
            )
        if operation != IDLE:
            return done(
                Outcome.SKIPPED,
                f"update_engine is busy ({_short(operation)}); AttemptUpdate acts only from "
                "IDLE, so it was not asked",
            )
        await self._call(bus, BUS_NAME, OBJECT_PATH, INTERFACE, "AttemptUpdate")
        note("AttemptUpdate called")
        return await self._follow(statuses, note, done)

    async def _follow(
        self, statuses: asyncio.Queue[tuple[str, float, str]], note: Progress, done: Done
    ) -> UpdateResult:
        seen: list[str] = []
        error = False
        last_percent = -1
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    operation, fraction, version = await statuses.get()
                    if operation == DOWNLOADING:
                        percent = int(fraction * 100)
                        if percent != last_percent:
                            last_percent = percent
                            note(f"status DOWNLOADING {percent}%")
                    elif not seen or seen[-1] != operation:
                        shown = f" {version}" if version not in NO_VERSION else ""
                        note(f"status {_short(operation)}{shown}")
                    if not seen or seen[-1] != operation:
                        seen.append(operation)
                    if operation == NEED_REBOOT:
                        return done(
                            Outcome.OK,
                            f"update_engine applied {version}; it waits for a reboot "
                            "(UPDATED_NEED_REBOOT)",
                        )
                    if operation == ERROR:
                        error = True
                    elif operation == IDLE and len(seen) > 1:
                        break
        except TimeoutError:
            where = _short(seen[-1]) if seen else "no status change"
            return done(
                Outcome.FAILED,
                f"update_engine reached no final status within {self.timeout:g}s (last: {where})"
                "; raise [updates] timeout if downloads take longer",
            )
        steps = " → ".join(_short(s) for s in seen)
        if error:
            return done(Outcome.FAILED, f"update_engine reported an error ({steps})")
        return done(Outcome.OK, f"update_engine found no update to apply ({steps})")

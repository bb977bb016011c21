"""update_engine (CoreOS Container Linux, Flatcar) over the system D-Bus.

`com.coreos.update1` at `/com/coreos/update1`, interface `com.coreos.update1.Manager`:
`GetStatus` returns `xdssx` (last_checked_time, progress, current_operation, new_version,
new_size) and the `StatusUpdate` signal carries the same on every change. A reboot is needed
while current_operation is `UPDATE_STATUS_UPDATED_NEED_REBOOT`.

`watch` asks GetStatus once when connected (and again whenever update_engine appears on the
bus) and then follows the signal, so a new state reaches the agent as soon as it is emitted.
If the bus goes away it reports unknown and reconnects. The signal is matched on the sender
owning `com.coreos.update1`, so another client cannot fake it (locksmith's match rule does not
check the sender). The low-level Message API is used: no introspection XML needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stagger.agent import dbus
from stagger.agent.detectors.base import Finding, Report

log = logging.getLogger("stagger.agent.detectors.update_engine")

NAME = "update_engine"
BUS_NAME = "com.coreos.update1"
OBJECT_PATH = "/com/coreos/update1"
INTERFACE = "com.coreos.update1.Manager"
NEED_REBOOT = "UPDATE_STATUS_UPDATED_NEED_REBOOT"
CALL_TIMEOUT = 10.0

_DBUS = "org.freedesktop.DBus"
_SIGNAL_RULE = f"type='signal',sender='{BUS_NAME}',path='{OBJECT_PATH}',interface='{INTERFACE}'"
_OWNER_RULE = (
    f"type='signal',sender='{_DBUS}',interface='{_DBUS}',member='NameOwnerChanged',"
    f"arg0='{BUS_NAME}'"
)


def finding_from_status(name: str, body: Sequence[Any]) -> Finding:
    """Judge a GetStatus reply or a StatusUpdate body (`xdssx`)."""
    if len(body) != 5 or not isinstance(body[2], str):
        return Finding(None, name, f"update_engine sent an unexpected status {list(body)!r}")
    operation, version = body[2], body[3]
    if operation == NEED_REBOOT:
        return Finding(True, name, f"update_engine: {operation} (new version {version})")
    return Finding(False, name, f"update_engine: {operation}")


@dataclass
class UpdateEngineDetector:
    """`bus_address` None means the system bus (which honours $DBUS_SYSTEM_BUS_ADDRESS)."""

    bus_address: str | None = None
    reconnect: float = 2.0
    name: str = NAME
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    async def _connect(self) -> Any:
        return await dbus.connect(self.bus_address, CALL_TIMEOUT)

    async def _get_status(self, bus: Any) -> Finding:
        try:
            reply = await dbus.call(
                bus,
                destination=BUS_NAME,
                path=OBJECT_PATH,
                interface=INTERFACE,
                member="GetStatus",
                limit=CALL_TIMEOUT,
            )
        except TimeoutError:
            return Finding(None, self.name, f"GetStatus on {BUS_NAME} did not answer")
        except dbus.DBusCallError as exc:
            return Finding(
                None, self.name, f"{BUS_NAME} answered {exc.error_name}: {exc.text}".rstrip(": ")
            )
        if reply is None:
            return Finding(None, self.name, f"GetStatus on {BUS_NAME} got no reply")
        return finding_from_status(self.name, reply.body)

    async def _add_match(self, bus: Any, rule: str) -> None:
        try:
            await dbus.call(
                bus,
                destination=_DBUS,
                path="/org/freedesktop/DBus",
                interface=_DBUS,
                member="AddMatch",
                signature="s",
                body=[rule],
                limit=CALL_TIMEOUT,
            )
        except dbus.DBusCallError as exc:
            raise OSError(f"the bus refused the match rule: {exc.error_name}") from exc

    async def check(self) -> Finding:
        try:
            bus = await self._connect()
        except (OSError, TimeoutError, ValueError) as exc:
            return Finding(None, self.name, f"cannot reach the D-Bus system bus: {exc}")
        except Exception as exc:  # dbus-fast's auth and address errors have no common base
            return Finding(None, self.name, f"cannot reach the D-Bus system bus: {exc}")
        try:
            return await self._get_status(bus)
        finally:
            bus.disconnect()

    async def watch(self, report: Report) -> None:
        last: list[Finding | None] = [None]

        def tell(finding: Finding) -> None:
            if finding != last[0]:
                if finding.needed is None:
                    log.warning("detector=%s needed=unknown detail=%r", self.name, finding.detail)
                last[0] = finding
                report(finding)

        while True:
            try:
                bus = await self._connect()
            except Exception as exc:  # any failure to connect: unknown, then retry
                tell(Finding(None, self.name, f"cannot reach the D-Bus system bus: {exc}"))
                await asyncio.sleep(self.reconnect)
                continue
            try:
                await self._follow(bus, tell)
            except Exception as exc:
                log.warning("detector=%s bus_error=%r", self.name, str(exc))
            finally:
                bus.disconnect()
            tell(Finding(None, self.name, "the D-Bus connection was lost; reconnecting"))
            await asyncio.sleep(self.reconnect)

    async def _follow(self, bus: Any, tell: Report) -> None:
        from dbus_fast import MessageType

        def refresh() -> None:
            task = asyncio.get_running_loop().create_task(self._refresh(bus, tell))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        def on_message(msg: Any) -> None:
            if msg.message_type != MessageType.SIGNAL:
                return
            if msg.interface == INTERFACE and msg.member == "StatusUpdate":
                tell(finding_from_status(self.name, msg.body))
            elif msg.member == "NameOwnerChanged" and msg.body and msg.body[0] == BUS_NAME:
                if msg.body[2]:
                    refresh()
                else:
                    tell(Finding(None, self.name, f"{BUS_NAME} left the bus"))

        bus.add_message_handler(on_message)
        await self._add_match(bus, _SIGNAL_RULE)
        await self._add_match(bus, _OWNER_RULE)
        tell(await self._get_status(bus))
        await bus.wait_for_disconnect()

    async def _refresh(self, bus: Any, tell: Report) -> None:
        try:
            tell(await self._get_status(bus))
        except Exception as exc:
            log.warning("detector=%s get_status_error=%r", self.name, str(exc))

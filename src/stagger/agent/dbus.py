"""The agent's D-Bus plumbing, shared by the update_engine detector and updater and the logind
rebooter: connect to a bus (the system bus unless an address is given; the system bus honours
$DBUS_SYSTEM_BUS_ADDRESS) and make one method call with a time limit. dbus_fast is imported
only here and only when called, so an agent that uses no D-Bus source never loads it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


class DBusCallError(Exception):
    """The callee answered with a D-Bus error (its name and message are kept)."""

    def __init__(self, destination: str, member: str, error_name: str, text: str) -> None:
        super().__init__(f"{destination} answered {member} with {error_name}: {text}".rstrip(": "))
        self.error_name = error_name
        self.text = text


async def connect(address: str | None, limit: float) -> Any:
    """A connected `MessageBus`: `address`, or the system bus when None."""
    from dbus_fast import BusType
    from dbus_fast.aio import MessageBus

    bus = MessageBus(bus_address=address) if address else MessageBus(bus_type=BusType.SYSTEM)
    async with asyncio.timeout(limit):
        return await bus.connect()


async def call(
    bus: Any,
    *,
    destination: str,
    path: str,
    interface: str,
    member: str,
    limit: float,
    signature: str = "",
    body: Sequence[Any] = (),
) -> Any | None:
    """Call one method; return the reply (None when the bus gave none). Raises TimeoutError past
    `limit` seconds and DBusCallError when the callee answered with an error."""
    from dbus_fast import Message, MessageType

    msg = Message(
        destination=destination,
        path=path,
        interface=interface,
        member=member,
        signature=signature,
        body=list(body),
    )
    async with asyncio.timeout(limit):
        reply = await bus.call(msg)
    if reply is not None and reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body else ""
        raise DBusCallError(destination, member, reply.error_name, str(text))
    return reply

"""The update_engine detector against a real dbus-daemon on a private bus and a stand-in
`com.coreos.update1` in its own process that emits the real `StatusUpdate(xdssx)` signal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from dbus_fast import Message
from dbus_fast.aio import MessageBus

from dbus_support import PrivateBus, StandIn, start_standin
from stagger.agent.detectors.base import Finding
from stagger.agent.detectors.update_engine import (
    INTERFACE,
    NEED_REBOOT,
    OBJECT_PATH,
    UpdateEngineDetector,
)

WAIT = 20.0  # a bound for things that are not about speed (never reached when all is well)
SIGNAL_BOUND = 1.0  # the requirement: a signal reaches the agent within 1 s


class Reports:
    """Collects a watch's reports in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[float, Finding]] = asyncio.Queue()

    def __call__(self, finding: Finding) -> None:
        self.queue.put_nowait((time.monotonic(), finding))

    async def next(self, bound: float = WAIT) -> tuple[float, Finding]:
        return await asyncio.wait_for(self.queue.get(), bound)

    async def until(self, needed: bool | None, bound: float = WAIT) -> Finding:
        async with asyncio.timeout(bound):
            while True:
                _, finding = await self.queue.get()
                if finding.needed is needed:
                    return finding


@asynccontextmanager
async def watching(detector: UpdateEngineDetector) -> AsyncIterator[Reports]:
    reports = Reports()
    task = asyncio.create_task(detector.watch(reports))
    try:
        yield reports
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(WAIT):  # a lost cancel fails the test, never hangs it
                await task


async def tell(standin: StandIn, command: str) -> None:
    standin.send(command)
    assert await asyncio.to_thread(standin.line) == "emitted"


async def test_get_status_in_need_reboot_means_needed_on_the_system_bus(
    system_bus: PrivateBus, fake_update_engine: StandIn
) -> None:
    await tell(fake_update_engine, f"status {NEED_REBOOT} 3602.2.0")
    finding = await UpdateEngineDetector().check()  # no address: $DBUS_SYSTEM_BUS_ADDRESS
    assert finding.needed is True
    assert "3602.2.0" in finding.detail


async def test_idle_update_engine_means_not_needed(
    dbus_bus: PrivateBus, fake_update_engine: StandIn
) -> None:
    finding = await UpdateEngineDetector(dbus_bus.address).check()
    assert (finding.needed, finding.detail) == (False, "update_engine: UPDATE_STATUS_IDLE")


async def test_the_signal_reaches_the_watch_within_one_second(
    dbus_bus: PrivateBus, fake_update_engine: StandIn
) -> None:
    async with watching(UpdateEngineDetector(dbus_bus.address)) as reports:
        assert (await reports.next())[1].needed is False
        sent = time.monotonic()
        # GetStatus keeps answering IDLE: only the signal can carry NEED_REBOOT to the watch
        fake_update_engine.send(f"signal-only {NEED_REBOOT}")
        at, finding = await reports.next()
        assert finding.needed is True
        assert at - sent < SIGNAL_BOUND


async def test_every_status_but_need_reboot_is_not_needed(
    dbus_bus: PrivateBus, fake_update_engine: StandIn
) -> None:
    async with watching(UpdateEngineDetector(dbus_bus.address)) as reports:
        await reports.until(False)
        await tell(fake_update_engine, f"status {NEED_REBOOT}")
        await reports.until(True)
        await tell(fake_update_engine, "status UPDATE_STATUS_REPORTING_ERROR_EVENT")
        finding = await reports.until(False)
        assert "REPORTING_ERROR_EVENT" in finding.detail


async def test_no_update_engine_on_the_bus_is_unknown_never_needed(dbus_bus: PrivateBus) -> None:
    finding = await UpdateEngineDetector(dbus_bus.address).check()
    assert finding.needed is None
    assert "ServiceUnknown" in finding.detail or "NameHasNoOwner" in finding.detail


async def test_no_bus_at_all_is_unknown() -> None:
    finding = await UpdateEngineDetector("unix:path=/nonexistent/stagger-bus.sock").check()
    assert finding.needed is None


async def test_update_engine_starting_later_is_asked_for_its_status(dbus_bus: PrivateBus) -> None:
    async with watching(UpdateEngineDetector(dbus_bus.address)) as reports:
        await reports.until(None)
        late = start_standin(dbus_bus.address, "update_engine")
        try:
            await reports.until(False)  # GetStatus on NameOwnerChanged, no signal sent
        finally:
            late.stop()
        await reports.until(None)  # it left the bus


async def test_a_signal_from_another_sender_is_ignored(
    dbus_bus: PrivateBus, fake_update_engine: StandIn
) -> None:
    impostor = await MessageBus(bus_address=dbus_bus.address).connect()
    try:
        async with watching(UpdateEngineDetector(dbus_bus.address)) as reports:
            await reports.until(False)
            fake = [0, 1.0, NEED_REBOOT, "6.6.6", 1]
            await impostor.send(
                Message.new_signal(OBJECT_PATH, INTERFACE, "StatusUpdate", "xdssx", fake)
            )
            # the owner's next signal is the next report: the impostor's was never one
            await tell(fake_update_engine, "status UPDATE_STATUS_DOWNLOADING")
            _, finding = await reports.next()
            assert (finding.needed, finding.detail) == (
                False,
                "update_engine: UPDATE_STATUS_DOWNLOADING",
            )
    finally:
        impostor.disconnect()


async def test_the_watch_reconnects_when_the_bus_comes_back(dbus_bus: PrivateBus) -> None:
    first = start_standin(dbus_bus.address, "update_engine")
    detector = UpdateEngineDetector(dbus_bus.address, reconnect=0.05)
    try:
        async with watching(detector) as reports:
            await reports.until(False)
            await asyncio.to_thread(dbus_bus.kill)
            await reports.until(None)  # the connection was lost: unknown, not "not needed"
            first.stop()
            await asyncio.to_thread(dbus_bus.restart)
            second = start_standin(dbus_bus.address, "update_engine")
            try:
                await tell(second, f"status {NEED_REBOOT}")
                await reports.until(True)
            finally:
                second.stop()
    finally:
        first.stop()

"""Stand-ins for the D-Bus services stagger talks to, run in their own process on a private
bus: `python dbus_standin.py ADDRESS update_engine|logind`.

It prints `ready` once it owns its name, then obeys lines on stdin:
- update_engine: `status OP [VERSION]` sets what GetStatus returns and emits the real
  `StatusUpdate(xdssx)` signal; `signal-only OP` emits the signal without changing GetStatus
  (proves a client heard the signal rather than polled); each prints `emitted`.
  `AttemptUpdate()` acts only from UPDATE_STATUS_IDLE, like update_engine: it prints
  `attempt KIND` and walks the real status sequence, each step set and signalled (KIND is set
  by `next-attempt KIND [VERSION]`, printing `scripted`; default `update`):
  update: CHECKING_FOR_UPDATE → UPDATE_AVAILABLE → DOWNLOADING 0..100 % → FINALIZING →
  UPDATED_NEED_REBOOT; error: CHECKING_FOR_UPDATE → REPORTING_ERROR_EVENT → IDLE;
  none: CHECKING_FOR_UPDATE → IDLE; hang: CHECKING_FOR_UPDATE and nothing more.
  In any other state it prints `attempt-skipped OP` and changes nothing.
- logind: every `Reboot(b)` call is printed as `reboot <interactive>`.
`quit` (or end of input) stops it.

No `from __future__ import annotations` here: dbus-fast reads the string annotations as D-Bus
signatures (reference/feasibility.md §3)."""

import asyncio
import sys
import time

from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method, signal

STEP = 0.02  # seconds between two status changes of an attempt
SEQUENCES = {
    "update": ["CHECKING_FOR_UPDATE", "UPDATE_AVAILABLE", "DOWNLOADING", "FINALIZING",
               "UPDATED_NEED_REBOOT"],
    "error": ["CHECKING_FOR_UPDATE", "REPORTING_ERROR_EVENT", "IDLE"],
    "none": ["CHECKING_FOR_UPDATE", "IDLE"],
    "hang": ["CHECKING_FOR_UPDATE"],
}  # fmt: skip


class UpdateEngine(ServiceInterface):
    def __init__(self) -> None:
        super().__init__("com.coreos.update1.Manager")
        self.status = [int(time.time()), 0.0, "UPDATE_STATUS_IDLE", "0.0.0", 0]
        self.signalled = list(self.status)
        self.next_kind = "update"
        self.next_version = "3602.2.0"
        self.walks: set[asyncio.Task[None]] = set()

    @method()
    def GetStatus(self) -> "xdssx":  # noqa: F821
        return self.status

    @method()
    def AttemptUpdate(self) -> None:
        if self.status[2] != "UPDATE_STATUS_IDLE":
            print(f"attempt-skipped {self.status[2]}", flush=True)
            return
        print(f"attempt {self.next_kind}", flush=True)
        walk = asyncio.get_running_loop().create_task(self.walk(self.next_kind, self.next_version))
        self.walks.add(walk)
        walk.add_done_callback(self.walks.discard)

    def set(self, op: str, progress: float = 0.0, version: str = "0.0.0", size: int = 0) -> None:
        self.status = [int(time.time()), progress, f"UPDATE_STATUS_{op}", version, size]
        self.signalled = list(self.status)
        self.StatusUpdate()

    async def walk(self, kind: str, version: str) -> None:
        for op in SEQUENCES[kind]:
            await asyncio.sleep(STEP)
            if op == "DOWNLOADING":
                for percent in (0, 25, 50, 75, 100):
                    self.set(op, percent / 100, version, 123456789)
                    await asyncio.sleep(STEP)
            elif op in ("CHECKING_FOR_UPDATE", "IDLE", "REPORTING_ERROR_EVENT"):
                self.set(op)
            else:
                self.set(op, 0.0, version, 123456789)

    @signal()
    def StatusUpdate(self) -> "xdssx":  # noqa: F821
        return self.signalled


class Logind(ServiceInterface):
    def __init__(self) -> None:
        super().__init__("org.freedesktop.login1.Manager")

    @method()
    def Reboot(self, interactive: "b") -> None:  # noqa: F821
        print(f"reboot {interactive}", flush=True)


async def main(address: str, kind: str) -> None:
    bus = await MessageBus(bus_address=address).connect()
    if kind == "update_engine":
        service: ServiceInterface = UpdateEngine()
        bus.export("/com/coreos/update1", service)
        await bus.request_name("com.coreos.update1")
    else:
        service = Logind()
        bus.export("/org/freedesktop/login1", service)
        await bus.request_name("org.freedesktop.login1")
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        words = line.split()
        if not words or words[0] == "quit":
            break
        if isinstance(service, UpdateEngine) and words[0] in ("status", "signal-only"):
            version = words[2] if len(words) > 2 else "3510.2.0"
            new = [int(time.time()), 1.0, words[1], version, 123456789]
            if words[0] == "status":
                service.status = new
            service.signalled = new
            service.StatusUpdate()
            print("emitted", flush=True)
        elif isinstance(service, UpdateEngine) and words[0] == "next-attempt":
            service.next_kind = words[1]
            if len(words) > 2:
                service.next_version = words[2]
            print("scripted", flush=True)
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

"""Stand-ins for the D-Bus services stagger talks to, run in their own process on a private
bus: `python dbus_standin.py ADDRESS update_engine|logind`.

It prints `ready` once it owns its name, then obeys lines on stdin:
- update_engine: `status OP [VERSION]` sets what GetStatus returns and emits the real
  `StatusUpdate(xdssx)` signal; `signal-only OP` emits the signal without changing GetStatus
  (proves a client heard the signal rather than polled); each prints `emitted`.
- logind: every `Reboot(b)` call is printed as `reboot <interactive>`.
`quit` (or end of input) stops it.

No `from __future__ import annotations` here: dbus-fast reads the string annotations as D-Bus
signatures (reference/feasibility.md §3)."""

import asyncio
import sys
import time

from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method, signal


class UpdateEngine(ServiceInterface):
    def __init__(self) -> None:
        super().__init__("com.coreos.update1.Manager")
        self.status = [int(time.time()), 0.0, "UPDATE_STATUS_IDLE", "0.0.0", 0]
        self.signalled = list(self.status)

    @method()
    def GetStatus(self) -> "xdssx":  # noqa: F821
        return self.status

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
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

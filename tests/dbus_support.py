"""A real `dbus-daemon` on a private bus for tests, and stand-in services in their own
processes (tests/support/dbus_standin.py). Loaded by conftest as a pytest plugin.

`system_bus` points $DBUS_SYSTEM_BUS_ADDRESS at the private bus, so code that opens the system
bus (dbus-fast's BusType.SYSTEM) reaches it without a change."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DBUS_DAEMON = shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"
STANDIN = Path(__file__).parent / "support" / "dbus_standin.py"
READY_LINES = 50

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/>
  </policy>
</busconfig>
"""


@dataclass
class PrivateBus:
    address: str
    pid: int
    directory: Path

    def kill(self) -> None:
        """Stop the daemon (every connection drops); the directory stays for `restart`."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        for _ in range(1000):  # bounded: the socket file goes when the daemon has exited
            if not (self.directory / "bus.sock").exists():
                break
            time.sleep(0.005)

    def restart(self) -> None:
        """A new daemon at the same address (what a client sees when the bus comes back)."""
        self.kill()
        self.pid = start_bus(self.directory).pid

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_bus(directory: Path | None = None) -> PrivateBus:
    """Start a dbus-daemon listening on a socket in a short temp directory (a unix socket
    path must stay under 108 bytes, which pytest's tmp_path may not). Given the directory of
    a stopped bus, it comes back at the same address."""
    directory = directory or Path(tempfile.mkdtemp(prefix="stagger-dbus-", dir="/tmp"))
    conf = directory / "bus.conf"
    conf.write_text(_CONFIG.format(socket=directory / "bus.sock"))
    out = subprocess.run(
        [DBUS_DAEMON, f"--config-file={conf}", "--fork", "--print-address=1", "--print-pid=1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    address, pid = out.stdout.split("\n")[:2]
    return PrivateBus(address.strip(), int(pid), directory)


@dataclass
class StandIn:
    """A stand-in service process; `send` writes one command line, `line` reads one answer."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def line(self) -> str:
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline().strip()
        self.lines.append(text)
        return text

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def start_standin(address: str, kind: str) -> StandIn:
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), address, kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    standin = StandIn(proc)
    for _ in range(READY_LINES):
        text = standin.line()
        if text == "ready":
            return standin
        if proc.poll() is not None:
            break
    standin.stop()
    raise RuntimeError(f"the {kind} stand-in did not start: {standin.lines!r}")


@pytest.fixture
def dbus_bus() -> Iterator[PrivateBus]:
    """A fresh private bus (starts in a few ms), stopped after the test."""
    bus = start_bus()
    yield bus
    bus.stop()


@pytest.fixture
def system_bus(dbus_bus: PrivateBus, monkeypatch: pytest.MonkeyPatch) -> PrivateBus:
    """The private bus, standing in for the system bus of this process and its children."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", dbus_bus.address)
    return dbus_bus


@pytest.fixture
def fake_update_engine(dbus_bus: PrivateBus) -> Iterator[StandIn]:
    """A `com.coreos.update1` stand-in owning its name on the private bus."""
    standin = start_standin(dbus_bus.address, "update_engine")
    yield standin
    standin.stop()


@pytest.fixture
def fake_logind(dbus_bus: PrivateBus) -> Iterator[StandIn]:
    """An `org.freedesktop.login1` stand-in that prints each Reboot call."""
    standin = start_standin(dbus_bus.address, "logind")
    yield standin
    standin.stop()

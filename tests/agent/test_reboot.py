"""Rebooters: logind over a real private D-Bus with a stand-in login1, systemctl and command
on real scripts, and the simulated rebooter ending a real process with its exit code."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dbus_support import PrivateBus, StandIn
from stagger.agent.reboot import (
    SIMULATED_REBOOT_EXIT,
    Announced,
    CommandRebooter,
    LogindRebooter,
    RebootFailed,
    SimulatedRebooter,
    read_simulated_reboots,
    systemctl_rebooter,
)
from stagger.agent.runtime import build_rebooter
from stagger.config.model import StaggerConfig
from stagger.core.errors import StaggerError


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


async def test_logind_is_asked_to_reboot_without_interaction(
    system_bus: PrivateBus, fake_logind: StandIn
) -> None:
    await LogindRebooter().reboot("kernel update")  # the system bus: $DBUS_SYSTEM_BUS_ADDRESS
    assert await asyncio.to_thread(fake_logind.line) == "reboot False"


async def test_logind_missing_from_the_bus_fails_with_what_to_do(dbus_bus: PrivateBus) -> None:
    with pytest.raises(RebootFailed, match=r"logind refused to reboot: .*ServiceUnknown"):
        await LogindRebooter(dbus_bus.address).reboot("x")


async def test_no_bus_at_all_fails_with_what_to_do() -> None:
    with pytest.raises(RebootFailed, match="cannot reach the D-Bus system bus"):
        await LogindRebooter("unix:path=/nonexistent/stagger.sock").reboot("x")


async def test_systemctl_reboot_is_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    script(tmp_path, "systemctl", f'echo "$@" >> {calls}')
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    await systemctl_rebooter().reboot("x")
    assert calls.read_text() == "reboot\n"


async def test_a_failing_reboot_command_raises_with_its_exit(tmp_path: Path) -> None:
    fails = script(tmp_path, "reboot", "echo 'Access denied' >&2; exit 1")
    with pytest.raises(RebootFailed, match="exit 1: Access denied"):
        await CommandRebooter([str(fails)]).reboot("x")


async def test_a_missing_reboot_command_raises(tmp_path: Path) -> None:
    with pytest.raises(RebootFailed, match="was not found"):
        await CommandRebooter([str(tmp_path / "nope")]).reboot("x")


SIMULATE = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from stagger.agent.reboot import SimulatedRebooter
    rebooter = SimulatedRebooter(Path(sys.argv[1]), Path(sys.argv[2]))
    try:
        asyncio.run(rebooter.reboot("kernel 6.1.2"))
    finally:
        print("cleanup ran", flush=True)
    print("after the reboot", flush=True)
    """
)


def simulate(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "boot_id").write_text("boot-1\n")
    return subprocess.run(
        [sys.executable, "-c", SIMULATE, str(tmp_path / "reboots"), str(tmp_path / "boot_id")],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_simulated_reboot_ends_the_process_with_its_exit_code_and_nothing_after(
    tmp_path: Path,
) -> None:
    done = simulate(tmp_path)
    assert (done.returncode, done.stdout) == (SIMULATED_REBOOT_EXIT, "")


def test_a_simulated_reboot_is_recorded_with_the_boot_and_the_reason(tmp_path: Path) -> None:
    simulate(tmp_path)
    simulate(tmp_path)
    records = read_simulated_reboots(tmp_path / "reboots")
    assert [(r["boot_id"], r["reason"]) for r in records] == [("boot-1", "kernel 6.1.2")] * 2


async def test_users_are_warned_before_the_reboot(tmp_path: Path) -> None:
    log = tmp_path / "log"
    wall = script(tmp_path, "wall", f'echo "wall: $1" >> {log}')
    reboot = script(tmp_path, "reboot", f"echo reboot >> {log}")
    rebooter = Announced(CommandRebooter([str(reboot)]), warn_users=True, wall=[str(wall)])
    await rebooter.reboot("kernel update")
    assert log.read_text().splitlines() == [
        "wall: stagger: this host reboots now: kernel update",
        "reboot",
    ]


async def test_a_failing_wall_does_not_stop_the_reboot(tmp_path: Path) -> None:
    log = tmp_path / "log"
    reboot = script(tmp_path, "reboot", f"echo reboot >> {log}")
    rebooter = Announced(
        CommandRebooter([str(reboot)]), warn_users=True, wall=[str(tmp_path / "no-wall")]
    )
    await rebooter.reboot("x")
    assert log.read_text() == "reboot\n"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("logind", LogindRebooter),
        ("systemctl", CommandRebooter),
        ("simulated", SimulatedRebooter),
    ],
)
def test_the_configured_rebooter_is_built(name: str, kind: type) -> None:
    config = StaggerConfig.model_validate({"agent": {"rebooter": name}})
    rebooter = build_rebooter(config)
    assert (isinstance(rebooter, kind), rebooter.name) == (True, name)


def test_a_warning_or_a_delay_wraps_the_rebooter(tmp_path: Path) -> None:
    config = StaggerConfig.model_validate(
        {"agent": {"rebooter": "simulated"}, "reboot": {"delay": "5m"}}
    )
    rebooter = build_rebooter(config, tmp_path)
    assert isinstance(rebooter, Announced)
    assert (rebooter.delay, rebooter.name) == (300.0, "simulated")
    assert isinstance(rebooter.inner, SimulatedRebooter)
    assert rebooter.inner.record == tmp_path / "var/lib/stagger/simulated-reboots"


def test_the_command_rebooter_needs_a_command() -> None:
    config = StaggerConfig.model_validate({"agent": {"rebooter": "command"}})
    with pytest.raises(StaggerError, match=r"\[reboot\] command"):
        build_rebooter(config)

"""The `command` updater against a script that behaves like `apt-get -y upgrade` (its output,
its exit 100 on a held lock, its helpers), the `none` updater, and building updaters from
the configuration. Everything runs for real: processes, pipes, signals."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from stagger.agent.updaters.base import LINE_LIMIT, OUTPUT_TAIL_LINES, Tail, UpdaterSpec
from stagger.agent.updaters.command import CommandUpdater
from stagger.agent.updaters.factory import build_updater, spec_from_config
from stagger.agent.updaters.none import NoUpdater
from stagger.agent.updaters.update_engine import UpdateEngineUpdater
from stagger.config.model import StaggerConfig
from stagger.core.errors import ConfigError
from stagger.core.updates import Outcome

# Flag files next to the script choose what this "apt-get" does, like the states a real
# host can be in: another apt holding the lock, a long download, a very chatty upgrade.
FAKE_APT_GET = r"""#!/bin/sh
here="$(dirname "$0")"
if [ "$1 $2" != "-y upgrade" ]; then
  echo "E: Invalid operation $*" >&2
  exit 100
fi
echo "Reading package lists..."
if [ -e "$here/lock" ]; then
  echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
  frontend="/var/lib/dpkg/lock-frontend"
  echo "E: Unable to acquire the dpkg frontend lock ($frontend), is another process using it?" >&2
  exit 100
fi
echo "Building dependency tree..."
if [ -e "$here/hang" ]; then
  sleep 300 &
  echo $! > "$here/helper.pid"
  wait
fi
if [ -e "$here/chatty" ]; then
  i=0
  while [ $i -lt 3000 ]; do echo "Unpacking libfoo$i (1.0-$i) over (0.9) ..."; i=$((i+1)); done
fi
printf 'Get:1 http://deb.debian.org/debian bookworm/main amd64 openssl 3.0.15\r\n'
echo "2 upgraded, 0 newly installed, 0 to remove and 0 not upgraded."
touch "$here/reboot-required"
"""


@pytest.fixture
def apt_get(tmp_path: Path) -> Path:
    script = tmp_path / "apt-get"
    script.write_text(FAKE_APT_GET)
    script.chmod(0o755)
    return script


def updater(script: Path, *args: str, timeout: float = 30.0) -> CommandUpdater:
    return CommandUpdater((str(script), *(args or ("-y", "upgrade"))), timeout)


async def test_an_upgrade_that_exits_0_is_ok_with_the_end_of_its_output(apt_get: Path) -> None:
    result = await updater(apt_get).attempt()
    assert result.outcome is Outcome.OK
    assert result.detail.endswith(
        "exited 0: 2 upgraded, 0 newly installed, 0 to remove and 0 not upgraded."
    )
    assert result.output[0] == "Reading package lists..."
    assert "openssl 3.0.15" in result.output[-2]  # the \r of apt's progress lines is dropped
    assert not result.output[-2].endswith("\r")
    assert (apt_get.parent / "reboot-required").exists()  # the script really ran


async def test_a_held_dpkg_lock_is_failed_with_apts_own_words(apt_get: Path) -> None:
    (apt_get.parent / "lock").write_text("")
    result = await updater(apt_get).attempt()
    assert result.outcome is Outcome.FAILED
    assert "exited 100" in result.detail
    assert "is another process using it?" in result.detail
    assert any("Could not get lock" in line for line in result.output)  # stderr is kept too


async def test_the_arguments_reach_the_command_as_given(apt_get: Path) -> None:
    result = await updater(apt_get, "-y", "dist-upgrade;", "reboot").attempt()
    assert result.outcome is Outcome.FAILED
    assert "E: Invalid operation -y dist-upgrade; reboot" in result.detail


async def test_a_chatty_upgrade_keeps_only_a_bounded_tail(apt_get: Path) -> None:
    (apt_get.parent / "chatty").write_text("")
    result = await updater(apt_get).attempt()
    assert result.outcome is Outcome.OK
    assert len(result.output) == OUTPUT_TAIL_LINES
    assert result.output[-1].startswith("2 upgraded")
    assert "libfoo2999" in result.output[-3]


async def test_each_output_line_is_reported_as_progress(apt_get: Path) -> None:
    lines: list[str] = []
    await updater(apt_get).attempt(lines.append)
    assert lines[0] == "Reading package lists..."
    assert lines[-1].startswith("2 upgraded")


async def test_an_upgrade_over_its_timeout_is_killed_with_its_helpers(apt_get: Path) -> None:
    (apt_get.parent / "hang").write_text("")
    result = await updater(apt_get, timeout=0.5).attempt()
    assert result.outcome is Outcome.FAILED
    assert "did not finish within 0.5s and was killed" in result.detail
    assert result.output[-1] == "Building dependency tree..."
    helper = int((apt_get.parent / "helper.pid").read_text())
    assert _gone(helper)  # the whole process group, not only apt-get itself


async def test_an_agent_that_stops_mid_upgrade_lets_it_end_on_sigterm(tmp_path: Path) -> None:
    script = (
        f"trap 'echo finishing the current package; touch {tmp_path}/clean; exit 1' TERM; "
        f"touch {tmp_path}/started; while :; do sleep 0.05; done"
    )
    task = asyncio.create_task(CommandUpdater(("sh", "-c", script), 30).attempt())
    for _ in range(1000):  # bounded: the script marks that its trap is set
        if (tmp_path / "started").exists():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (tmp_path / "clean").exists()  # SIGTERM first, not an outright SIGKILL


async def test_a_missing_command_is_failed_never_raised() -> None:
    result = await CommandUpdater(("/nonexistent/apt-get", "-y", "upgrade")).attempt()
    assert result.outcome is Outcome.FAILED
    assert "was not found" in result.detail


async def test_a_command_that_is_not_executable_is_failed(apt_get: Path) -> None:
    os.chmod(apt_get, 0o644)
    result = await updater(apt_get).attempt()
    assert result.outcome is Outcome.FAILED
    assert "not executable" in result.detail


async def test_a_command_killed_by_a_signal_is_failed(tmp_path: Path) -> None:
    result = await CommandUpdater(("sh", "-c", "echo dying; kill -9 $$")).attempt()
    assert result.outcome is Outcome.FAILED
    assert "killed by signal 9: dying" in result.detail


async def test_the_none_updater_asks_for_nothing() -> None:
    result = await NoUpdater().attempt()
    assert result.outcome is Outcome.SKIPPED
    assert "host's own timer" in result.detail


def test_a_line_without_an_end_is_cut_to_the_limit() -> None:
    tail = Tail(3)
    tail.feed("a\nb\n" + "x" * (LINE_LIMIT * 3))
    lines = tail.lines()
    assert lines[:2] == ("a", "b")
    assert len(lines[2]) == LINE_LIMIT


# --- from the configuration ---------------------------------------------------------------------


def test_the_command_updater_without_a_command_is_a_config_error() -> None:
    cfg = StaggerConfig.model_validate({"updates": {"updater": "command"}})
    with pytest.raises(ConfigError, match=r"\[updates\] command is not set"):
        spec_from_config(cfg)


def test_a_disabled_command_updater_needs_no_command() -> None:
    cfg = StaggerConfig.model_validate({"updates": {"updater": "command", "enabled": False}})
    assert spec_from_config(cfg).name == "command"


def test_the_configuration_builds_the_updater_it_names() -> None:
    cfg = StaggerConfig.model_validate(
        {
            "updates": {"updater": "update_engine", "timeout": "90s"},
            "detectors": {"update_engine": {"bus_address": "unix:path=/run/x"}},
        }
    )
    spec = spec_from_config(cfg)
    assert spec == UpdaterSpec("update_engine", 90.0, (), "unix:path=/run/x")
    built = build_updater(spec)
    assert isinstance(built, UpdateEngineUpdater)
    assert (built.bus_address, built.timeout) == ("unix:path=/run/x", 90.0)
    command = build_updater(UpdaterSpec("command", 5.0, ("dnf", "-y", "upgrade")))
    assert isinstance(command, CommandUpdater)
    assert tuple(command.argv) == ("dnf", "-y", "upgrade")


def _gone(pid: int) -> bool:
    """The process has exited (gone, or a zombie nobody reaped yet), within a bound."""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return not os.path.exists(f"/proc/{pid}")

"""Detectors against real files and real scripts: what each says, and that "unknown" (a
missing command, a crash, a timeout, bad output) is never "reboot needed" (kured#976)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagger.agent.detectors.base import Finding, combine
from stagger.agent.detectors.command import CommandDetector
from stagger.agent.detectors.factory import build_detectors
from stagger.agent.detectors.file import FileDetector
from stagger.agent.detectors.manual import ManualDetector
from stagger.agent.detectors.needs_restarting import NeedsRestartingDetector
from stagger.agent.detectors.rpm_ostree import RpmOstreeDetector
from stagger.agent.state_file import ManualMark, write_manual_mark
from stagger.config.model import StaggerConfig
from stagger.core.errors import ConfigError

WAIT = 20.0


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def exits(tmp_path: Path, code: int) -> list[str]:
    return [str(script(tmp_path, f"exit{code}", f"exit {code}"))]


# --- file ---------------------------------------------------------------------------------------


async def test_file_absent_means_not_needed(tmp_path: Path) -> None:
    assert (await FileDetector(tmp_path / "reboot-required").check()).needed is False


async def test_file_present_means_needed(tmp_path: Path) -> None:
    (tmp_path / "reboot-required").touch()
    finding = await FileDetector(tmp_path / "reboot-required").check()
    assert (finding.needed, finding.detector) == (True, "file")


async def test_file_detail_lists_the_packages_once_each(tmp_path: Path) -> None:
    (tmp_path / "reboot-required").write_text("*** System restart required ***\n")
    (tmp_path / "reboot-required.pkgs").write_text("linux-image-6.1\nlibc6\nlinux-image-6.1\n")
    finding = await FileDetector(tmp_path / "reboot-required").check()
    assert finding.detail.endswith("packages: linux-image-6.1, libc6")


async def test_file_watch_reports_the_flag_when_it_appears(tmp_path: Path) -> None:
    flag = tmp_path / "reboot-required"
    seen: asyncio.Queue[Finding] = asyncio.Queue()
    task = asyncio.create_task(FileDetector(flag, interval=0.05).watch(seen.put_nowait))
    try:
        assert (await asyncio.wait_for(seen.get(), WAIT)).needed is False
        flag.touch()
        assert (await asyncio.wait_for(seen.get(), WAIT)).needed is True
        flag.unlink()
        assert (await asyncio.wait_for(seen.get(), WAIT)).needed is False
    finally:
        task.cancel()


async def test_file_watch_reports_only_changes(tmp_path: Path) -> None:
    flag = tmp_path / "reboot-required"
    flag.touch()
    seen: list[Finding] = []
    task = asyncio.create_task(FileDetector(flag, interval=0.01).watch(seen.append))
    await asyncio.sleep(0.2)  # about 20 polls of an unchanged file
    task.cancel()
    assert [f.needed for f in seen] == [True]


# --- command ------------------------------------------------------------------------------------


async def test_command_exit_0_means_needed(tmp_path: Path) -> None:
    assert (await CommandDetector(exits(tmp_path, 0)).check()).needed is True


async def test_command_exit_1_means_not_needed(tmp_path: Path) -> None:
    assert (await CommandDetector(exits(tmp_path, 1)).check()).needed is False


@pytest.mark.parametrize("code", [2, 3, 126, 127, 255])
async def test_command_any_other_exit_is_unknown(tmp_path: Path, code: int) -> None:
    finding = await CommandDetector(exits(tmp_path, code)).check()
    assert finding.needed is None
    assert f"exit {code}" in finding.detail


async def test_command_not_found_is_unknown_never_a_reboot(tmp_path: Path) -> None:
    finding = await CommandDetector([str(tmp_path / "no-such-command")]).check()
    assert finding.needed is None
    assert "was not found" in finding.detail


async def test_command_not_executable_is_unknown(tmp_path: Path) -> None:
    path = script(tmp_path, "check", "exit 0")
    path.chmod(0o644)
    assert (await CommandDetector([str(path)]).check()).needed is None


async def test_command_killed_by_a_signal_is_unknown(tmp_path: Path) -> None:
    path = script(tmp_path, "check", "kill -9 $$")
    finding = await CommandDetector([str(path)]).check()
    assert (finding.needed, "signal 9" in finding.detail) == (None, True)


async def test_command_running_over_its_timeout_is_unknown_and_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    path = script(tmp_path, "slow", f"echo $$ > {pid_file}\nexec sleep 600")
    finding = await CommandDetector([str(path)], timeout=0.3).check()
    assert finding.needed is None
    assert "did not finish" in finding.detail
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


async def test_command_detail_carries_the_last_line_of_stderr(tmp_path: Path) -> None:
    path = script(tmp_path, "check", "echo 'rpmdb locked' >&2\nexit 3")
    assert "rpmdb locked" in (await CommandDetector([str(path)]).check()).detail


# --- needs-restarting ---------------------------------------------------------------------------


async def test_needs_restarting_exit_1_means_needed(tmp_path: Path) -> None:
    path = script(tmp_path, "needs-restarting", 'test "$1" = -r || exit 9\nexit 1')
    assert (await NeedsRestartingDetector((str(path), "-r")).check()).needed is True


async def test_needs_restarting_exit_0_means_not_needed(tmp_path: Path) -> None:
    finding = await NeedsRestartingDetector(exits(tmp_path, 0)).check()
    assert finding.needed is False


async def test_needs_restarting_missing_is_unknown_never_a_reboot(tmp_path: Path) -> None:
    finding = await NeedsRestartingDetector((str(tmp_path / "needs-restarting"), "-r")).check()
    assert finding.needed is None


# --- rpm-ostree ---------------------------------------------------------------------------------


def rpm_ostree(tmp_path: Path, doc: object, code: int = 0) -> RpmOstreeDetector:
    out = tmp_path / "status.json"
    out.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    path = script(tmp_path, "rpm-ostree", f"cat {out}\nexit {code}")
    return RpmOstreeDetector((str(path), "status", "--json"))


BOOTED = {"booted": True, "staged": False, "version": "41.1", "checksum": "aaaa" * 16}
ROLLBACK = {"booted": False, "staged": False, "version": "40.9", "checksum": "bbbb" * 16}
NEWER = {"booted": False, "staged": False, "version": "41.2", "checksum": "cccc" * 16}


async def test_rpm_ostree_staged_deployment_means_needed(tmp_path: Path) -> None:
    staged = {**NEWER, "staged": True}
    finding = await rpm_ostree(tmp_path, {"deployments": [staged, BOOTED]}).check()
    assert (finding.needed, "41.2" in finding.detail) == (True, True)


async def test_rpm_ostree_pending_default_deployment_means_needed(tmp_path: Path) -> None:
    finding = await rpm_ostree(tmp_path, {"deployments": [NEWER, BOOTED]}).check()
    assert finding.needed is True


async def test_rpm_ostree_booted_newest_means_not_needed(tmp_path: Path) -> None:
    finding = await rpm_ostree(tmp_path, {"deployments": [BOOTED, ROLLBACK]}).check()
    assert finding.needed is False


@pytest.mark.parametrize(
    "doc", ["not json", "{}", '{"deployments": []}', json.dumps({"deployments": [NEWER]})]
)
async def test_rpm_ostree_output_it_cannot_judge_is_unknown(tmp_path: Path, doc: str) -> None:
    assert (await rpm_ostree(tmp_path, doc).check()).needed is None


async def test_rpm_ostree_failing_is_unknown(tmp_path: Path) -> None:
    staged = {**NEWER, "staged": True}
    finding = await rpm_ostree(tmp_path, {"deployments": [staged, BOOTED]}, code=1).check()
    assert finding.needed is None


# --- manual -------------------------------------------------------------------------------------


def manual(tmp_path: Path, boot_id: str, marked_in: str | None) -> ManualDetector:
    (tmp_path / "boot_id").write_text(boot_id + "\n")
    marker = tmp_path / "run" / "need-reboot"
    if marked_in is not None:
        mark = ManualMark("kernel CVE", datetime(2026, 1, 2, tzinfo=UTC), "operator:ann", marked_in)
        write_manual_mark(marker, mark)
    return ManualDetector(marker, tmp_path / "boot_id")


async def test_manual_marker_of_this_boot_means_needed(tmp_path: Path) -> None:
    finding = await manual(tmp_path, "boot-1", "boot-1").check()
    assert (finding.needed, "kernel CVE" in finding.detail) == (True, True)


async def test_manual_marker_from_an_earlier_boot_means_not_needed(tmp_path: Path) -> None:
    assert (await manual(tmp_path, "boot-2", "boot-1").check()).needed is False


async def test_no_manual_marker_means_not_needed(tmp_path: Path) -> None:
    assert (await manual(tmp_path, "boot-1", None).check()).needed is False


async def test_a_corrupt_manual_marker_is_unknown(tmp_path: Path) -> None:
    detector = manual(tmp_path, "boot-1", None)
    detector.path.parent.mkdir(parents=True)
    detector.path.write_text("{half")
    assert (await detector.check()).needed is None


# --- combining ----------------------------------------------------------------------------------


def test_any_needed_makes_the_node_need_a_reboot() -> None:
    combined = combine([Finding(False, "file"), Finding(None, "command"), Finding(True, "x", "y")])
    assert (combined.needed, combined.detector, combined.detail) == (True, "x", "x: y")


def test_unknown_and_not_needed_combine_to_unknown() -> None:
    assert combine([Finding(False, "file"), Finding(None, "command")]).needed is None


def test_all_not_needed_combine_to_not_needed() -> None:
    assert combine([Finding(False, "file"), Finding(False, "manual")]).needed is False


@given(st.lists(st.sampled_from([True, False, None]), max_size=8))
def test_combined_needed_only_when_some_detector_said_needed(answers: list[bool | None]) -> None:
    combined = combine([Finding(a, f"d{i}") for i, a in enumerate(answers)])
    assert (combined.needed is True) == (True in answers)


# --- from the configuration ---------------------------------------------------------------------


def test_factory_builds_the_named_detectors_plus_manual_under_the_root(tmp_path: Path) -> None:
    config = StaggerConfig.model_validate({"agent": {"detectors": ["file", "needs-restarting"]}})
    detectors = build_detectors(config, tmp_path)
    assert [d.name for d in detectors] == ["file", "needs-restarting", "manual"]
    file_detector = detectors[0]
    assert isinstance(file_detector, FileDetector)
    assert file_detector.path == tmp_path / "run/reboot-required"


def test_factory_uses_paths_written_in_the_file_as_written(tmp_path: Path) -> None:
    config = StaggerConfig.model_validate({"detectors": {"file": {"path": "/srv/flag"}}})
    file_detector = build_detectors(config, tmp_path)[0]
    assert isinstance(file_detector, FileDetector)
    assert file_detector.path == Path("/srv/flag")


def test_command_detector_without_a_command_is_a_config_error() -> None:
    config = StaggerConfig.model_validate({"agent": {"detectors": ["command"]}})
    with pytest.raises(ConfigError, match=r"\[detectors.command\] command"):
        build_detectors(config)

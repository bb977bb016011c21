"""The file watch of the file and manual detectors: real files in a temporary directory and a
real inotify instance. Polling is set to an hour in these tests (unless the fallback is what is
tested), so every change seen here was seen through inotify."""

from __future__ import annotations

import asyncio
import errno
import shutil
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from stagger.agent.detectors.base import Finding
from stagger.agent.detectors.file import FileDetector
from stagger.agent.detectors.inotify import (
    IN_CREATE,
    IN_Q_OVERFLOW,
    DirectoryWatch,
    Inotify,
    InotifyEvent,
    InotifyUnavailable,
    parse_events,
    watch_files,
)

HOUR = 3600.0
WAIT = 10.0  # seconds: the longest a test waits for a report (bounded loops)


class Seen:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def __call__(self, finding: Finding) -> None:
        self.findings.append(finding)

    @property
    def needed(self) -> list[bool | None]:
        return [f.needed for f in self.findings]

    async def until(self, what: Callable[[], bool]) -> None:
        for _ in range(int(WAIT / 0.01)):  # bounded: WAIT seconds at most
            if what():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"gave up waiting; seen so far: {self.findings}")


@asynccontextmanager
async def watching(
    detector: FileDetector, watch: Callable[[Seen], Coroutine[Any, Any, None]] | None = None
) -> AsyncIterator[Seen]:
    """The detector's watch (or `watch`) running, once it reported its first finding."""
    seen = Seen()
    task = asyncio.create_task((watch or detector.watch)(seen))
    try:
        await seen.until(lambda: len(seen.findings) >= 1)
        yield seen
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_creating_and_deleting_the_flag_is_seen_without_polling(tmp_path: Path) -> None:
    flag = tmp_path / "reboot-required"
    async with watching(FileDetector(flag, interval=HOUR)) as seen:
        assert seen.needed == [False]
        flag.write_text("")
        await seen.until(lambda: seen.needed == [False, True])
        flag.unlink()
        await seen.until(lambda: seen.needed == [False, True, False])


async def test_a_flag_renamed_into_place_is_seen(tmp_path: Path) -> None:
    flag = tmp_path / "reboot-required"
    (tmp_path / ".tmp-flag").write_text("")
    async with watching(FileDetector(flag, interval=HOUR)) as seen:
        (tmp_path / ".tmp-flag").rename(flag)
        await seen.until(lambda: seen.needed == [False, True])


async def test_the_packages_written_after_the_flag_change_the_detail(tmp_path: Path) -> None:
    flag = tmp_path / "reboot-required"
    flag.write_text("")
    async with watching(FileDetector(flag, interval=HOUR)) as seen:
        assert seen.findings[0].detail == f"{flag} exists"
        (tmp_path / "reboot-required.pkgs").write_text("linux-image\nlibc6\n")
        await seen.until(lambda: len(seen.findings) == 2)
        assert seen.findings[1].detail == f"{flag} exists; packages: linux-image, libc6"


async def test_a_directory_missing_at_start_is_waited_for_and_followed(tmp_path: Path) -> None:
    flag = tmp_path / "a" / "b" / "need-reboot"
    async with watching(FileDetector(flag, interval=HOUR)) as seen:
        assert seen.needed == [False]
        flag.parent.mkdir(parents=True)
        flag.write_text("")
        await seen.until(lambda: seen.needed == [False, True])
        shutil.rmtree(tmp_path / "a")  # the directory goes (as /run does at boot)
        await seen.until(lambda: seen.needed == [False, True, False])
        flag.parent.mkdir(parents=True)  # and comes back
        flag.write_text("")
        await seen.until(lambda: seen.needed == [False, True, False, True])


async def test_an_idle_watch_does_not_look_again_until_something_changes(tmp_path: Path) -> None:
    looks = 0
    detector = FileDetector(tmp_path / "reboot-required", interval=0.01)

    async def counted() -> Finding:
        nonlocal looks
        looks += 1
        return await detector.check()

    async with watching(
        detector, lambda seen: watch_files(counted, (detector.path,), 0.01, seen)
    ) as seen:
        await asyncio.sleep(0.3)  # 30 polls' worth at the interval: none happens
        assert looks == 1
        (tmp_path / "unrelated").write_text("")  # another file in the directory
        await asyncio.sleep(0.1)
        assert looks == 1
        detector.path.write_text("")
        await seen.until(lambda: seen.needed == [False, True])


async def test_without_inotify_it_falls_back_to_polling(tmp_path: Path) -> None:
    def unavailable() -> Inotify:
        raise InotifyUnavailable(errno.EMFILE, "no inotify instance left")

    detector = FileDetector(tmp_path / "reboot-required", interval=0.05)

    def polled(seen: Seen) -> Coroutine[Any, Any, None]:
        return watch_files(detector.check, (detector.path,), 0.05, seen, inotify=unavailable)

    async with watching(detector, polled) as seen:
        assert seen.needed == [False]
        detector.path.write_text("")
        await seen.until(lambda: seen.needed == [False, True])


def test_no_free_file_descriptor_makes_inotify_unavailable_not_a_crash() -> None:
    """A real failure of inotify_init1 (EMFILE, in a child with every descriptor taken)."""
    code = (
        "import os, resource\n"
        "from stagger.agent.detectors.inotify import Inotify, InotifyUnavailable\n"
        "fds = []\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "try:\n"
        "    while True: fds.append(os.open('/dev/null', os.O_RDONLY))\n"
        "except OSError: pass\n"
        "try:\n"
        "    Inotify()\n"
        "except InotifyUnavailable as exc:\n"
        "    print('unavailable', exc.errno == 24)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "unavailable True", done.stderr


def test_the_watch_moves_down_when_the_directory_appears(tmp_path: Path) -> None:
    flag = tmp_path / "missing" / "need-reboot"
    with Inotify() as ino:
        watch = DirectoryWatch(ino, [flag])
        watch.arm()
        assert list(watch.watched.values()) == [tmp_path]
        assert watch.relevant([InotifyEvent(1, IN_CREATE, "missing")])
        assert not watch.relevant([InotifyEvent(1, IN_CREATE, "other")])
        flag.parent.mkdir()
        watch.arm()
        assert list(watch.watched.values()) == [flag.parent]
        assert watch.relevant([InotifyEvent(2, IN_CREATE, "need-reboot")])
        assert watch.relevant([InotifyEvent(-1, IN_Q_OVERFLOW, "")])  # events were lost


def test_events_are_parsed_from_inotify_s_wire_format() -> None:
    name = b"reboot-required\0\0\0\0\0"
    raw = struct.pack("iIII", 3, IN_CREATE, 0, len(name)) + name
    raw += struct.pack("iIII", 3, IN_Q_OVERFLOW, 0, 0)
    assert list(parse_events(raw)) == [
        InotifyEvent(3, IN_CREATE, "reboot-required"),
        InotifyEvent(3, IN_Q_OVERFLOW, ""),
    ]


def test_a_real_event_reads_back_with_the_file_s_name(tmp_path: Path) -> None:
    with Inotify() as ino:
        wd = ino.add_watch(tmp_path)
        (tmp_path / "reboot-required").write_text("")
        events = ino.read()
    assert InotifyEvent(wd, IN_CREATE, "reboot-required") in events

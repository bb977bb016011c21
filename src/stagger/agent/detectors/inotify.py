"""Wake when a file may have changed: Linux inotify on the directory that holds it, through
libc by ctypes (no dependency; libc is already loaded in every CPython on Linux).

Why the directory and not the file: /run/reboot-required comes and goes (created by a package
script, a touch or a rename, deleted at boot), and a watch on a file that does not exist
cannot be made. A directory that does not exist yet (/run/stagger before the first
`stagger need-reboot`) is waited for on its nearest existing parent, and the watch moves down
when it appears (or back up when it goes).

`watch_files` is what the detectors use: report the first finding at once, then look again
only when inotify says something about one of the files changed, plus once every RESYNC
seconds as a safety net. Where inotify cannot be had (not Linux, no free inotify instance or
watch, a seccomp filter) it falls back to looking every `interval`, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stagger.agent.detectors.base import Finding, Report, poll, report_change

log = logging.getLogger("stagger.agent.detectors")

# <sys/inotify.h>
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# What a directory watch listens for: an entry made, removed, renamed in or out, written or
# touched; and the directory itself removed or renamed (the watch then moves up).
DIR_MASK = (
    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY
    | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)  # fmt: skip
_SELF = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
RESYNC = 300.0  # seconds: with inotify, the files are looked at this often all the same


class InotifyUnavailable(OSError):
    """inotify cannot be used here; the caller polls instead."""


@dataclass(frozen=True)
class InotifyEvent:
    wd: int
    mask: int
    name: str  # "" for an event about the watched directory itself


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    for name in ("inotify_init1", "inotify_add_watch", "inotify_rm_watch"):
        if not hasattr(libc, name):
            raise InotifyUnavailable(errno.ENOSYS, "this C library has no inotify")
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


def _error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


class Inotify:
    """One inotify instance: add and remove watches, read the events that are ready."""

    def __init__(self) -> None:
        try:
            self._libc = _libc()
        except (OSError, AttributeError) as exc:
            raise InotifyUnavailable(errno.ENOSYS, f"inotify is not available: {exc}") from exc
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            failed = _error("inotify_init1")
            raise InotifyUnavailable(failed.errno, str(failed))
        self.fd: int = fd

    def add_watch(self, path: Path, mask: int = DIR_MASK) -> int:
        """The watch descriptor (the same one again for a path already watched)."""
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise _error(f"inotify_add_watch {path}")
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL: already gone, which is fine

    def read(self) -> list[InotifyEvent]:
        """The events ready now (none when nothing is)."""
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return []
        return list(parse_events(data))

    async def wait(self) -> list[InotifyEvent]:
        """The next batch of events, waiting for it without a thread."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self.fd, readable)
        try:
            await ready
        finally:
            loop.remove_reader(self.fd)
        return self.read()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_events(data: bytes) -> Iterable[InotifyEvent]:
    """inotify's wire format: a header, then a NUL-padded name of `len` bytes."""
    at = 0
    while at + _HEADER.size <= len(data):
        wd, mask, _cookie, size = _HEADER.unpack_from(data, at)
        at += _HEADER.size
        name = data[at : at + size].split(b"\0", 1)[0]
        at += size
        yield InotifyEvent(wd, mask, os.fsdecode(name))


class DirectoryWatch:
    """Watches on the directories of `paths`; a missing directory is watched through its
    nearest existing parent. `arm` (again after every wake) moves the watches to where they
    belong now; `relevant` says whether an event may concern one of the files."""

    def __init__(self, inotify: Inotify, paths: Sequence[Path]) -> None:
        self.inotify = inotify
        self.dirs = list(dict.fromkeys(p.parent for p in paths))
        self.names = {p.name for p in paths}
        self.watched: dict[int, Path] = {}  # wd → directory
        self.waiting_for: set[str] = set()  # names of missing directories on the way down

    def arm(self) -> None:
        wanted: dict[int, Path] = {}
        waiting: set[str] = set()
        for d in self.dirs:
            at = d
            while True:
                try:
                    wanted[self.inotify.add_watch(at)] = at
                    break
                except OSError as exc:
                    if exc.errno not in (errno.ENOENT, errno.ENOTDIR) or at.parent == at:
                        raise
                    waiting.add(at.name)
                    at = at.parent
        for wd in set(self.watched) - set(wanted):
            self.inotify.rm_watch(wd)
        self.watched, self.waiting_for = wanted, waiting

    def relevant(self, events: Iterable[InotifyEvent]) -> bool:
        for e in events:
            if e.mask & _SELF or not e.name:
                return True
            if e.name in self.names or e.name in self.waiting_for:
                return True
        return False


WatcherFactory = Callable[[], Inotify]


async def watch_files(
    check: Callable[[], Awaitable[Finding]],
    paths: Sequence[Path],
    interval: float,
    report: Report,
    *,
    resync: float = RESYNC,
    inotify: WatcherFactory = Inotify,
) -> None:
    """Report `check`'s first finding and each change, looking again whenever inotify says
    something in the directories of `paths` changed (and every `resync` seconds); without
    inotify, every `interval` seconds. Runs until cancelled."""
    try:
        ino = inotify()
    except InotifyUnavailable as exc:
        log.info("inotify unavailable (%s): looking at %s every %gs", exc, paths[0], interval)
        await poll(check, interval, report)
        return
    with ino:
        watch = DirectoryWatch(ino, paths)
        last: Finding | None = None
        while True:
            try:
                watch.arm()  # before the look, so no change after it goes unseen
            except OSError as exc:  # out of watches (ENOSPC), or a directory we may not read
                log.info("inotify watch failed (%s): looking every %gs", exc, interval)
                await poll(check, interval, report)
                return
            last = report_change(await check(), last, report)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(resync):
                    while not watch.relevant(await ino.wait()):
                        pass

"""Reading a host's files under a root directory, as a chroot would see them.

Every path the doctor handles is absolute *inside* the root (`/etc/coreos/update.conf`);
this module is the only place that joins it with the root and follows symlinks, so an
absolute link in a fixture tree (`/usr/lib/x -> /usr/lib64/x`) resolves inside the tree,
never on the machine running the tests. All I/O of the doctor goes through `RootFS`."""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

from stagger.core.errors import ConfigError

# Linux gives up after 40 symlinks in one lookup (ELOOP); so do we.
MAX_LINK_HOPS = 40
DEV_NULL = "/dev/null"


@dataclass(frozen=True)
class RootFS:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> RootFS:
        path = Path(root)
        if not path.is_dir():
            raise ConfigError(f"--root {root} is not a directory; give the top of a host's tree.")
        return cls(path.resolve())

    def host(self, path: str) -> Path:
        """The real path of `path` (absolute inside the root), links not followed."""
        return self.root / path.lstrip("/")

    def inside(self, real: str) -> str:
        """A real path as the host sees it (absolute inside the root); other paths as given."""
        try:
            return "/" + Path(real).relative_to(self.root).as_posix().removeprefix(".")
        except ValueError:
            return real

    def resolve(self, path: str) -> str | None:
        """`path` with every symlink followed inside the root; None on a loop."""
        parts = [p for p in path.split("/") if p]
        done = "/"
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                done = posixpath.dirname(done.rstrip("/")) or "/"
                continue
            if part == ".":
                continue
            candidate = posixpath.join(done, part)
            real = self.host(candidate)
            target = _readlink(real)
            if target is not None:
                hops += 1
                if hops > MAX_LINK_HOPS:
                    return None
                if target.startswith("/"):
                    done = "/"
                parts = [p for p in target.split("/") if p] + parts
                continue
            done = candidate
        return done

    def readlink(self, path: str) -> str | None:
        return _readlink(self.host(path))

    def is_link(self, path: str) -> bool:
        return _readlink(self.host(path)) is not None

    def lexists(self, path: str) -> bool:
        return os.path.lexists(self.host(path))

    def _resolved(self, path: str) -> Path | None:
        target = self.resolve(path)
        if target is None or target == DEV_NULL:
            return None
        return self.host(target)

    def points_to_null(self, path: str) -> bool:
        """A symlink (direct or through others) to /dev/null: systemd's and liboverdrop's mask."""
        return self.is_link(path) and self.resolve(path) == DEV_NULL

    def _stat(self, path: str) -> os.stat_result | None:
        """stat() of the resolved path; None when missing or unreadable (a host's /root read
        by a normal user must not end the report)."""
        real = self._resolved(path)
        if real is None:
            return None
        try:
            return real.stat()
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        return self.points_to_null(path) or self._stat(path) is not None

    def is_file(self, path: str) -> bool:
        st = self._stat(path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def is_dir(self, path: str) -> bool:
        st = self._stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def size(self, path: str) -> int:
        st = self._stat(path)
        return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else 0

    def is_executable(self, path: str) -> bool:
        st = self._stat(path)
        return st is not None and stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)

    def listdir(self, path: str) -> list[str]:
        """Names in a directory, sorted; empty when it does not exist or cannot be read."""
        real = self._resolved(path)
        if real is None:
            return []
        try:
            return sorted(os.listdir(real))
        except OSError:
            return []

    def read_text(self, path: str) -> str | None:
        real = self._resolved(path)
        if real is None or not self.is_file(path):
            return None
        try:
            return real.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def mount_read_only(self, path: str) -> bool:
        """Whether the filesystem holding `path` (or its nearest existing parent) is mounted
        read-only (statvfs ST_RDONLY). On a fixture tree this is the test machine's mount."""
        probe = path
        for _ in range(MAX_LINK_HOPS):
            real = self._resolved(probe)
            if real is not None and self.exists(probe):
                try:
                    return bool(os.statvfs(real).f_flag & os.ST_RDONLY)
                except OSError:
                    return False
            if probe in ("/", ""):
                return False
            probe = posixpath.dirname(probe)
        return False


def _readlink(real: Path) -> str | None:
    try:
        return os.readlink(real)
    except OSError:  # not a link, missing, or unreadable
        return None

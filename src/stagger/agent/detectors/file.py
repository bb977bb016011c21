"""`/run/reboot-required`: Debian and Ubuntu packages (and unattended-upgrades) create it when
a reboot is needed; the packages that asked are listed in `/run/reboot-required.pkgs`.

The file is looked at when inotify says its directory changed (a flag made by touch, rename
or a package script alike), so an idle agent does not wake for it; where inotify cannot be
had, it is stat-polled every `interval` (default 500 ms)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stagger.agent.detectors.base import Finding, Report
from stagger.agent.detectors.inotify import watch_files

NAME = "file"
MAX_PACKAGES_SHOWN = 10


@dataclass
class FileDetector:
    path: Path = Path("/run/reboot-required")
    packages_path: Path | None = None
    interval: float = 0.5
    name: str = NAME

    async def check(self) -> Finding:
        try:
            exists = self.path.exists()
        except OSError as exc:  # e.g. a parent directory we may not search
            return Finding(None, self.name, f"cannot look at {self.path}: {exc.strerror or exc}")
        if not exists:
            return Finding(False, self.name, f"{self.path} does not exist")
        return Finding(True, self.name, self._detail())

    def _detail(self) -> str:
        try:
            lines = self.packages.read_text(errors="replace").split()
        except OSError:
            return f"{self.path} exists"
        packages = list(dict.fromkeys(p for p in lines if p))
        if not packages:
            return f"{self.path} exists"
        shown = ", ".join(packages[:MAX_PACKAGES_SHOWN])
        more = len(packages) - MAX_PACKAGES_SHOWN
        return f"{self.path} exists; packages: {shown}" + (f" and {more} more" if more > 0 else "")

    @property
    def packages(self) -> Path:
        return self.packages_path or self.path.with_name(self.path.name + ".pkgs")

    async def watch(self, report: Report) -> None:
        await watch_files(self.check, (self.path, self.packages), self.interval, report)

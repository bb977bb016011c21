"""`/run/reboot-required`: Debian and Ubuntu packages (and unattended-upgrades) create it when
a reboot is needed; the packages that asked are listed in `/run/reboot-required.pkgs`.

The file is stat-polled (default every 500 ms): one stat per poll costs nothing, and it needs
no inotify dependency; it sees a flag made by touch, rename or a package script alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stagger.agent.detectors.base import Finding, Report, poll

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
        pkgs_path = self.packages_path or self.path.with_name(self.path.name + ".pkgs")
        try:
            lines = pkgs_path.read_text(errors="replace").split()
        except OSError:
            return f"{self.path} exists"
        packages = list(dict.fromkeys(p for p in lines if p))
        if not packages:
            return f"{self.path} exists"
        shown = ", ".join(packages[:MAX_PACKAGES_SHOWN])
        more = len(packages) - MAX_PACKAGES_SHOWN
        return f"{self.path} exists; packages: {shown}" + (f" and {more} more" if more > 0 else "")

    async def watch(self, report: Report) -> None:
        await poll(self.check, self.interval, report)

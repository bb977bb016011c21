"""rpm-ostree (Fedora CoreOS, Silverblue, RHEL for Edge): a reboot is needed when a deployment
is waiting for the next boot — a staged deployment (`"staged": true`, finalized at shutdown)
or a default deployment (the first in the list) that is not the booted one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stagger.agent.detectors.base import Finding, Report, poll, run_command

NAME = "rpm-ostree"


def finding_from_status(name: str, doc: Any) -> Finding:
    """Judge `rpm-ostree status --json`'s document. Anything unexpected is unknown."""
    deployments = doc.get("deployments") if isinstance(doc, dict) else None
    if not isinstance(deployments, list) or not all(isinstance(d, dict) for d in deployments):
        return Finding(None, name, "rpm-ostree status --json has no list of deployments")
    if not deployments:
        return Finding(None, name, "rpm-ostree lists no deployments")
    booted = [d for d in deployments if d.get("booted") is True]
    if not booted:
        return Finding(None, name, "rpm-ostree lists no booted deployment")
    staged = [d for d in deployments if d.get("staged") is True]
    if staged:
        return Finding(True, name, f"staged deployment {_label(staged[0])} waits for a reboot")
    if deployments[0].get("booted") is not True:
        return Finding(True, name, f"deployment {_label(deployments[0])} is the next boot's")
    return Finding(False, name, f"booted {_label(booted[0])} is the newest deployment")


def _label(d: dict[str, Any]) -> str:
    version = d.get("version") or "(no version)"
    checksum = str(d.get("checksum") or "")[:12]
    return f"{version} ({checksum})" if checksum else str(version)


@dataclass
class RpmOstreeDetector:
    argv: Sequence[str] = ("rpm-ostree", "status", "--json")
    interval: float = 60.0
    timeout: float = 60.0
    name: str = NAME

    async def check(self) -> Finding:
        ran = await run_command(self.argv, self.timeout)
        if ran.code != 0:
            return Finding(None, self.name, f"`{' '.join(self.argv)}`: {ran.describe()}")
        try:
            doc = json.loads(ran.stdout)
        except ValueError as exc:
            return Finding(None, self.name, f"`{' '.join(self.argv)}` printed no JSON: {exc}")
        return finding_from_status(self.name, doc)

    async def watch(self, report: Report) -> None:
        await poll(self.check, self.interval, report)

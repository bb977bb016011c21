"""kured (Kubernetes): its unit, or a DaemonSet manifest on disk (applied for sure only
where k3s/RKE2 auto-deploy it)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from stagger.doctor import advice
from stagger.doctor.rootfs import RootFS
from stagger.doctor.sources.base import Host, RebootSource, Verdict, not_running

# k3s and RKE2 apply every manifest in these directories to the cluster themselves.
AUTO_DEPLOY_DIRS = (
    "/var/lib/rancher/k3s/server/manifests",
    "/var/lib/rancher/rke2/server/manifests",
)
MANIFEST_DIRS = (*AUTO_DEPLOY_DIRS, "/etc/kubernetes", "/etc/kured", "/root")
MANIFEST_MAX_DEPTH = 3
_KURED_FLAG = re.compile(
    r"--(reboot-days|start-time|end-time|time-zone|period)[=\s]+\"?([^\s\"']+)"
)


def kured_when(args: Mapping[str, str]) -> str:
    days = args.get("reboot-days", "every day")
    start = args.get("start-time", "0:00")
    end = args.get("end-time", "23:59:59")
    tz = args.get("time-zone", "UTC")
    period = args.get("period", "1h")
    return f"{days}, {start}–{end} {tz}, within {period} of /var/run/reboot-required appearing"


def kured_verdict(
    where: str, auto_deployed: bool, is_unit: bool, running: str | None, args: Mapping[str, str]
) -> RebootSource:
    settings = dict(args)
    fix = advice.kured_fix(where, is_unit)
    how = (
        "kured drains this node and runs `systemctl reboot` whenever "
        "/var/run/reboot-required exists, taking kured's own lock, not stagger's."
    )
    evidence = (where,)
    if is_unit:
        if running:
            return RebootSource(
                "kured", Verdict.NO, f"{running}.", "never", fix, settings, evidence, (where,)
            )
        return RebootSource(
            "kured", Verdict.YES, how, kured_when(args), fix, settings, evidence, (where,)
        )
    if auto_deployed:
        return RebootSource(
            "kured",
            Verdict.YES,
            how + f" ({where} is applied by k3s/RKE2.)",
            kured_when(args),
            fix,
            settings,
            evidence,
        )
    return RebootSource(
        "kured",
        Verdict.UNKNOWN,
        how + f" A kured DaemonSet manifest is at "
        f"{where}; the doctor cannot see whether it is applied to the cluster.",
        kured_when(args),
        fix,
        settings,
        evidence,
    )


def find(host: Host) -> list[RebootSource]:
    out: list[RebootSource] = []
    status = host.unit("kured.service")
    if status.found:
        out.append(kured_verdict("kured.service", False, True, not_running(status), {}))
    for top in MANIFEST_DIRS:
        for path in _walk(host.fs, top, MANIFEST_MAX_DEPTH):
            if not path.endswith((".yaml", ".yml", ".json")):
                continue
            text = host.fs.read_text(path) or ""
            if "kured" not in text or "DaemonSet" not in text:
                continue
            args = {m.group(1): m.group(2) for m in _KURED_FLAG.finditer(text)}
            out.append(kured_verdict(path, top in AUTO_DEPLOY_DIRS, False, None, args))
    return out


def _walk(fs: RootFS, top: str, depth: int) -> list[str]:
    out: list[str] = []
    for name in fs.listdir(top):
        path = posixpath.join(top, name)
        if fs.is_dir(path):
            if depth > 1 and not fs.is_link(path):
                out.extend(_walk(fs, path, depth - 1))
        elif fs.is_file(path):
            out.append(path)
    return out

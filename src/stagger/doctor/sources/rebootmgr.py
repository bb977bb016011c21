"""rebootmgr (openSUSE MicroOS, SLE Micro): its strategy and maintenance window."""

from __future__ import annotations

import configparser
from dataclasses import dataclass

from stagger.doctor import advice
from stagger.doctor.sources.base import Host, RebootSource, Verdict, not_running
from stagger.doctor.units.status import UnitStatus

REBOOTMGR_CONFS = (
    "/usr/etc/rebootmgr.conf",
    "/etc/rebootmgr.conf",
    "/etc/rebootmgr/rebootmgr.conf",
)


@dataclass(frozen=True)
class RebootmgrSettings:
    strategy: str
    window_start: str
    window_duration: str
    conf: str
    files: tuple[str, ...]


def rebootmgr_verdict(s: RebootmgrSettings, status: UnitStatus) -> RebootSource:
    settings = {
        "strategy": s.strategy,
        "window-start": s.window_start,
        "window-duration": s.window_duration,
        "unit": status.summary(),
    }
    fix = advice.rebootmgr_fix(s.conf)
    units = ("rebootmgr.service",)

    def src(v: Verdict, how: str, when: str, fix: str = fix) -> RebootSource:
        return RebootSource("rebootmgr", v, how, when, fix, settings, s.files, units)

    stopped = not_running(status)
    if stopped:
        return src(Verdict.NO, f"{stopped}.", "never")
    window = (
        f"in the maintenance window {s.window_start} for {s.window_duration}"
        if s.window_start and s.window_duration
        else ""
    )
    how = (
        "rebootmgrd reboots when transactional-update (or `rebootmgrctl reboot`) asks "
        f"(strategy {s.strategy})."
    )
    match s.strategy:
        case "off":
            return src(
                Verdict.NO,
                "strategy off: rebootmgrd ignores every reboot request.",
                "never",
                "nothing to change",
            )
        case "instantly":
            return src(Verdict.YES, how, "immediately after an update")
        case "maint-window" | "best-effort":
            return src(Verdict.YES, how, window or "immediately after an update (no window)")
        case "etcd-lock":
            return src(
                Verdict.YES,
                how + " It takes rebootmgr's own etcd lock first.",
                window or "after taking its etcd lock",
            )
    return src(Verdict.UNKNOWN, f"strategy {s.strategy!r} is not one rebootmgr knows.", "unknown")


def read_rebootmgr(host: Host) -> RebootmgrSettings | None:
    files = [p for p in REBOOTMGR_CONFS if host.fs.is_file(p)]
    if not files and not host.unit("rebootmgr.service").found:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    for path in files:
        try:
            parser.read_string(host.fs.read_text(path) or "", source=path)
        except configparser.Error:
            continue
    return RebootmgrSettings(
        strategy=parser.get("rebootmgr", "strategy", fallback="best-effort").strip(),
        window_start=parser.get("rebootmgr", "window-start", fallback="").strip(),
        window_duration=parser.get("rebootmgr", "window-duration", fallback="").strip(),
        conf=files[-1] if files else "/etc/rebootmgr.conf",
        files=tuple(files),
    )


def find(host: Host) -> list[RebootSource]:
    rebootmgr = read_rebootmgr(host)
    if rebootmgr is None:
        return []
    return [rebootmgr_verdict(rebootmgr, host.unit("rebootmgr.service"))]

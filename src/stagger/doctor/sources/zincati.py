"""Zincati (Fedora CoreOS): its config.d fragments merged as Zincati merges them, and the
strategy that decides when it finalizes (reboots into) an update."""

from __future__ import annotations

import posixpath
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stagger.doctor import advice
from stagger.doctor.sources.base import Host, RebootSource, Verdict, not_running
from stagger.doctor.stagger_node import FleetLockURL, same_fleetlock_url
from stagger.doctor.units.status import UnitStatus

ZINCATI_DIRS = ("/usr/lib/zincati/config.d", "/run/zincati/config.d", "/etc/zincati/config.d")


@dataclass(frozen=True)
class ZincatiSettings:
    enabled: bool
    strategy: str
    windows: tuple[str, ...]
    time_zone: str
    base_url: str
    group: str
    fragments: tuple[str, ...]
    errors: tuple[str, ...] = ()


def _merge_toml(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge_toml(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = into[key] + value  # [[updates.periodic.window]] accumulate
        else:
            into[key] = value


def merge_zincati(fragments: Iterable[tuple[str, str]]) -> ZincatiSettings:
    """Fragments as (path, text), already in Zincati's order (by file name)."""
    merged: dict[str, Any] = {}
    errors: list[str] = []
    paths: list[str] = []
    for path, text in fragments:
        paths.append(path)
        try:
            _merge_toml(merged, tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            errors.append(f"{path}: {exc}")
    updates = merged.get("updates", {})
    periodic = updates.get("periodic", {})
    windows = tuple(
        f"{','.join(w.get('days', []))} {w.get('start_time', '?')} "
        f"for {w.get('length_minutes', '?')} min"
        for w in periodic.get("window", [])
        if isinstance(w, dict)
    )
    return ZincatiSettings(
        enabled=bool(updates.get("enabled", True)),
        strategy=str(updates.get("strategy", "") or "immediate"),
        windows=windows,
        time_zone=str(periodic.get("time_zone", "UTC")),
        base_url=str(updates.get("fleet_lock", {}).get("base_url", "")),
        group=str(merged.get("identity", {}).get("group", "default")),
        fragments=tuple(paths),
        errors=tuple(errors),
    )


def zincati_verdict(
    s: ZincatiSettings, status: UnitStatus, stagger_urls: Sequence[FleetLockURL | str]
) -> RebootSource:
    """`stagger_urls`: the FleetLock URLs known to be stagger's (a plain string is one given
    with --fleetlock-url)."""
    known = [
        u if isinstance(u, FleetLockURL) else FleetLockURL(u, "--fleetlock-url")
        for u in stagger_urls
    ]
    settings = {
        "updates.enabled": str(s.enabled).lower(),
        "strategy": s.strategy,
        "windows": "; ".join(s.windows),
        "time_zone": s.time_zone,
        "fleet_lock.base_url": s.base_url,
        "group": s.group,
        "unit": status.summary(),
    }
    evidence = s.fragments
    fix = advice.zincati_fix()
    units = ("zincati.service",)

    def src(
        v: Verdict, how: str, when: str, fix: str = fix, through_stagger: bool = False
    ) -> RebootSource:
        return RebootSource(
            "zincati", v, how, when, fix, settings, evidence, units, through_stagger
        )

    stopped = not_running(status)
    if stopped:
        return src(Verdict.NO, f"{stopped}.", "never")
    if s.errors:
        return src(
            Verdict.UNKNOWN,
            f"a Zincati fragment is not valid TOML, so Zincati will not start: {s.errors[0]}",
            "unknown",
        )
    if not s.enabled:
        return src(
            Verdict.NO,
            "updates.enabled = false: Zincati neither updates nor reboots "
            "(updates are off too: turn them back on with the fix)",
            "never",
        )
    if s.strategy == "immediate":
        return src(
            Verdict.YES,
            "Zincati finalizes (reboots into) each update as soon as it "
            "is staged (strategy immediate).",
            "at any hour, minutes after an update is staged",
        )
    if s.strategy == "periodic":
        return src(
            Verdict.YES,
            "Zincati reboots into each staged update inside its periodic "
            "windows (strategy periodic), with no fleet-wide slot.",
            f"windows {'; '.join(s.windows) or '(none: Zincati fails)'} ({s.time_zone})",
        )
    if s.strategy == "fleet_lock":
        match = next((u for u in known if same_fleetlock_url(s.base_url, u.url)), None)
        if match is not None:
            return src(
                Verdict.NO,
                f"Zincati asks stagger's FleetLock server at {s.base_url} "
                f"(stagger's, per {match.where}) for a slot before each reboot.",
                "when stagger grants a slot",
                "nothing to change: stagger decides",
                through_stagger=True,
            )
        return src(
            Verdict.UNKNOWN,
            "Zincati reboots when the FleetLock server at "
            f"{s.base_url or '(no base_url: Zincati fails)'} grants a slot; the doctor "
            "cannot tell whether that is stagger (it is not stagger's [agent].backend or "
            "[server]; if it is stagger's, pass --fleetlock-url URL).",
            "when that server grants a slot",
        )
    return src(
        Verdict.UNKNOWN,
        f"strategy {s.strategy!r} is not one Zincati knows: it refuses to start.",
        "unknown",
    )


def read_zincati(host: Host) -> ZincatiSettings | None:
    status_found = host.tree.get("zincati.service")
    present = any(host.fs.is_dir(d) for d in ZINCATI_DIRS)
    if not present and (status_found is None or not status_found.found):
        return None
    chosen: dict[str, str | None] = {}
    for d in ZINCATI_DIRS:  # later directories win for the same file name
        for fname in host.fs.listdir(d):
            if fname.startswith(".") or not fname.endswith(".toml"):
                continue
            path = posixpath.join(d, fname)
            chosen[fname] = None if host.fs.points_to_null(path) else path
    fragments = [
        (p, host.fs.read_text(p) or "") for _, p in sorted(chosen.items()) if p is not None
    ]
    return merge_zincati(fragments)


def find(host: Host) -> list[RebootSource]:
    zincati = read_zincati(host)
    if zincati is None:
        return []
    return [zincati_verdict(zincati, host.unit("zincati.service"), host.stagger_urls)]

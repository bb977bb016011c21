"""Known reboot sources: for each agent that can reboot a host on its own, read its settings
from the tree and decide — in a pure function of those settings — whether it will reboot
this host by itself (yes / no / unknown), how, and when.

One module per family, each with readers (`read_*`, file reading through `Host`), verdicts
(`*_verdict`, plain values in, a `RebootSource` out, so each rule is tested without a file
tree) and `find(host)`; `base` holds what they share. This file only wires: the registry
below is every family, in report order.
"""

from __future__ import annotations

from collections.abc import Callable

from stagger.doctor.sources import apt, coreos, cron, dnf, kured, rebootmgr, timers, zincati
from stagger.doctor.sources.base import VERDICT_ORDER, Host, RebootSource, Verdict

FAMILIES: tuple[Callable[[Host], list[RebootSource]], ...] = (
    coreos.find,
    zincati.find,
    apt.find,
    dnf.find,
    rebootmgr.find,
    kured.find,
    cron.find,
    timers.find,
)


def find_sources(host: Host) -> list[RebootSource]:
    """Every reboot source found on the host, worst first."""
    found = [source for family in FAMILIES for source in family(host)]
    return sorted(found, key=lambda s: VERDICT_ORDER[s.will_reboot])


__all__ = ["FAMILIES", "Host", "RebootSource", "Verdict", "find_sources"]

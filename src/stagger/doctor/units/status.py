"""One unit as an operator needs to see it: is-enabled, and whether something starts it
anyway, in one value and one line (`UnitStatus.summary`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stagger.doctor.units.dbus import DbusActivation
from stagger.doctor.units.enablement import EnabledState, is_enabled
from stagger.doctor.units.startup import StartKind, StartReason, started_by
from stagger.doctor.units.tree import UnitTree


@dataclass(frozen=True)
class UnitStatus:
    """One unit as an operator needs to see it: is-enabled, and whether it starts anyway."""

    name: str
    path: str | None
    enabled: EnabledState
    masked: bool
    started_by: tuple[StartReason, ...]
    starts: bool  # something on this host starts it (boot, a timer, a bus call)

    @property
    def found(self) -> bool:
        return self.path is not None

    def summary(self) -> str:
        active = [r for r in self.started_by if r.active]
        if not self.found:
            return "not installed"
        if self.masked:
            return f"{self.enabled.value}: nothing can start it"
        labels = "; ".join(reason_label(r) for r in active)
        if not active:
            return f"{self.enabled.value}; nothing starts it"
        if self.enabled in (EnabledState.ENABLED, EnabledState.ENABLED_RUNTIME):
            return f"{self.enabled.value}, started by {labels}"
        return f"{self.enabled.value}, started anyway by {labels}"


def reason_label(reason: StartReason) -> str:
    match reason.kind:
        case StartKind.LINK:
            return f"{reason.by} ({reason.detail.split(' link in the ')[-1]} link {reason.path})"
        case StartKind.DBUS | StartKind.DBUS_EXEC:
            return f"D-Bus activation of {reason.by} ({reason.path})"
        case StartKind.DEPENDENCY:
            return f"{reason.by} ({reason.detail})"
        case _:
            return f"{reason.by} ({reason.kind.value})"


def unit_status(
    tree: UnitTree,
    name: str,
    boot: frozenset[str],
    activations: Iterable[DbusActivation] = (),
) -> UnitStatus:
    unit = tree.get(name)
    if unit is None or not unit.found:
        return UnitStatus(name, None, EnabledState.NOT_FOUND, False, (), False)
    reasons = tuple(started_by(tree, name, boot, activations))
    starts = not unit.masked and any(r.active for r in reasons)
    return UnitStatus(name, unit.path, is_enabled(tree, name), unit.masked, reasons, starts)

"""`systemctl is-enabled`, decided from a loaded `UnitTree` (systemd src/shared/install.c):
pure, no I/O."""

from __future__ import annotations

from enum import StrEnum

from stagger.doctor.units.tree import Tree, UnitTree, points_to, template_of, tree_of


class EnabledState(StrEnum):
    """What `systemctl is-enabled` prints (the subset a file tree can show)."""

    ENABLED = "enabled"
    ENABLED_RUNTIME = "enabled-runtime"
    LINKED = "linked"
    ALIAS = "alias"
    MASKED = "masked"
    MASKED_RUNTIME = "masked-runtime"
    STATIC = "static"
    INDIRECT = "indirect"
    DISABLED = "disabled"
    GENERATED = "generated"
    TRANSIENT = "transient"
    NOT_FOUND = "not-found"


def is_enabled(tree: UnitTree, name: str) -> EnabledState:
    """As `systemctl is-enabled NAME` would say (systemd src/shared/install.c,
    unit_file_lookup_state): only links in /etc or /run make a unit "enabled"; a link in the
    vendor tree (how CoreOS shipped update-engine and locksmithd) leaves it "disabled" — or
    "static" with no [Install] section — even though it starts at every boot. "indirect":
    only an alias link in /etc or /run under a name its `Alias=` does not list, or no
    [Install] rules but `Also=` (enabling it enables the others)."""
    unit = tree.get(name)
    if unit is None or not unit.found:
        return EnabledState.NOT_FOUND
    directory = unit.directory or ""
    if unit.masked:
        return (
            EnabledState.MASKED_RUNTIME
            if tree_of(directory) is Tree.RUNTIME
            else (EnabledState.MASKED)
        )
    if unit.alias_of and template_of(name) is None:
        return EnabledState.ALIAS
    if tree_of(directory) is Tree.GENERATED:
        return EnabledState.GENERATED
    if directory == "/run/systemd/transient":
        return EnabledState.TRANSIENT
    in_runtime = False
    for link in tree.links:
        if link.target is None or not points_to(link.target, link.name, unit):
            continue
        where = tree_of(link.directory)
        if where is Tree.ADMIN:
            return EnabledState.ENABLED
        if where is Tree.RUNTIME:
            in_runtime = True
    install_aliases = set(unit.unit.names("Install", "Alias"))
    for alias in tree.aliases:
        if alias.target_name == unit.real_name and alias.name in install_aliases:
            where = tree_of(alias.directory)
            if where is Tree.ADMIN:
                return EnabledState.ENABLED
            if where is Tree.RUNTIME:
                in_runtime = True
    if in_runtime:
        return EnabledState.ENABLED_RUNTIME
    if unit.linked:
        return EnabledState.LINKED
    # systemd's second look (match_name=false): a link under a name the unit's [Install]
    # does not give it, in /etc or /run, means the unit is in use under that name.
    in_use_elsewhere = [
        a
        for a in tree.aliases
        if a.target_name == unit.real_name
        and a.name not in install_aliases
        and tree_of(a.directory) in (Tree.ADMIN, Tree.RUNTIME)
    ]
    if in_use_elsewhere:
        return EnabledState.INDIRECT
    u = unit.unit
    if any(u.names("Install", k) for k in ("WantedBy", "RequiredBy", "UpheldBy", "Alias")):
        return EnabledState.DISABLED
    if u.names("Install", "Also"):
        return EnabledState.INDIRECT
    return EnabledState.STATIC

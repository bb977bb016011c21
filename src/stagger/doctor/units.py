"""systemd units read from files, the way systemd itself would see them — without systemctl,
which cannot answer when systemd is not PID 1 (containers, a mounted disk, a fixture tree).

Three layers, top to bottom:
- the unit file syntax (`parse_unit`): pure;
- loading a tree (`load_tree`): the unit search path, fragments, masks, aliases, drop-ins and
  every `.wants/`/`.requires/`/`.upholds/` link, read once through `RootFS`;
- decisions on the loaded tree (`is_enabled`, `boot_units`, `started_by`): pure functions of
  the `UnitTree` value.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from stagger.doctor.rootfs import RootFS

# The system unit search path, highest priority first (systemd.unit(5), "System Unit Search
# Path"). /lib/systemd/system exists on split-/usr distributions (Debian before usrmerge),
# /usr/lib64/systemd/system on CoreOS Container Linux, where the seed's update-engine lived.
SEARCH_PATH = (
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/usr/lib64/systemd/system",
    "/lib/systemd/system",
    "/run/systemd/generator.late",
)
ADMIN_DIRS = frozenset({"/etc/systemd/system"})
RUNTIME_DIRS = frozenset({"/run/systemd/system", "/run/systemd/transient"})
GENERATOR_DIRS = frozenset(
    {"/run/systemd/generator.early", "/run/systemd/generator", "/run/systemd/generator.late"}
)
UNIT_SUFFIXES = (
    ".service",
    ".socket",
    ".target",
    ".timer",
    ".path",
    ".mount",
    ".automount",
    ".swap",
    ".slice",
    ".scope",
    ".device",
)
LINK_DIR_KINDS = {".wants": "wants", ".requires": "requires", ".upholds": "upholds"}
# Dependencies that start the other unit when this one starts (systemd.unit(5)).
START_DEPENDENCIES = ("Wants", "Requires", "BindsTo", "Upholds")
# Targets every standard default target pulls in (multi-user.target → basic.target →
# sysinit.target, sockets.target, timers.target, paths.target): assumed even when a trimmed
# tree does not carry them.
IMPLIED_BOOT_TARGETS = (
    "basic.target",
    "sysinit.target",
    "sockets.target",
    "timers.target",
    "paths.target",
)
FALLBACK_DEFAULT_TARGET = "multi-user.target"


# ---------------------------------------------------------------------------------------------
# Syntax


@dataclass(frozen=True)
class Assignment:
    section: str
    key: str
    value: str
    source: str  # file it came from (absolute inside the root)
    line: int


def parse_unit(text: str, source: str = "") -> tuple[Assignment, ...]:
    """Unit file syntax (systemd.syntax(7)): `[Section]` headers, `Key=Value` lines, comments
    starting with `#` or `;`, a trailing backslash joining the next line (replaced by a space;
    comment lines inside a continuation are skipped). Keys repeat; what repetition means is
    up to the reader (`UnitFile.values`)."""
    out: list[Assignment] = []
    section = ""
    pending = ""
    pending_line = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if pending:
            if line.startswith(("#", ";")):
                continue
            if line.endswith("\\"):
                pending += " " + line[:-1]
                continue
            line = pending + " " + line
            pending = ""
        elif not line or line.startswith(("#", ";")):
            continue
        elif line.endswith("\\"):
            pending = line[:-1]
            pending_line = number
            continue
        else:
            pending_line = number
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, sep, value = line.partition("=")
        if not sep or not section:
            continue  # systemd logs and ignores such lines
        out.append(Assignment(section, key.strip(), value.strip(), source, pending_line))
    if pending:  # a file ending in a backslash: systemd takes what it has
        key, sep, value = pending.partition("=")
        if sep and section:
            out.append(Assignment(section, key.strip(), value.strip(), source, pending_line))
    return tuple(out)


@dataclass(frozen=True)
class UnitFile:
    """A unit's settings: the fragment's assignments, then each drop-in's, in order."""

    assignments: tuple[Assignment, ...] = ()

    def values(self, section: str, key: str) -> list[str]:
        """Every value of a list setting; an empty assignment resets the list (systemd.unit(5))."""
        result: list[str] = []
        for a in self.assignments:
            if a.section == section and a.key == key:
                if a.value == "":
                    result = []
                else:
                    result.append(a.value)
        return result

    def last(self, section: str, key: str) -> str | None:
        """A single-valued setting: the last assignment wins; an empty one means the default."""
        values = self.values(section, key)
        return values[-1] if values else None

    def names(self, section: str, key: str) -> list[str]:
        """A list of unit names: each value split on whitespace."""
        return [n for v in self.values(section, key) for n in v.split()]

    def has(self, section: str) -> bool:
        return any(a.section == section for a in self.assignments)

    def where(self, section: str, key: str) -> Assignment | None:
        found = [a for a in self.assignments if a.section == section and a.key == key]
        return found[-1] if found else None


# ---------------------------------------------------------------------------------------------
# The loaded tree (a value; built by load_tree)


class Tree(StrEnum):
    ADMIN = "admin"  # /etc: what `systemctl enable` writes
    RUNTIME = "runtime"  # /run: gone at the next boot
    GENERATED = "generated"
    VENDOR = "vendor"  # /usr, /lib: shipped by the OS or a package


def tree_of(directory: str) -> Tree:
    if directory in ADMIN_DIRS or directory.startswith("/etc/"):
        return Tree.ADMIN
    if directory in GENERATOR_DIRS:
        return Tree.GENERATED
    if directory.startswith("/run/"):
        return Tree.RUNTIME
    return Tree.VENDOR


@dataclass(frozen=True)
class LoadedUnit:
    name: str
    path: str | None  # the fragment systemd loads (absolute inside the root)
    directory: str | None  # the search-path directory it was found in
    masked: bool = False
    alias_of: str | None = None  # NAME is a symlink to another unit's file
    linked: bool = False  # the fragment is a symlink to a file outside the search path
    dropins: tuple[str, ...] = ()
    unit: UnitFile = field(default_factory=UnitFile)

    @property
    def found(self) -> bool:
        return self.path is not None

    @property
    def real_name(self) -> str:
        return self.alias_of or self.name


@dataclass(frozen=True)
class UnitLink:
    """A symlink in `<owner>.wants/` (or .requires/.upholds) inside one search-path directory."""

    owner: str
    kind: str  # wants | requires | upholds
    name: str  # the link's own name: the unit it starts
    path: str
    directory: str
    target: str | None  # where it points (resolved), None for /dev/null


@dataclass(frozen=True)
class AliasLink:
    """A symlink directly in a search-path directory whose name differs from its target."""

    name: str
    target_name: str
    path: str
    directory: str


@dataclass(frozen=True)
class UnitTree:
    search_path: tuple[str, ...]
    units: Mapping[str, LoadedUnit]
    links: tuple[UnitLink, ...]
    aliases: tuple[AliasLink, ...]
    default_target: str

    def get(self, name: str) -> LoadedUnit | None:
        return self.units.get(name)


def is_unit_name(name: str) -> bool:
    return name.endswith(UNIT_SUFFIXES) and not name.startswith(".")


def template_of(name: str) -> str | None:
    """`getty@tty1.service` → `getty@.service`; None when `name` is not an instance."""
    stem, dot, suffix = name.rpartition(".")
    prefix, at, instance = stem.partition("@")
    if not at or not instance:
        return None
    return f"{prefix}@.{suffix}" if dot else None


def dropin_dir_names(name: str) -> list[str]:
    """Drop-in directory names for `name`, most specific first: `foo-bar.service.d`, the
    template's, the dash-prefix ones (`foo-.service.d`) and the type-wide `service.d`."""
    names = [name + ".d"]
    template = template_of(name)
    if template:
        names.append(template + ".d")
    stem, _, suffix = name.rpartition(".")
    pieces = stem.split("-")
    for i in range(len(pieces) - 1, 0, -1):
        names.append("-".join(pieces[:i]) + "-." + suffix + ".d")
    names.append(suffix + ".d")
    return names


# ---------------------------------------------------------------------------------------------
# Loading (I/O through RootFS only)


def search_path(fs: RootFS) -> tuple[str, ...]:
    """The search path directories present in the tree, in priority order, each real
    directory once (on a merged-/usr system /lib is /usr/lib)."""
    seen: set[str] = set()
    out: list[str] = []
    for d in SEARCH_PATH:
        if not fs.is_dir(d):
            continue
        real = fs.resolve(d) or d
        if real in seen:
            continue
        seen.add(real)
        out.append(d)
    return tuple(out)


def _is_masked_file(fs: RootFS, path: str) -> bool:
    # systemd treats a link to /dev/null and an empty file alike (null_or_empty).
    return fs.points_to_null(path) or (fs.is_file(path) and fs.size(path) == 0)


def _load_unit(fs: RootFS, dirs: tuple[str, ...], name: str) -> LoadedUnit:
    directory = None
    path = None
    for d in dirs:
        candidate = posixpath.join(d, name)
        if fs.lexists(candidate):
            directory, path = d, candidate
            break
    lookup = name
    if path is None:
        template = template_of(name)
        if template:
            for d in dirs:
                candidate = posixpath.join(d, template)
                if fs.lexists(candidate):
                    directory, path, lookup = d, candidate, template
                    break
    if path is None or directory is None:
        return LoadedUnit(name=name, path=None, directory=None)
    if _is_masked_file(fs, path):
        return LoadedUnit(name=name, path=path, directory=directory, masked=True)
    alias_of = None
    linked = False
    fragment = path
    if fs.is_link(path):
        target = fs.resolve(path)
        if target is not None:
            fragment = target
            base = posixpath.basename(target)
            if base != lookup and is_unit_name(base):
                alias_of = base
            elif posixpath.dirname(target) not in dirs:
                linked = True
    names = [name] + ([alias_of] if alias_of else [])
    dropins = _find_dropins(fs, dirs, names)
    assignments: list[Assignment] = list(parse_unit(fs.read_text(fragment) or "", path))
    for d in dropins:
        assignments.extend(parse_unit(fs.read_text(d) or "", d))
    return LoadedUnit(
        name=name,
        path=path,
        directory=directory,
        alias_of=alias_of,
        linked=linked,
        dropins=tuple(dropins),
        unit=UnitFile(tuple(assignments)),
    )


def _find_dropins(fs: RootFS, dirs: tuple[str, ...], names: list[str]) -> list[str]:
    """`*.conf` drop-ins, sorted by file name across directories; for one file name the
    highest-priority directory wins, and a /dev/null link there masks the name."""
    chosen: dict[str, str | None] = {}
    for d in dirs:
        for unit_name in names:
            for dname in dropin_dir_names(unit_name):
                ddir = posixpath.join(d, dname)
                for fname in fs.listdir(ddir):
                    if not fname.endswith(".conf") or fname in chosen:
                        continue
                    path = posixpath.join(ddir, fname)
                    chosen[fname] = None if _is_masked_file(fs, path) else path
    return [p for _, p in sorted(chosen.items()) if p is not None]


def load_tree(fs: RootFS, extra_names: Iterable[str] = ()) -> UnitTree:
    dirs = search_path(fs)
    names: set[str] = set(extra_names)
    links: list[UnitLink] = []
    aliases: list[AliasLink] = []
    for d in dirs:
        for entry in fs.listdir(d):
            path = posixpath.join(d, entry)
            owner, dot, ext = entry.rpartition(".")
            if dot and "." + ext in LINK_DIR_KINDS and fs.is_dir(path):
                for linked in fs.listdir(path):
                    if not is_unit_name(linked):
                        continue
                    lpath = posixpath.join(path, linked)
                    target = None if fs.points_to_null(lpath) else fs.resolve(lpath)
                    links.append(
                        UnitLink(owner, LINK_DIR_KINDS["." + ext], linked, lpath, d, target)
                    )
                    names.update((owner, linked))
                continue
            if not is_unit_name(entry) or fs.is_dir(path):
                continue
            names.add(entry)
            if fs.is_link(path) and not fs.points_to_null(path):
                target = fs.resolve(path)
                if target is not None:
                    base = posixpath.basename(target)
                    if base != entry and is_unit_name(base):
                        aliases.append(AliasLink(entry, base, path, d))
    units = {n: _load_unit(fs, dirs, n) for n in sorted(names)}
    default = units.get("default.target")
    if default is not None and default.alias_of:
        default_target = default.alias_of
    elif default is not None and default.found and not default.masked:
        default_target = "default.target"
    else:
        default_target = FALLBACK_DEFAULT_TARGET
    return UnitTree(dirs, units, tuple(links), tuple(aliases), default_target)


# ---------------------------------------------------------------------------------------------
# Decisions (pure)


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


def _points_to(link_target: str | None, link_name: str, unit: LoadedUnit) -> bool:
    if link_name in (unit.name, unit.real_name):
        return True
    return link_target is not None and posixpath.basename(link_target) == unit.real_name


def is_enabled(tree: UnitTree, name: str) -> EnabledState:
    """As `systemctl is-enabled NAME` would say (systemd src/shared/install.c,
    unit_file_lookup_state): only links in /etc or /run make a unit "enabled"; a link in the
    vendor tree (how CoreOS shipped update-engine and locksmithd) leaves it "disabled" — or
    "static" with no [Install] section — even though it starts at every boot."""
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
        if link.target is None or not _points_to(link.target, link.name, unit):
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
    u = unit.unit
    if any(u.names("Install", k) for k in ("WantedBy", "RequiredBy", "UpheldBy", "Alias")):
        return EnabledState.DISABLED
    if u.names("Install", "Also"):
        return EnabledState.INDIRECT
    return EnabledState.STATIC


def _start_edges(tree: UnitTree, name: str) -> list[str]:
    unit = tree.get(name)
    out: list[str] = []
    if unit is not None and unit.found and not unit.masked:
        for key in START_DEPENDENCIES:
            out.extend(unit.unit.names("Unit", key))
    owners = {name} | ({unit.real_name} if unit else set())
    out.extend(link.name for link in tree.links if link.owner in owners and link.target)
    return out


def boot_units(tree: UnitTree) -> frozenset[str]:
    """Units the boot transaction pulls in: everything reachable from the default target
    (and the standard targets it always pulls in) through start dependencies and
    `.wants/`/`.requires/`/`.upholds/` links. Masked units are neither started nor followed."""
    queue = [tree.default_target, *IMPLIED_BOOT_TARGETS]
    seen: set[str] = set()
    while queue:  # bounded: each name is expanded once
        name = queue.pop()
        if name in seen:
            continue
        unit = tree.get(name)
        if unit is not None and unit.masked:
            continue
        seen.add(name)
        if unit is not None and unit.alias_of:
            queue.append(unit.alias_of)
        queue.extend(n for n in _start_edges(tree, name) if n not in seen)
    return frozenset(seen)


class StartKind(StrEnum):
    LINK = "link"  # <target>.wants/NAME (or .requires/.upholds)
    DEPENDENCY = "dependency"  # Wants=/Requires=/BindsTo=/Upholds= NAME in another unit
    DBUS = "dbus"  # D-Bus activation file with SystemdService=NAME
    DBUS_EXEC = "dbus-exec"  # D-Bus activation file starting the binary outside systemd
    TIMER = "timer"
    SOCKET = "socket"
    PATH = "path"
    ALSO = "also"  # `systemctl enable X` also enables NAME


@dataclass(frozen=True)
class StartReason:
    kind: StartKind
    by: str  # the unit, bus name or file that starts it
    detail: str  # one phrase an operator can check
    path: str  # the file that says so
    active: bool  # True when it applies on this host as it is (the starter itself starts)


@dataclass(frozen=True)
class DbusActivation:
    """One file in a D-Bus system-services directory."""

    bus_name: str
    systemd_service: str | None
    exec_line: str | None
    path: str


def started_by(
    tree: UnitTree,
    name: str,
    boot: frozenset[str],
    activations: Iterable[DbusActivation] = (),
) -> list[StartReason]:
    """Everything that would start `name` whatever `systemctl is-enabled` says."""
    unit = tree.get(name)
    if unit is None:
        return []
    names = {unit.name, unit.real_name}
    names.update(a.name for a in tree.aliases if a.target_name == unit.real_name)
    reasons: list[StartReason] = []
    for link in tree.links:
        if link.target is None or not _points_to(link.target, link.name, unit):
            continue
        where = tree_of(link.directory)
        reasons.append(
            StartReason(
                StartKind.LINK,
                link.owner,
                f"{link.owner}.{link.kind}/{link.name} link in the {where.value} tree",
                link.path,
                link.owner in boot,
            )
        )
    for other in tree.units.values():
        if other.name in names or not other.found or other.masked or other.alias_of:
            continue
        u = other.unit
        for key in START_DEPENDENCIES:
            for dep in u.names("Unit", key):
                if dep in names:
                    said = u.where("Unit", key)
                    reasons.append(
                        StartReason(
                            StartKind.DEPENDENCY,
                            other.name,
                            f"{other.name} has {key}={dep}",
                            said.source if said else other.path or "",
                            other.name in boot,
                        )
                    )
        stem, _, suffix = other.name.rpartition(".")
        trigger_key = {"timer": "Unit", "path": "Unit", "socket": "Service"}.get(suffix)
        if trigger_key:
            target = u.last(suffix.capitalize(), trigger_key) or f"{stem}.service"
            if target in names:
                kind = {"timer": StartKind.TIMER, "path": StartKind.PATH}.get(
                    suffix, StartKind.SOCKET
                )
                reasons.append(
                    StartReason(
                        kind,
                        other.name,
                        f"{other.name} triggers it" + _trigger_detail(u, suffix),
                        other.path or "",
                        other.name in boot,
                    )
                )
        if any(a in names for a in u.names("Install", "Also")):
            reasons.append(
                StartReason(
                    StartKind.ALSO,
                    other.name,
                    f"`systemctl enable {other.name}` also enables it (Also=)",
                    other.path or "",
                    False,
                )
            )
    bus_names = set(unit.unit.values("Service", "BusName"))
    for act in activations:
        if act.systemd_service in names:
            reasons.append(
                StartReason(
                    StartKind.DBUS,
                    act.bus_name,
                    f"D-Bus activation: any call to {act.bus_name} on the system bus starts "
                    f"it (SystemdService={act.systemd_service})",
                    act.path,
                    True,
                )
            )
        elif act.bus_name in bus_names and act.systemd_service is None:
            reasons.append(
                StartReason(
                    StartKind.DBUS_EXEC,
                    act.bus_name,
                    f"D-Bus activation: dbus-daemon runs {act.exec_line or 'its Exec='} "
                    f"itself for {act.bus_name}, outside systemd (masking does not stop it)",
                    act.path,
                    True,
                )
            )
    return reasons


def _trigger_detail(u: UnitFile, suffix: str) -> str:
    keys: tuple[str, ...]
    if suffix == "timer":
        keys = ("OnCalendar", "OnBootSec", "OnStartupSec", "OnUnitActiveSec", "OnActiveSec")
        parts = [f"{k}={v}" for k in keys for v in u.values("Timer", k)]
        return f" ({', '.join(parts)})" if parts else ""
    if suffix == "socket":
        keys = ("ListenStream", "ListenDatagram", "ListenSequentialPacket", "ListenFIFO")
        parts = [f"{k}={v}" for k in keys for v in u.values("Socket", k)]
        return f" ({', '.join(parts)})" if parts else ""
    keys = ("PathExists", "PathChanged", "PathModified", "DirectoryNotEmpty")
    parts = [f"{k}={v}" for k in keys for v in u.values("Path", k)]
    return f" ({', '.join(parts)})" if parts else ""


def parse_dbus_activation(text: str, path: str) -> DbusActivation | None:
    """A D-Bus service file: `[D-BUS Service]` with Name=, Exec=, User=, SystemdService=."""
    u = UnitFile(parse_unit(text, path))
    name = u.last("D-BUS Service", "Name")
    if not name:
        return None
    return DbusActivation(
        name, u.last("D-BUS Service", "SystemdService"), u.last("D-BUS Service", "Exec"), path
    )


# dbus-daemon's <standard_system_servicedirs/> (dbus-daemon(1)).
DBUS_SYSTEM_SERVICE_DIRS = (
    "/usr/local/share/dbus-1/system-services",
    "/usr/share/dbus-1/system-services",
    "/lib/dbus-1/system-services",
)


def load_dbus_activations(fs: RootFS) -> list[DbusActivation]:
    out: list[DbusActivation] = []
    seen: set[str] = set()
    for d in DBUS_SYSTEM_SERVICE_DIRS:
        real = fs.resolve(d) or d
        if real in seen:
            continue
        seen.add(real)
        for fname in fs.listdir(d):
            if not fname.endswith(".service"):
                continue
            path = posixpath.join(d, fname)
            act = parse_dbus_activation(fs.read_text(path) or "", path)
            if act is not None:
                out.append(act)
    return out


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

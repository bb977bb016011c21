"""Loading a unit tree through `RootFS`: the unit search path, fragments, masks, aliases,
drop-ins and every `.wants/`/`.requires/`/`.upholds/` link, each read once. The result,
`UnitTree`, is a value the analysis modules decide on without further I/O."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from stagger.doctor.rootfs import RootFS
from stagger.doctor.units.syntax import Assignment, UnitFile, parse_unit

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
FALLBACK_DEFAULT_TARGET = "multi-user.target"


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


def points_to(link_target: str | None, link_name: str, unit: LoadedUnit) -> bool:
    """Whether a link named `link_name` that resolves to `link_target` is a link to `unit`."""
    if link_name in (unit.name, unit.real_name):
        return True
    return link_target is not None and posixpath.basename(link_target) == unit.real_name


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

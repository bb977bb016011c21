"""Path conditions of a unit (`ConditionPathExists=` and friends) evaluated against a root,
and whether each one could be used to switch the unit off on this host.

The read-only rule (documented in docs/doctor.md): a path is on a read-only tree when
- the host is image-based — /etc/os-release (or /usr/lib/os-release) says ID=coreos, flatcar,
  rhcos, or VARIANT_ID=coreos/iot/silverblue/kinoite (Fedora CoreOS and friends), or the
  tree has an OSTree layout (/ostree, /sysroot/ostree or /run/ostree-booted) — and the path
  is /usr or under it: those systems mount /usr read-only (the seed's `touch /usr/.noupdate`
  failed with "Read-only file system"); or
- the filesystem holding the path (or its nearest existing parent) is mounted read-only
  (statvfs ST_RDONLY).
Write permission (`os.access`) is deliberately not used: run as a normal user it would call
every root-owned file read-only."""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stagger.doctor.rootfs import RootFS
from stagger.doctor.units.syntax import UnitFile

IMAGE_OS_IDS = frozenset({"coreos", "flatcar", "rhcos", "fedora-coreos"})
IMAGE_VARIANT_IDS = frozenset({"coreos", "iot", "silverblue", "kinoite", "sericea"})
OSTREE_MARKERS = ("/ostree", "/sysroot/ostree", "/run/ostree-booted")
READ_ONLY_IMAGE_TREES = ("/usr",)

# Conditions the doctor evaluates; every other Condition*/Assert* is listed as not evaluated.
PATH_CONDITIONS = (
    "PathExists",
    "PathExistsGlob",
    "PathIsDirectory",
    "PathIsSymbolicLink",
    "PathIsReadWrite",
    "FileNotEmpty",
    "DirectoryNotEmpty",
    "FileIsExecutable",
)


# ---------------------------------------------------------------------------------------------
# The host's kind


@dataclass(frozen=True)
class HostImage:
    os_id: str
    pretty_name: str
    image_based: bool
    why: str  # how we know it is image-based ("" when it is not)


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def classify_host(os_release: Mapping[str, str], ostree_marker: str | None) -> HostImage:
    os_id = os_release.get("ID", "linux")
    variant = os_release.get("VARIANT_ID", "")
    pretty = os_release.get("PRETTY_NAME") or os_release.get("NAME") or os_id
    if os_id in IMAGE_OS_IDS:
        return HostImage(os_id, pretty, True, f"os-release ID={os_id}")
    if variant in IMAGE_VARIANT_IDS:
        return HostImage(os_id, pretty, True, f"os-release VARIANT_ID={variant}")
    if ostree_marker:
        return HostImage(os_id, pretty, True, f"OSTree layout ({ostree_marker})")
    return HostImage(os_id, pretty, False, "")


def read_host_image(fs: RootFS) -> HostImage:
    text = fs.read_text("/etc/os-release") or fs.read_text("/usr/lib/os-release") or ""
    marker = next((m for m in OSTREE_MARKERS if fs.exists(m)), None)
    return classify_host(parse_os_release(text), marker)


def read_only_reason(path: str, host: HostImage, mount_read_only: bool) -> str | None:
    """Why `path` cannot be written on this host, or None when it can."""
    if host.image_based:
        for tree in READ_ONLY_IMAGE_TREES:
            if path == tree or path.startswith(tree + "/"):
                return f"{tree} is read-only on {host.pretty_name} (image-based OS: {host.why})"
    if mount_read_only:
        return f"{path} is on a file system mounted read-only"
    return None


# ---------------------------------------------------------------------------------------------
# Facts about one path, and the evaluation


@dataclass(frozen=True)
class PathFacts:
    exists: bool
    is_dir: bool
    is_file: bool
    is_link: bool
    size: int
    entries: int
    executable: bool
    glob_matches: int
    read_only: str | None  # why the path's tree is read-only, None when writable


@dataclass(frozen=True)
class ConditionResult:
    key: str  # e.g. ConditionPathExists
    value: str  # as written, with any `|` and `!`
    path: str
    negate: bool
    trigger: bool
    evaluated: bool
    result: bool | None  # None when not evaluated
    note: str  # what was found
    read_only: str | None = None  # why the path cannot be written
    can_switch_off: bool | None = None  # could flipping this path stop the unit?
    advice: str = ""  # what to do instead, when it cannot


def _split(raw: str) -> tuple[bool, bool, str]:
    value = raw.strip()
    trigger = value.startswith("|")
    if trigger:
        value = value[1:].lstrip()
    negate = value.startswith("!")
    if negate:
        value = value[1:].lstrip()
    return trigger, negate, value


def _check(kind: str, facts: PathFacts) -> tuple[bool, str]:
    match kind:
        case "PathExists":
            return facts.exists, "exists" if facts.exists else "does not exist"
        case "PathExistsGlob":
            return facts.glob_matches > 0, f"{facts.glob_matches} match(es)"
        case "PathIsDirectory":
            return facts.is_dir, "is a directory" if facts.is_dir else "is not a directory"
        case "PathIsSymbolicLink":
            return facts.is_link, "is a symlink" if facts.is_link else "is not a symlink"
        case "PathIsReadWrite":
            rw = facts.exists and facts.read_only is None
            return rw, "read-write" if rw else (facts.read_only or "does not exist")
        case "FileNotEmpty":
            ok = facts.is_file and facts.size > 0
            return ok, f"regular file of {facts.size} bytes" if facts.is_file else "no such file"
        case "DirectoryNotEmpty":
            ok = facts.is_dir and facts.entries > 0
            return ok, f"directory with {facts.entries} entries" if facts.is_dir else "no dir"
        case "FileIsExecutable":
            return facts.executable, "executable" if facts.executable else "not executable"
    raise ValueError(kind)


def evaluate_condition(key: str, raw: str, facts: PathFacts | None) -> ConditionResult:
    """One Condition*/Assert* line. `facts` is None for a condition the doctor does not
    evaluate (virtualization, kernel command line, …)."""
    trigger, negate, path = _split(raw)
    kind = key.removeprefix("Condition").removeprefix("Assert")
    if facts is None or kind not in PATH_CONDITIONS:
        return ConditionResult(key, raw, path, negate, trigger, False, None, "not evaluated")
    holds, note = _check(kind, facts)
    result = holds != negate
    # Flipping the condition means creating, removing, filling or emptying the path; all of
    # them need a writable tree. PathIsReadWrite cannot be flipped by touching a file.
    if kind == "PathIsReadWrite":
        return ConditionResult(key, raw, path, negate, trigger, True, result, note)
    can = facts.read_only is None
    return ConditionResult(
        key, raw, path, negate, trigger, True, result, note, facts.read_only, can
    )


def conditions_met(results: list[ConditionResult]) -> bool | None:
    """systemd's rule: every plain condition must hold, and of the `|` ones at least one.
    None when any condition that matters was not evaluated."""
    plain = [r for r in results if not r.trigger and r.key.startswith("Condition")]
    triggers = [r for r in results if r.trigger and r.key.startswith("Condition")]
    if any(r.result is False for r in plain):
        return False
    unknown = any(r.result is None for r in plain)
    if triggers:
        if any(r.result is True for r in triggers):
            return None if unknown else True
        if all(r.evaluated for r in triggers):
            return False
        return None
    return None if unknown else True


def unit_conditions(
    unit: UnitFile, probe: Callable[[str], PathFacts], advice: str
) -> list[ConditionResult]:
    """Every Condition*/Assert* of a unit, path ones evaluated through `probe`; `advice` is
    what to do instead when a condition's path cannot be written."""
    out: list[ConditionResult] = []
    for a in unit.assignments:
        if a.section != "Unit" or not a.key.startswith(("Condition", "Assert")):
            continue
        if a.value == "":
            out = [r for r in out if r.key != a.key]  # an empty assignment resets that kind
            continue
        kind = a.key.removeprefix("Condition").removeprefix("Assert")
        _, _, path = _split(a.value)
        facts = probe(path) if kind in PATH_CONDITIONS and path.startswith("/") else None
        result = evaluate_condition(a.key, a.value, facts)
        if result.can_switch_off is False:
            result = dataclasses.replace(result, advice=advice)
        out.append(result)
    return out


def probe_path(fs: RootFS, host: HostImage, path: str) -> PathFacts:
    """Gather what the conditions need to know about `path` inside the root."""
    glob_matches = 0
    if any(c in path for c in "*?["):
        parent = posixpath.dirname(path)
        pattern = posixpath.basename(path)
        glob_matches = sum(1 for n in fs.listdir(parent) if fnmatch.fnmatch(n, pattern))
    is_dir = fs.is_dir(path)
    return PathFacts(
        exists=fs.exists(path),
        is_dir=is_dir,
        is_file=fs.is_file(path),
        is_link=fs.is_link(path),
        size=fs.size(path),
        entries=len(fs.listdir(path)) if is_dir else 0,
        executable=fs.is_executable(path),
        glob_matches=glob_matches,
        read_only=read_only_reason(path, host, fs.mount_read_only(path)),
    )

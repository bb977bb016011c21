"""The agent's state on disk: one versioned JSON file, the boot id, and the "needed by hand"
marker that `stagger need-reboot` leaves.

Rules of this file:
- A save is atomic: write a temp file in the same directory, fsync it, rename it over the
  old one, fsync the directory. A SIGKILL (or the reboot itself) at any instant leaves either
  the complete old document or the complete new one, never a mix.
- The envelope is versioned: `{"format": "stagger-agent-state", "version": 1, "saved_at",
  "state": {...}}`. What is inside `state` belongs to the caller (the daemon's NodeState); this
  module only stores a JSON object, with optional encode/decode hooks for a typed value.
- A file we cannot trust (not JSON, another format, a newer version) is an error that says
  what to do; it is never silently replaced, because it may hold "I hold a slot".
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from stagger.core.errors import StaggerError
from stagger.core.semaphore import Urgent

STATE_FORMAT = "stagger-agent-state"
STATE_VERSION = 1
MANUAL_FORMAT = "stagger-need-reboot"
MAX_REASON = 1000

T = TypeVar("T")


class StateFileError(StaggerError):
    """The state file (or the manual marker) cannot be read or written safely."""

    exit_code = 2


def _now() -> datetime:
    return datetime.now(UTC)


# --- atomic writes -----------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a crash at any instant leaves the old or the new
    content: temp file in the same directory, fsync, rename, fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# --- the state file ----------------------------------------------------------------------------


def _fix(path: Path) -> str:
    return (
        f"move it aside (mv {path} {path}.bad) and start the agent again; it then starts from "
        "IDLE, re-reads its detectors, and an operator should check `stagger status` for a "
        "slot this node may still hold"
    )


@dataclass(frozen=True)
class Saved:
    """A loaded document: the caller's state and when it was saved."""

    state: dict[str, Any]
    saved_at: datetime | None
    version: int


class StateStore:
    """Load and save the agent's state document at `path` (default /var/lib/stagger/agent.json)."""

    def __init__(self, path: Path, clock: Callable[[], datetime] = _now) -> None:
        self.path = path
        self._clock = clock

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, state: Mapping[str, Any]) -> None:
        """Write `state` (a JSON object) atomically. Raises StateFileError when it cannot be
        written: the caller must not go on to an outside effect."""
        doc = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "saved_at": self._clock().isoformat(),
            "state": dict(state),
        }
        try:
            data = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
        except (TypeError, ValueError) as exc:
            raise StateFileError(f"the agent's state cannot be written as JSON: {exc}") from exc
        try:
            atomic_write(self.path, data, 0o600)
        except OSError as exc:
            raise StateFileError(
                f"cannot write the agent's state to {self.path}: {exc.strerror or exc}; free "
                "space or fix the permissions, or choose another [agent] state_path"
            ) from exc

    def load_saved(self) -> Saved | None:
        """The saved document, or None when there is no file yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(
                f"cannot read the agent's state {self.path}: {exc.strerror or exc}; fix the "
                "permissions or choose another [agent] state_path"
            ) from exc
        try:
            doc = json.loads(raw)
        except ValueError:
            raise StateFileError(
                f"the agent's state file {self.path} is not valid JSON; {_fix(self.path)}"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise StateFileError(
                f"{self.path} is not a stagger agent state file (no format "
                f"{STATE_FORMAT!r}); {_fix(self.path)}"
            )
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise StateFileError(
                f"the agent's state file {self.path} has no valid version; {_fix(self.path)}"
            )
        if version > STATE_VERSION:
            raise StateFileError(
                f"the agent's state file {self.path} was written by a newer stagger (format "
                f"version {version}, this one reads up to {STATE_VERSION}): run the newer "
                "stagger again, or move the file aside to start over"
            )
        state = doc.get("state")
        if not isinstance(state, dict):
            raise StateFileError(
                f"the agent's state file {self.path} holds no state object; {_fix(self.path)}"
            )
        saved_at = _instant(doc.get("saved_at"))
        return Saved(state, saved_at, version)

    def load(self) -> dict[str, Any] | None:
        saved = self.load_saved()
        return None if saved is None else saved.state


class TypedStateStore(Generic[T]):
    """A StateStore for one typed value, with the caller's encode/decode hooks. A decode
    error (KeyError, ValueError, TypeError) becomes a StateFileError that says what to do."""

    def __init__(
        self,
        store: StateStore,
        encode: Callable[[T], Mapping[str, Any]],
        decode: Callable[[Mapping[str, Any]], T],
    ) -> None:
        self.store = store
        self._encode = encode
        self._decode = decode

    def save(self, value: T) -> None:
        self.store.save(self._encode(value))

    def load(self) -> T | None:
        state = self.store.load()
        if state is None:
            return None
        try:
            return self._decode(state)
        except (KeyError, ValueError, TypeError) as exc:
            raise StateFileError(
                f"the agent's state file {self.store.path} cannot be understood ({exc!r}); "
                f"{_fix(self.store.path)}"
            ) from None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- the boot id -------------------------------------------------------------------------------


def read_boot_id(path: Path) -> str:
    """The kernel's id for this boot (a new one after every reboot): tells "I rebooted" from
    "I was restarted"."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError as exc:
        raise StateFileError(
            f"cannot read the boot id from {path}: {exc.strerror or exc}; on Linux it is "
            "/proc/sys/kernel/random/boot_id (set [agent] boot_id_path to another file only "
            "for tests or containers)"
        ) from None
    if not text:
        raise StateFileError(
            f"the boot id file {path} is empty: write an id in it (tests), or "
            "point [agent] boot_id_path at /proc/sys/kernel/random/boot_id"
        )
    return text


# --- the "needed by hand" marker ---------------------------------------------------------------


@dataclass(frozen=True)
class ManualMark:
    """`stagger need-reboot --reason`: a reboot needed by hand, for this boot only (a marker
    left from an earlier boot is stale: that reboot happened)."""

    reason: str
    since: datetime
    by: str
    boot_id: str
    # `--now`: an emergency reboot that skips the window (core.semaphore.Urgent).
    urgent: bool = False
    ignore_blackouts: bool = False

    def as_urgent(self, boot_id: str) -> Urgent | None:
        """The urgent reboot this marker asks for in the boot `boot_id`, if any."""
        if not self.urgent or self.boot_id != boot_id:
            return None
        return Urgent(self.reason.strip(), self.by, self.since, self.ignore_blackouts)


def write_manual_mark(path: Path, mark: ManualMark) -> None:
    reason = mark.reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise StateFileError(
            f"--reason must say why in 1 to {MAX_REASON} characters (for example 'kernel "
            "CVE-2026-1234')"
        )
    doc: dict[str, Any] = {
        "format": MANUAL_FORMAT,
        "reason": reason,
        "since": mark.since.isoformat(),
        "by": mark.by,
        "boot_id": mark.boot_id,
    }
    if mark.urgent:  # optional keys: an older agent reads the marker as a plain need-reboot
        doc |= {"urgent": True, "ignore_blackouts": mark.ignore_blackouts}
    try:
        atomic_write(path, json.dumps(doc, indent=1).encode() + b"\n")
    except OSError as exc:
        raise StateFileError(
            f"cannot write the need-reboot marker {path}: {exc.strerror or exc}; run as root, "
            "or point [detectors.manual] path somewhere writable"
        ) from exc


def read_manual_mark(path: Path) -> ManualMark | None:
    """The marker, or None when there is none. An unreadable marker is an error (the caller
    turns it into an unknown finding: never a reboot, never silently "not needed")."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw)
        since = datetime.fromisoformat(doc["since"])
        mark = ManualMark(
            str(doc["reason"]),
            since,
            str(doc["by"]),
            str(doc["boot_id"]),
            urgent=doc.get("urgent") is True,
            ignore_blackouts=doc.get("ignore_blackouts") is True,
        )
    except (ValueError, KeyError, TypeError):
        raise StateFileError(
            f"{path} is not a need-reboot marker: remove it and run `stagger need-reboot` again"
        ) from None
    return mark


def clear_manual_mark(path: Path) -> bool:
    """Remove the marker (after the reboot it asked for); True when there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True

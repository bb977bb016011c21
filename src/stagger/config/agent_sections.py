"""The agent's configuration sections: [detectors.*], [hooks], [reboot], and the checks for
the keys the agent adds to [agent] (detectors, rebooter, state_path, boot_id_path).

Rules of this file (the same as model.py's, which imports it):
- `extra="forbid"`: an unknown key is an error. Every field says what is allowed.
- Durations are kept as the operator wrote them and checked with core's parser; `seconds()`
  turns them into floats for the shells.
- Paths: a path written in the file is used as written; a path left at its default is put
  under `--root` when one is given (see `path_of`), so `stagger agent --config FILE` works
  with every path in FILE and tests can still give each agent its own root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from stagger.core.durations import is_bare_number, parse_duration
from stagger.core.errors import InvalidInput

DETECTOR_NAMES = ("file", "update_engine", "command", "needs-restarting", "rpm-ostree", "manual")
REBOOTER_NAMES = ("logind", "systemctl", "command", "simulated")
DEFAULT_DETECTORS = ("file",)
DEFAULT_REBOOTER = "logind"
DEFAULT_STATE_PATH = "/var/lib/stagger/agent.json"
DEFAULT_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
DEFAULT_MANUAL_PATH = "/run/stagger/need-reboot"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def path_of(self, name: str, root: Path | None) -> Path:
        return path_of(self, name, root)


def path_of(section: BaseModel, name: str, root: Path | None) -> Path:
    """The path in field `name` of `section`: as written when the file set it, else the
    default under `root` (for tests, images and containers). Works for [agent] too."""
    value = Path(str(getattr(section, name)))
    if name in section.model_fields_set or root is None:
        return value
    return root / value.relative_to(value.anchor)


class BareNumber(InvalidInput):
    """A duration written without a unit (`delay = 5`, `retry = "30"`): seconds or minutes?
    Refused; the loader's message names the key and shows it with a unit."""

    def __init__(self, value: Any) -> None:
        self.number = str(value).strip()
        self.shown = f'"{value}"' if isinstance(value, str) else str(value)
        super().__init__(
            f"{self.shown} has no unit: write a duration as a string with a unit, like "
            f'"{self.number}s" (or "m", "h", "d")'
        )

    def example(self, key: str) -> str:
        return (
            f"{self.shown} has no unit: write a duration as a string with a unit, like "
            f'{key} = "{self.number}s" (or "m", "h", "d")'
        )


def check_duration(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(f"{what} must be a duration like '30s' or '5m', not {value!r}")
    if not isinstance(value, str) or is_bare_number(value):
        raise BareNumber(value)
    parse_duration(value, what=what)
    return value


def seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


def check_argv(value: Any, what: str) -> list[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(a, str) for a in value)
        or not value[0]
    ):
        raise InvalidInput(
            f"{what} must be a command as a list of strings, like ['/usr/bin/check', '--fast'], "
            f"not {value!r}"
        )
    return list(value)


def check_argv_list(value: Any, what: str) -> list[list[str]]:
    if not isinstance(value, list):
        raise InvalidInput(
            f"{what} must be a list of commands, like [['/usr/local/bin/drain'], ['sync']], "
            f"not {value!r}"
        )
    return [check_argv(v, f"{what} #{i + 1}") for i, v in enumerate(value)]


def check_path(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidInput(f"{what} must be an absolute path like '/run/x', not {value!r}")
    return value


def check_agent_detectors(value: Any) -> list[str]:
    """The [agent] detectors list: known names, each at most once."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidInput(f"detectors must be a list of names from {DETECTOR_NAMES}")
    for item in items:
        if item not in DETECTOR_NAMES:
            raise InvalidInput(f"detector {item!r} is not known: use names from {DETECTOR_NAMES}")
    if len(set(items)) != len(items):
        raise InvalidInput(f"detectors lists a name twice: {items!r}")
    return list(items)


def check_rebooter(value: Any) -> str:
    if value not in REBOOTER_NAMES:
        raise InvalidInput(f"rebooter {value!r} is not known: use one of {REBOOTER_NAMES}")
    return str(value)


# Field types that check themselves (the same parsers core uses).
Duration = Annotated[str, BeforeValidator(lambda v: check_duration(v, "duration"))]
AbsPath = Annotated[str, BeforeValidator(lambda v: check_path(v, "path"))]
Argv = Annotated[list[str], BeforeValidator(lambda v: check_argv(v, "command"))]
ArgvList = Annotated[list[list[str]], BeforeValidator(lambda v: check_argv_list(v, "commands"))]


# --- [detectors.*] -----------------------------------------------------------------------------


class FileDetectorConfig(_Section):
    path: AbsPath = Field(
        "/run/reboot-required", description="the flag file; needed while it exists"
    )
    packages_path: AbsPath | None = Field(
        None, description="the list of packages shown as the detail; default path + '.pkgs'"
    )
    interval: Duration = Field("500ms", description="how often the file is looked at, like '500ms'")


class CommandDetectorConfig(_Section):
    command: Argv | None = Field(
        None,
        description="the command, a list of strings: exit 0 = needed, 1 = not needed, anything "
        "else = unknown (never a reboot)",
    )
    interval: Duration = Field("1m", description="how often it runs, like '1m'")
    timeout: Duration = Field("30s", description="how long one run may take, like '30s'")


class NeedsRestartingConfig(_Section):
    command: Argv = Field(
        ["needs-restarting", "-r"],
        description="the command; exit 1 = needed, 0 = not needed, anything else = unknown",
    )
    interval: Duration = Field("5m", description="how often it runs (it reads the rpm database)")
    timeout: Duration = Field("2m", description="how long one run may take")


class RpmOstreeConfig(_Section):
    command: Argv = Field(
        ["rpm-ostree", "status", "--json"],
        description="the command printing rpm-ostree's status as JSON",
    )
    interval: Duration = Field("1m", description="how often it runs")
    timeout: Duration = Field("1m", description="how long one run may take")


class UpdateEngineConfig(_Section):
    bus_address: str | None = Field(
        None,
        description="a D-Bus address like 'unix:path=/run/dbus/system_bus_socket'; default "
        "the system bus ($DBUS_SYSTEM_BUS_ADDRESS)",
    )
    reconnect: Duration = Field("2s", description="the wait before reconnecting to a lost bus")


class ManualDetectorConfig(_Section):
    path: AbsPath = Field(
        DEFAULT_MANUAL_PATH,
        description="where `stagger need-reboot` leaves its marker (always read by the agent)",
    )
    interval: Duration = Field("500ms", description="how often the marker is looked at")


class DetectorsConfig(_Section):
    file: FileDetectorConfig = Field(
        default_factory=lambda: FileDetectorConfig.model_validate({}),
        description="a table: [detectors.file] with path, packages_path, interval",
    )
    command: CommandDetectorConfig = Field(
        default_factory=lambda: CommandDetectorConfig.model_validate({}),
        description="a table: [detectors.command] with command, interval, timeout",
    )
    needs_restarting: NeedsRestartingConfig = Field(
        default_factory=lambda: NeedsRestartingConfig.model_validate({}),
        alias="needs-restarting",
        description="a table: [detectors.needs-restarting] with command, interval, timeout",
    )
    rpm_ostree: RpmOstreeConfig = Field(
        default_factory=lambda: RpmOstreeConfig.model_validate({}),
        alias="rpm-ostree",
        description="a table: [detectors.rpm-ostree] with command, interval, timeout",
    )
    update_engine: UpdateEngineConfig = Field(
        default_factory=lambda: UpdateEngineConfig.model_validate({}),
        description="a table: [detectors.update_engine] with bus_address, reconnect",
    )
    manual: ManualDetectorConfig = Field(
        default_factory=lambda: ManualDetectorConfig.model_validate({}),
        description="a table: [detectors.manual] with path, interval",
    )


# --- [hooks] -----------------------------------------------------------------------------------


class HooksConfig(_Section):
    pre_reboot: ArgvList = Field(
        default_factory=list,
        description="commands run before the reboot, in order, each must exit 0 "
        "(for example [['/usr/local/bin/drain', '--wait']])",
    )
    pre_reboot_dir: AbsPath = Field(
        "/etc/stagger/pre-reboot.d",
        description="a directory of executables run before the reboot (run-parts order)",
    )
    pre_reboot_timeout: Duration = Field(
        "15m",
        description="how long all pre-reboot hooks together may take (never past the window's end)",
    )
    block_logged_in_users: bool = Field(
        False, description="true: do not reboot while someone is logged in (utmp)"
    )
    utmp_path: AbsPath = Field("/run/utmp", description="where logged-in users are listed")
    block_commands: ArgvList = Field(
        default_factory=list,
        description="commands that must exit 0 for the reboot to go on (anything else blocks)",
    )
    block_urls: list[str] = Field(
        default_factory=list,
        description="http(s) URLs that must answer 2xx for the reboot to go on",
    )
    health: ArgvList = Field(
        default_factory=list,
        description="commands that must exit 0 after the reboot before the slot is released",
    )
    health_dir: AbsPath = Field(
        "/etc/stagger/health.d", description="a directory of executable health checks"
    )
    health_timeout: Duration = Field(
        "10m", description="how long health checks are retried before the node is HALTED"
    )
    health_interval: Duration = Field("5s", description="the wait between two rounds of checks")
    health_system_states: list[str] = Field(
        default_factory=list,
        description="accepted answers of `systemctl is-system-running`, like ['running']; "
        "empty: not checked",
    )
    health_urls: list[str] = Field(
        default_factory=list, description="http(s) URLs that must answer 2xx"
    )
    health_tcp: list[str] = Field(
        default_factory=list, description="HOST:PORT addresses that must accept a connection"
    )
    command_timeout: Duration = Field(
        "5m", description="how long one hook, blocker or check may run (within the stage's)"
    )

    @field_validator("block_urls", "health_urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(
            isinstance(u, str) and u.startswith(("http://", "https://")) for u in value
        ):
            raise InvalidInput(f"URLs must be a list of http:// or https:// URLs, not {value!r}")
        return list(value)

    @field_validator("health_tcp", mode="before")
    @classmethod
    def _tcp(cls, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise InvalidInput(f"health_tcp must be a list like ['127.0.0.1:80'], not {value!r}")
        for item in value:
            host, sep, port = str(item).rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidInput(f"{item!r} is not HOST:PORT (for example '127.0.0.1:8080')")
        return [str(v) for v in value]

    @field_validator("health_system_states", mode="before")
    @classmethod
    def _states(cls, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise InvalidInput(
                f"health_system_states must be a list like ['running'], not {value!r}"
            )
        return list(value)


# --- [reboot] ----------------------------------------------------------------------------------


class RebootConfig(_Section):
    command: Argv | None = Field(
        None, description="for rebooter = 'command': the command that reboots this host"
    )
    warn_users: bool = Field(
        False, description="true: tell logged-in users (wall) before the reboot"
    )
    delay: Duration = Field(
        "0s", description="a wait between the warning and the reboot, like '5m'"
    )
    simulated_record: AbsPath = Field(
        "/var/lib/stagger/simulated-reboots",
        description="for rebooter = 'simulated': the file each reboot is recorded in",
    )

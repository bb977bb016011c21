"""The configuration operators write, as one validated model.

Rules of this file:
- `extra="forbid"` everywhere: an unknown key is an error, never silently ignored (Zincati
  ignores them, and a misspelt window then does nothing).
- Every field has a `description` saying what is allowed; error messages quote it.
- Values are checked with the same parsers core uses (durations, days, zones, groups), so a
  value that passes here never fails later.
- Each table is a `Section` (section.py) in a module of its own ([hooks], [detectors.*],
  [server], [updates], [[notify]], [[window]], ...) and one field here; the loader, error
  messages and `config show` need no change when one is added.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from stagger.backends.factory import DEFAULT_BACKEND_URL, SCHEMES
from stagger.config.agent_sections import (
    DEFAULT_BOOT_ID_PATH,
    DEFAULT_DETECTORS,
    DEFAULT_REBOOTER,
    DEFAULT_STATE_PATH,
    DETECTOR_NAMES,
    REBOOTER_NAMES,
    DetectorsConfig,
    HooksConfig,
    RebootConfig,
    check_agent_detectors,
    check_path,
    check_rebooter,
)
from stagger.config.blocker_section import BlockerConfig, check_names
from stagger.config.cycle_section import CycleConfig
from stagger.config.notify_section import NotifyConfig
from stagger.config.rollout_section import RolloutConfig
from stagger.config.section import Section, need_str
from stagger.config.server_section import ServerConfig
from stagger.config.updates_section import DEFAULT_CONTROL_SOCKET, UpdatesConfig
from stagger.config.window_section import BlackoutConfig, WindowConfig
from stagger.core.errors import InvalidInput
from stagger.core.schedule import (
    Schedule,
)
from stagger.core.secrets import mask_url
from stagger.core.semaphore import DEFAULT_GROUP, validate_group, validate_node_id
from stagger.core.strategy import ALLOWED_STRATEGIES, DEFAULT_STRATEGY, Strategy, parse_strategy


class AgentConfig(Section):
    id: str | None = Field(
        None,
        description="this node's id, 1 to 256 printable characters; "
        "default derived from /etc/machine-id",
    )
    group: str = Field(
        DEFAULT_GROUP,
        description="the reboot group: letters, digits, '.' and '-' (for example 'web')",
    )
    strategy: Strategy = Field(DEFAULT_STRATEGY, description=f"one of {ALLOWED_STRATEGIES}")
    backend: str = Field(DEFAULT_BACKEND_URL, description=f"a backend URL: {SCHEMES}")
    detectors: list[str] = Field(
        list(DEFAULT_DETECTORS),
        description=f"the detectors in use, names from {DETECTOR_NAMES}; a reboot is needed "
        "when any says so ('manual', for `stagger need-reboot`, is always on)",
    )
    rebooter: str = Field(DEFAULT_REBOOTER, description=f"how to reboot: one of {REBOOTER_NAMES}")
    state_path: str = Field(
        DEFAULT_STATE_PATH, description="the agent's state file (an absolute path)"
    )
    boot_id_path: str = Field(
        DEFAULT_BOOT_ID_PATH, description="where the current boot id is read (an absolute path)"
    )
    control_socket: str = Field(
        DEFAULT_CONTROL_SOCKET,
        description="the agent's local control socket, used by `stagger update-now` "
        "(an absolute path)",
    )

    @property
    def backend_configured(self) -> bool:
        """Whether a file wrote `backend` (the default is a SQLite file on the host itself,
        which coordinates with no one)."""
        return "backend" in self.model_fields_set

    def backend_url(self, root: Path | None) -> str:
        """The backend URL. Like every path left at its default, the default SQLite file goes
        under `root` (tests, images, containers)."""
        if self.backend_configured or root is None:
            return self.backend
        path = Path(DEFAULT_BACKEND_URL.removeprefix("sqlite://"))
        return f"sqlite://{root / path.relative_to(path.anchor)}"

    @field_validator("detectors", mode="before")
    @classmethod
    def _detectors(cls, value: Any) -> list[str]:
        return check_agent_detectors(value)

    @field_validator("rebooter", mode="before")
    @classmethod
    def _rebooter(cls, value: Any) -> str:
        return check_rebooter(value)

    @field_validator("state_path", "boot_id_path", "control_socket", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> str:
        return check_path(value, "path")

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> str | None:
        return None if value is None else validate_node_id(need_str(value, "id"))

    @field_validator("group", mode="before")
    @classmethod
    def _group(cls, value: Any) -> str:
        return validate_group(need_str(value, "group"))

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> Strategy:
        return parse_strategy(need_str(value, "strategy"))

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> str:
        url = need_str(value, "backend").strip()
        if "://" not in url:
            raise InvalidInput(f"backend {mask_url(url)!r} is not a URL: use one of {SCHEMES}")
        return url


class StaggerConfig(Section):
    agent: AgentConfig = Field(
        default_factory=lambda: AgentConfig.model_validate({}),
        description="a table: [agent] with id, group, strategy, backend",
    )
    window: list[WindowConfig] = Field(
        default_factory=list,
        description="an array of tables: [[window]] with days, start, length, time_zone",
    )
    blackout: list[BlackoutConfig] = Field(
        default_factory=list, description="an array of tables: [[blackout]] with start, end, reason"
    )
    detectors: DetectorsConfig = Field(
        default_factory=lambda: DetectorsConfig.model_validate({}),
        description="tables: [detectors.file], [detectors.command], [detectors.needs-restarting], "
        "[detectors.rpm-ostree], [detectors.update_engine], [detectors.manual]",
    )
    hooks: HooksConfig = Field(
        default_factory=lambda: HooksConfig.model_validate({}),
        description="a table: [hooks] with pre-reboot hooks, blockers and health checks",
    )
    reboot: RebootConfig = Field(
        default_factory=lambda: RebootConfig.model_validate({}),
        description="a table: [reboot] with command, warn_users, delay, simulated_record",
    )
    cycle: CycleConfig = Field(
        default_factory=lambda: CycleConfig.model_validate({}),
        description="a table: [cycle] with heartbeat, retry, backoff, backoff_max, "
        "health_recheck, poll",
    )

    server: ServerConfig = Field(
        default_factory=lambda: ServerConfig.model_validate({}),
        description="a table: [server] with listen, backend, prefix, unknown_groups, "
        "default_max, token files, TLS files and [server.groups]",
    )
    notify: list[NotifyConfig] = Field(
        default_factory=list,
        description="an array of tables: [[notify]] with url, events, format, headers",
    )
    blocker: list[BlockerConfig] = Field(
        default_factory=list,
        description="an array of tables: [[blocker]] with kind, url, matchers, groups, interval",
    )
    rollout: RolloutConfig | None = Field(
        None,
        description="a table: [rollout] with max_failures and [[rollout.stage]] (groups, bake, "
        "close_after); stagger server sets it at start",
    )
    updates: UpdatesConfig = Field(
        default_factory=lambda: UpdatesConfig.model_validate({}),
        description="a table: [updates] with updater, enabled, interval, jitter, timeout, "
        "command and [[updates.window]]",
    )

    @field_validator("blocker")
    @classmethod
    def _blocker_names(cls, value: list[BlockerConfig]) -> list[BlockerConfig]:
        return check_names(value)

    def schedule(self, default_zone: str) -> Schedule:
        """The schedule, with windows that name no zone placed in `default_zone` (the host's)."""
        return Schedule(
            tuple(w.to_window(default_zone) for w in self.window),
            tuple(b.to_blackout() for b in self.blackout),
        )
